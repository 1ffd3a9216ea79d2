package watch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"reflect"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/internal/parallel"
)

// DefaultNamespace is where objects without a namespace land, as with kubectl.
const DefaultNamespace = "default"

// istioVersions are the networking.istio.io versions accepted; all three
// share one schema.
var istioVersions = map[string]bool{"v1": true, "v1beta1": true, "v1alpha3": true}

// Decoder accumulates decoded documents into an Inputs value.
type Decoder struct {
	In *inputs.Inputs
	// meshFromConfigMap is the raw `mesh` key of the istio ConfigMap, applied
	// when Finish runs unless a mesh file overrides it.
	meshJSON   []byte
	meshSource inputs.Source
	// Ignored counts documents of kinds chokepoint does not read, by kind.
	Ignored map[string]int
}

// NewDecoder returns a Decoder filling a fresh Inputs.
func NewDecoder() *Decoder {
	return &Decoder{In: &inputs.Inputs{}, Ignored: map[string]int{}}
}

func (d *Decoder) problem(src inputs.Source, object, field, format string, args ...any) {
	d.In.Problems = append(d.In.Problems, inputs.Problem{
		Severity: inputs.SeverityError, Source: src, Object: object, Field: field,
		Message: fmt.Sprintf(format, args...),
	})
}

// SplitDocuments splits a YAML stream on `---` separator lines. It returns
// each document with its 1-based position; empty documents keep their number
// so positions match what an editor shows.
func SplitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		trimmed := bytes.TrimRight(line, " \t\r\n")
		if bytes.Equal(trimmed, []byte("---")) || bytes.HasPrefix(trimmed, []byte("--- ")) || bytes.HasPrefix(trimmed, []byte("---#")) {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
			cur.Reset()
			continue
		}
		cur.Write(line)
	}
	docs = append(docs, append([]byte(nil), cur.Bytes()...))
	// A stream that starts with `---` has an empty first document: drop it so
	// document numbers count real documents, as kubectl does.
	if len(docs) > 1 && len(bytes.TrimSpace(docs[0])) == 0 {
		docs = docs[1:]
	}
	return docs
}

func blank(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		l := bytes.TrimSpace(line)
		if len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

// DecodeStream decodes every document of a YAML or JSON stream read from file.
func (d *Decoder) DecodeStream(data []byte, file string) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		// JSON: one document (possibly a List).
		d.DecodeDocument(trimmed, inputs.Source{File: file, Doc: 1})
		return
	}
	docs := SplitDocuments(data)
	if len(docs) < parallelThreshold {
		for i, doc := range docs {
			if !blank(doc) {
				d.DecodeDocument(doc, inputs.Source{File: file, Doc: i + 1})
			}
		}
		return
	}
	// Large streams decode on every core: each document into its own
	// decoder, merged back in document order so the result is the same.
	parts := make([]*Decoder, len(docs))
	parallel.For(len(docs), func(i int) {
		if blank(docs[i]) {
			return
		}
		part := NewDecoder()
		part.DecodeDocument(docs[i], inputs.Source{File: file, Doc: i + 1})
		parts[i] = part
	})
	for _, part := range parts {
		if part != nil {
			d.merge(part)
		}
	}
}

// parallelThreshold is the document count from which a stream is decoded
// in parallel.
const parallelThreshold = 64

// merge appends what part decoded.
func (d *Decoder) merge(part *Decoder) {
	in, p := d.In, part.In
	in.ServiceEntries = append(in.ServiceEntries, p.ServiceEntries...)
	in.Gateways = append(in.Gateways, p.Gateways...)
	in.VirtualServices = append(in.VirtualServices, p.VirtualServices...)
	in.DestinationRules = append(in.DestinationRules, p.DestinationRules...)
	in.Sidecars = append(in.Sidecars, p.Sidecars...)
	in.Services = append(in.Services, p.Services...)
	in.Endpoints = append(in.Endpoints, p.Endpoints...)
	in.EndpointSlices = append(in.EndpointSlices, p.EndpointSlices...)
	in.Namespaces = append(in.Namespaces, p.Namespaces...)
	in.Problems = append(in.Problems, p.Problems...)
	for k, v := range part.Ignored {
		d.Ignored[k] += v
	}
	if part.meshJSON != nil {
		d.meshJSON, d.meshSource = part.meshJSON, part.meshSource
	}
}

