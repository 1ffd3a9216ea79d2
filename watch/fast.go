package watch

import (
	"encoding/json"
	"strconv"

	yamlv2 "go.yaml.in/yaml/v2"
	"google.golang.org/protobuf/encoding/protojson"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

// decodeIstioFast decodes a well-formed Istio document in one YAML parse and
// one JSON pass over its spec, instead of converting the whole document to
// JSON and reading it several times. It reports false for anything unusual
// — a YAML error, a non-Istio kind, a field out of place — and the caller
// then takes the general path, which produces the precise problem.
func (d *Decoder) decodeIstioFast(doc []byte, src inputs.Source) bool {
	var raw any
	if err := yamlv2.Unmarshal(doc, &raw); err != nil {
		return false
	}
	v, ok := jsonable(raw)
	if !ok {
		return false
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return false
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	group, version := splitAPIVersion(apiVersion)
	if group != "networking.istio.io" || !istioVersions[version] || !isIstioKind(kind) {
		return false
	}
	for k := range obj {
		switch k {
		case "apiVersion", "kind", "metadata", "spec", "status":
		default:
			return false
		}
	}
	mdv, ok := obj["metadata"].(map[string]any)
	if !ok {
		return false
	}
	mjs, err := json.Marshal(mdv)
	if err != nil {
		return false
	}
	var meta metav1.ObjectMeta
	if err := json.Unmarshal(mjs, &meta); err != nil || meta.Name == "" {
		return false
	}
	if meta.Namespace == "" {
		meta.Namespace = DefaultNamespace
	}
	object := kind + " " + meta.Namespace + "/" + meta.Name
	typeMeta := metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
	msg, add := d.istioObject(kind, typeMeta, meta, src)
	spec := obj["spec"]
	if spec == nil {
		spec = map[string]any{}
	}
	if field, msgText := checkMessage(spec, msg.ProtoReflect().Descriptor(), "spec"); msgText != "" {
		d.problem(src, object, field, "%s", msgText)
		return true
	}
	sjs, err := json.Marshal(spec)
	if err != nil {
		return false
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(sjs, msg); err != nil {
		d.problem(src, object, "spec", "%s", cleanProtoError(err))
		return true
	}
	add()
	return true
}

// jsonable turns what the YAML decoder returns into what encoding/json with
// UseNumber would: string keys, json.Number numbers. It reports false for
// keys that are not strings, which the general path explains.
func jsonable(v any) (any, bool) {
	switch x := v.(type) {
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, false
			}
			cv, ok := jsonable(val)
			if !ok {
				return nil, false
			}
			out[ks] = cv
		}
		return out, true
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			cv, ok := jsonable(val)
			if !ok {
				return nil, false
			}
			out[i] = cv
		}
		return out, true
	case int:
		return json.Number(strconv.Itoa(x)), true
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), true
	case uint64:
		return json.Number(strconv.FormatUint(x, 10)), true
	case float64:
		return json.Number(strconv.FormatFloat(x, 'g', -1, 64)), true
	case string, bool, nil:
		return x, true
	}
	return nil, false
}