type envelope struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   json.RawMessage   `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
	Items      []json.RawMessage `json:"items"`
}

// DecodeDocument decodes one YAML or JSON document.
func (d *Decoder) DecodeDocument(doc []byte, src inputs.Source) {
	if d.decodeIstioFast(doc, src) {
		return
	}
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		d.problem(src, "", "", "invalid YAML: %s", cleanYAMLError(err))
		return
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return
	}
	var env envelope
	if err := json.Unmarshal(js, &env); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			d.problem(src, "", "", "not a Kubernetes object: expected a mapping with apiVersion, kind and metadata, got %s", jsonTypeName(te.Value))
			return
		}
		field, msg := describeJSONError(err, "")
		d.problem(src, "", field, "%s", msg)
		return
	}
	if env.Kind == "" || env.APIVersion == "" {
		missing := "kind"
		if env.APIVersion == "" {
			missing = "apiVersion"
		}
		d.problem(src, "", missing, "required field is missing")
		return
	}
	group, version := splitAPIVersion(env.APIVersion)
	if env.Kind == "List" && group == "" {
		for _, item := range env.Items {
			d.DecodeDocument(item, src)
		}
		return
	}
	var meta metav1.ObjectMeta
	if len(env.Metadata) > 0 {
		if err := json.Unmarshal(env.Metadata, &meta); err != nil {
			field, msg := describeJSONError(err, "metadata")
			d.problem(src, env.Kind, field, "%s", msg)
			return
		}
	}
	if meta.Name == "" {
		d.problem(src, env.Kind, "metadata.name", "required field is missing")
		return
	}
	if meta.Namespace == "" && env.Kind != "Namespace" {
		meta.Namespace = DefaultNamespace
	}
	object := env.Kind + " " + meta.Namespace + "/" + meta.Name
	if env.Kind == "Namespace" {
		object = "Namespace " + meta.Name
	}

	if group == "networking.istio.io" {
		if !istioVersions[version] {
			if isIstioKind(env.Kind) {
				d.problem(src, object, "apiVersion", "unsupported version %q (want v1, v1beta1 or v1alpha3)", env.APIVersion)
			} else {
				d.Ignored[env.APIVersion+"/"+env.Kind]++
			}
			return
		}
		d.decodeIstio(env, meta, js, src, object)
		return
	}
	switch {
	case group == "" && version == "v1":
		d.decodeCore(env.Kind, js, meta, src, object)
	case group == "discovery.k8s.io" && version == "v1" && env.Kind == "EndpointSlice":
		var o discoveryv1.EndpointSlice
		if d.strict(js, &o, src, object) {
			o.ObjectMeta = meta
			d.In.EndpointSlices = append(d.In.EndpointSlices, inputs.NewEndpointSlice(&o, src))
		}
	default:
		d.Ignored[env.APIVersion+"/"+env.Kind]++
	}
}

func isIstioKind(kind string) bool {
	switch kind {
	case "ServiceEntry", "Gateway", "VirtualService", "DestinationRule", "Sidecar":
		return true
	}
	return false
}

func splitAPIVersion(v string) (group, version string) {
	if i := strings.LastIndex(v, "/"); i >= 0 {
		return v[:i], v[i+1:]
	}
	return "", v
}

// strict decodes a Kubernetes object as the API server does: field names
// are case-sensitive and an unknown field is an error, reported with its
// path.
func (d *Decoder) strict(js []byte, into any, src inputs.Source, object string) bool {
	strictErrs, err := kjson.UnmarshalStrict(js, into, kjson.DisallowUnknownFields)
	if err != nil {
		field, msg := describeJSONError(err, "")
		d.problem(src, object, field, "%s", msg)
		return false
	}
	if len(strictErrs) > 0 {
		msg := strictErrs[0].Error()
		if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
			if uq, err := strconv.Unquote(f); err == nil {
				d.problem(src, object, uq, "unknown field")
				return false
			}
		}
		if f, ok := strings.CutPrefix(msg, "duplicate field "); ok {
			if uq, err := strconv.Unquote(f); err == nil {
				d.problem(src, object, uq, "field is set twice")
				return false
			}
		}
		d.problem(src, object, "", "%s", msg)
		return false
	}
	return true
}

// describeJSONError turns an encoding/json error into a field path (under
// prefix) and a message without Go type names.
func describeJSONError(err error, prefix string) (string, string) {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if prefix != "" {
			field = strings.TrimSuffix(prefix+"."+field, ".")
		}
		return field, fmt.Sprintf("expected %s, got %s", goKindName(te.Type.Kind()), jsonTypeName(te.Value))
	}
	return prefix, cleanJSONError(err)
}

// goKindName names what a Go kind expects, in JSON terms.
func goKindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "an object"
}

// jsonTypeName names a JSON value type as encoding/json reports it
// ("string", "number 1.5", "array", "object", "bool").
func jsonTypeName(v string) string {
	switch {
	case v == "array":
		return "a list"
	case v == "object":
		return "an object"
	case v == "bool":
		return "a boolean"
	case v == "string":
		return "a string"
	case strings.HasPrefix(v, "number"):
		return "a number"
	}
	return v
}

func (d *Decoder) decodeCore(kind string, js []byte, meta metav1.ObjectMeta, src inputs.Source, object string) {
	switch kind {
	case "Service":
		var o corev1.Service
		if d.strict(js, &o, src, object) {
			o.ObjectMeta = meta
			d.In.Services = append(d.In.Services, inputs.NewService(&o, src))
		}
	case "Endpoints":
		var o corev1.Endpoints
		if d.strict(js, &o, src, object) {
			o.ObjectMeta = meta
			d.In.Endpoints = append(d.In.Endpoints, inputs.NewEndpoints(&o, src))
		}
	case "Namespace":
		var o corev1.Namespace
		if d.strict(js, &o, src, object) {
			o.ObjectMeta = meta
			d.In.Namespaces = append(d.In.Namespaces, inputs.NewNamespace(&o, src))
		}
	case "ConfigMap":
		var o corev1.ConfigMap
		if !d.strict(js, &o, src, object) {
			return
		}
		if meta.Name != "istio" || meta.Namespace != "istio-system" {
			d.Ignored["v1/ConfigMap"]++
			return
		}
		mesh, ok := o.Data["mesh"]
		if !ok {
			return
		}
		mjs, err := yaml.YAMLToJSON([]byte(mesh))
		if err != nil {
			d.problem(src, object, "data.mesh", "invalid YAML: %s", cleanYAMLError(err))
			return
		}
		d.meshJSON, d.meshSource = mjs, src
	default:
		d.Ignored["v1/"+kind]++
	}
}

func (d *Decoder) decodeIstio(env envelope, meta metav1.ObjectMeta, js []byte, src inputs.Source, object string) {
	// The envelope is strict too: a typo at the top level ("sepc") must not
	// silently produce an empty object.
	var top map[string]json.RawMessage
	_ = json.Unmarshal(js, &top)
	for k := range top {
		switch k {
		case "apiVersion", "kind", "metadata", "spec", "status":
		default:
			d.problem(src, object, k, "unknown field")
			return
		}
	}
	spec := env.Spec
	if len(spec) == 0 || string(spec) == "null" {
		spec = []byte("{}")
	}
	typeMeta := metav1.TypeMeta{APIVersion: env.APIVersion, Kind: env.Kind}
	msg, add := d.istioObject(env.Kind, typeMeta, meta, src)
	if msg == nil {
		d.Ignored[env.APIVersion+"/"+env.Kind]++
		return
	}
	spec, field, errMsg := checkJSON(spec, msg.ProtoReflect().Descriptor(), "spec")
	if errMsg != "" {
		d.problem(src, object, field, "%s", errMsg)
		return
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(spec, msg); err != nil {
		d.problem(src, object, "spec", "%s", cleanProtoError(err))
		return
	}
	add()
}

// checkJSON walks a JSON value against a protobuf message descriptor and
// reports the first unknown field, enum value or ill-typed value with its
// full path, which protojson's own errors do not give. It returns the JSON
// with durations rewritten to protojson's form: Istio reads durations with
// Go's time.ParseDuration, so "3m" and "100ms" are valid.
func checkJSON(js []byte, md protoreflect.MessageDescriptor, path string) ([]byte, string, string) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, path, err.Error()
	}
	if field, msg := checkMessage(v, md, path); msg != "" {
		return nil, field, msg
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, path, err.Error()
	}
	return out, "", ""
}

// normalizeDuration parses a duration as Istio does and renders it as
// protojson expects ("1.5s").
func normalizeDuration(v any, path string) (any, string, string) {
	s, ok := v.(string)
	if !ok {
		return v, path, fmt.Sprintf("expected a duration such as \"1s\", got %s", jsonKind(v))
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return v, path, fmt.Sprintf("invalid duration %q (want a number with a unit, such as 1s, 100ms or 5m)", s)
	}
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	secs, nanos := int64(d/time.Second), int64(d%time.Second)
	if nanos == 0 {
		return fmt.Sprintf("%s%ds", sign, secs), "", ""
	}
	return fmt.Sprintf("%s%d.%09ds", sign, secs, nanos), "", ""
}

func isDuration(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Duration"
}

func checkMessage(v any, md protoreflect.MessageDescriptor, path string) (string, string) {
	switch md.FullName() {
	case "google.protobuf.Duration", "google.protobuf.Struct", "google.protobuf.Value",
		"google.protobuf.Any", "google.protobuf.Timestamp", "google.protobuf.ListValue":
		return "", ""
	}
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") && strings.HasSuffix(string(md.Name()), "Value") {
		return "", "" // wrappers take a bare scalar
	}
	obj, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return "", ""
		}
		return path, fmt.Sprintf("expected an object, got %s", jsonKind(v))
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := md.Fields()
	for _, k := range keys {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(k))
		}
		p := path + "." + k
		if fd == nil {
			return p, "unknown field"
		}
		if isDuration(fd) && !fd.IsList() && !fd.IsMap() && obj[k] != nil {
			nv, f, e := normalizeDuration(obj[k], p)
			if e != "" {
				return f, e
			}
			obj[k] = nv
			continue
		}
		if f, e := checkField(obj[k], fd, p); e != "" {
			return f, e
		}
	}
	return "", ""
}

func checkField(v any, fd protoreflect.FieldDescriptor, path string) (string, string) {
	if v == nil {
		return "", ""
	}
	switch {
	case fd.IsMap():
		m, ok := v.(map[string]any)
		if !ok {
			return path, fmt.Sprintf("expected an object, got %s", jsonKind(v))
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if f, e := checkSingle(m[k], fd.MapValue(), path+"["+k+"]"); e != "" {
				return f, e
			}
		}
		return "", ""
	case fd.IsList():
		l, ok := v.([]any)
		if !ok {
			return path, fmt.Sprintf("expected a list, got %s", jsonKind(v))
		}
		for i, item := range l {
			p := fmt.Sprintf("%s[%d]", path, i)
			if isDuration(fd) {
				nv, f, e := normalizeDuration(item, p)
				if e != "" {
					return f, e
				}
				l[i] = nv
				continue
			}
			if f, e := checkSingle(item, fd, p); e != "" {
				return f, e
			}
		}
		return "", ""
	}
	return checkSingle(v, fd, path)
}

func checkSingle(v any, fd protoreflect.FieldDescriptor, path string) (string, string) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkMessage(v, fd.Message(), path)
	case protoreflect.EnumKind:
		ed := fd.Enum()
		switch x := v.(type) {
		case string:
			if ed.Values().ByName(protoreflect.Name(x)) == nil {
				return path, fmt.Sprintf("unknown value %q (want one of %s)", x, enumNames(ed))
			}
		case json.Number:
			n, err := x.Int64()
			if err != nil || ed.Values().ByNumber(protoreflect.EnumNumber(n)) == nil {
				return path, fmt.Sprintf("unknown value %s (want one of %s)", x, enumNames(ed))
			}
		default:
			return path, fmt.Sprintf("expected a string, got %s", jsonKind(v))
		}
	case protoreflect.StringKind, protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			return path, fmt.Sprintf("expected a string, got %s", jsonKind(v))
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return path, fmt.Sprintf("expected true or false, got %s", jsonKind(v))
		}
	default: // numbers
		switch x := v.(type) {
		case json.Number:
			if msg := checkNumber(x.String(), fd.Kind()); msg != "" {
				return path, fmt.Sprintf("%s, got %s", msg, x)
			}
		case string:
			// protojson accepts quoted numbers.
			if msg := checkNumber(x, fd.Kind()); msg != "" {
				return path, fmt.Sprintf("%s, got %q", msg, x)
			}
		default:
			return path, fmt.Sprintf("expected a number, got %s", jsonKind(v))
		}
	}
	return "", ""
}

// checkNumber reports whether s is a value protojson accepts for a numeric
// field of kind k; the message says what is expected.
func checkNumber(s string, k protoreflect.Kind) string {
	bits := 64
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		bits = 32
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if _, err := strconv.ParseFloat(s, 64); err != nil && s != "NaN" && s != "Infinity" && s != "-Infinity" {
			return "expected a number"
		}
		return ""
	}
	if isUnsigned(k) {
		if _, err := strconv.ParseUint(s, 10, bits); err == nil {
			return ""
		}
	} else if _, err := strconv.ParseInt(s, 10, bits); err == nil {
		return ""
	}
	// protojson also takes 1.0 and 1e3 for whole numbers.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) {
		return "expected a whole number"
	}
	if isUnsigned(k) {
		if max := math.Ldexp(1, bits) - 1; f < 0 || f > max {
			return fmt.Sprintf("expected a number from 0 to %d", uint64(1)<<bits-1)
		}
		return ""
	}
	if lim := math.Ldexp(1, bits-1); f < -lim || f > lim-1 {
		return fmt.Sprintf("expected a number from %d to %d", -(int64(1) << (bits - 1)), int64(1)<<(bits-1)-1)
	}
	return ""
}

func isUnsigned(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return true
	}
	return false
}

func enumNames(ed protoreflect.EnumDescriptor) string {
	vals := ed.Values()
	names := make([]string, 0, vals.Len())
	for i := 0; i < vals.Len(); i++ {
		names = append(names, string(vals.Get(i).Name()))
	}
	return strings.Join(names, ", ")
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return "null"
}

func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	return strings.TrimPrefix(s, "yaml: ")
}

func cleanJSONError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error unmarshaling JSON: ")
	s = strings.TrimPrefix(s, "while decoding JSON: ")
	return strings.TrimPrefix(s, "json: ")
}

func cleanProtoError(err error) string {
	s := strings.TrimPrefix(err.Error(), "proto: ")
	if strings.HasPrefix(s, "(line ") {
		if i := strings.Index(s, "): "); i > 0 {
			s = s[i+3:]
		}
	}
	return s
}

// ParseMesh applies a mesh config YAML over Istio's defaults, field by field
// at the top level, as istiod does: a field the YAML names replaces the
// default whole (so `outboundTrafficPolicy: {}` means REGISTRY_ONLY, the
// enum's zero value, exactly as in Istio).
func ParseMesh(js []byte) (*meshconfig.MeshConfig, string, error) {
	mesh := inputs.DefaultMesh()
	if len(bytes.TrimSpace(js)) == 0 || string(bytes.TrimSpace(js)) == "null" {
		return mesh, "", nil
	}
	user := &meshconfig.MeshConfig{}
	js, field, msg := checkJSON(js, user.ProtoReflect().Descriptor(), "mesh")
	if msg != "" {
		return nil, field, fmt.Errorf("%s", msg)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(js, user); err != nil {
		return nil, "mesh", fmt.Errorf("%s", cleanProtoError(err))
	}
	var top map[string]json.RawMessage
	_ = json.Unmarshal(js, &top)
	um, dm := user.ProtoReflect(), mesh.ProtoReflect()
	fields := um.Descriptor().Fields()
	for k := range top {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(k))
		}
		if fd == nil {
			continue
		}
		if um.Has(fd) {
			dm.Set(fd, um.Get(fd))
		} else {
			dm.Clear(fd)
			if fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
				// Present but empty: an empty message, not an absent one.
				dm.Set(fd, protoreflect.ValueOfMessage(dm.NewField(fd).Message()))
			}
		}
	}
	return mesh, "", nil
}

// Finish resolves the mesh config (meshFile wins over the istio ConfigMap,
// as with istioctl's --meshConfigFile) and returns the inputs.
func (d *Decoder) Finish(meshFile []byte, meshFileName string) *inputs.Inputs {
	js, src := d.meshJSON, d.meshSource
	if meshFile != nil {
		var err error
		js, err = yaml.YAMLToJSON(meshFile)
		src = inputs.Source{File: meshFileName}
		if err != nil {
			d.problem(src, "", "", "invalid YAML: %s", cleanYAMLError(err))
			js = nil
		}
	}
	mesh, field, err := ParseMesh(js)
	if err != nil {
		object := ""
		if meshFile == nil {
			object = "ConfigMap istio-system/istio"
			field = "data." + field
		}
		d.problem(src, object, field, "%v", err)
		mesh = inputs.DefaultMesh()
	}
	d.In.Mesh, d.In.MeshSource = mesh, src
	return d.In
}

// istioObject makes the client-go object of an Istio kind: its spec to fill
// and the function that adds it to the inputs once filled. msg is nil for
// kinds chokepoint does not read.
func (d *Decoder) istioObject(kind string, typeMeta metav1.TypeMeta, meta metav1.ObjectMeta, src inputs.Source) (msg proto.Message, add func()) {
	switch kind {
	case "ServiceEntry":
		o := &networking.ServiceEntry{TypeMeta: typeMeta, ObjectMeta: meta}
		return &o.Spec, func() { d.In.ServiceEntries = append(d.In.ServiceEntries, inputs.NewServiceEntry(o, src)) }
	case "Gateway":
		o := &networking.Gateway{TypeMeta: typeMeta, ObjectMeta: meta}
		return &o.Spec, func() { d.In.Gateways = append(d.In.Gateways, inputs.NewGateway(o, src)) }
	case "VirtualService":
		o := &networking.VirtualService{TypeMeta: typeMeta, ObjectMeta: meta}
		return &o.Spec, func() { d.In.VirtualServices = append(d.In.VirtualServices, inputs.NewVirtualService(o, src)) }
	case "DestinationRule":
		o := &networking.DestinationRule{TypeMeta: typeMeta, ObjectMeta: meta}
		return &o.Spec, func() { d.In.DestinationRules = append(d.In.DestinationRules, inputs.NewDestinationRule(o, src)) }
	case "Sidecar":
		o := &networking.Sidecar{TypeMeta: typeMeta, ObjectMeta: meta}
		return &o.Spec, func() { d.In.Sidecars = append(d.In.Sidecars, inputs.NewSidecar(o, src)) }
	}
	return nil, nil
}
