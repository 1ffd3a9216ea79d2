package inputs

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Source says where an object came from: a file and the position of the
// document in it (1-based), or a Kubernetes API server.
type Source struct {
	File string `json:"file,omitempty"`
	Doc  int    `json:"doc,omitempty"`
	// Kube is set for objects read from a Kubernetes API server; it holds the
	// object's resourceVersion.
	Kube string `json:"kube,omitempty"`
}

func (s Source) String() string {
	switch {
	case s.Kube != "":
		return "kubernetes (resourceVersion " + s.Kube + ")"
	case s.File == "":
		return "<unknown>"
	case s.Doc > 0:
		return fmt.Sprintf("%s (document %d)", s.File, s.Doc)
	default:
		return s.File
	}
}

// Object is the part every input object shares.
type Object interface {
	metav1.Object
	GetSource() Source
	// KindName is "Kind namespace/name", the way errors and logs name objects.
	KindName() string
}

type objectBase struct {
	Source Source `json:"-"`
}

func (b objectBase) GetSource() Source { return b.Source }

// The wrapped kinds. Each embeds the client-go type, so o.Spec, o.Name and
// o.Namespace read as usual.
type (
	ServiceEntry struct {
		*networking.ServiceEntry
		objectBase
	}
	Gateway struct {
		*networking.Gateway
		objectBase
	}
	VirtualService struct {
		*networking.VirtualService
		objectBase
	}
	DestinationRule struct {
		*networking.DestinationRule
		objectBase
	}
	Sidecar struct {
		*networking.Sidecar
		objectBase
	}
	Service struct {
		*corev1.Service
		objectBase
	}
	Endpoints struct {
		*corev1.Endpoints
		objectBase
	}
	EndpointSlice struct {
		*discoveryv1.EndpointSlice
		objectBase
	}
	Namespace struct {
		*corev1.Namespace
		objectBase
	}
)

func kindName(kind string, o metav1.Object) string {
	if o.GetNamespace() == "" {
		return kind + " " + o.GetName()
	}
	return kind + " " + o.GetNamespace() + "/" + o.GetName()
}

func (o *ServiceEntry) KindName() string    { return kindName("ServiceEntry", o) }
func (o *Gateway) KindName() string         { return kindName("Gateway", o) }
func (o *VirtualService) KindName() string  { return kindName("VirtualService", o) }
func (o *DestinationRule) KindName() string { return kindName("DestinationRule", o) }
func (o *Sidecar) KindName() string         { return kindName("Sidecar", o) }
func (o *Service) KindName() string         { return kindName("Service", o) }
func (o *Endpoints) KindName() string       { return kindName("Endpoints", o) }
func (o *EndpointSlice) KindName() string   { return kindName("EndpointSlice", o) }
func (o *Namespace) KindName() string       { return kindName("Namespace", o) }

// Wrap helpers for producers.
func NewServiceEntry(o *networking.ServiceEntry, s Source) *ServiceEntry {
	return &ServiceEntry{o, objectBase{s}}
}
func NewGateway(o *networking.Gateway, s Source) *Gateway { return &Gateway{o, objectBase{s}} }
func NewVirtualService(o *networking.VirtualService, s Source) *VirtualService {
	return &VirtualService{o, objectBase{s}}
}
func NewDestinationRule(o *networking.DestinationRule, s Source) *DestinationRule {
	return &DestinationRule{o, objectBase{s}}
}
func NewSidecar(o *networking.Sidecar, s Source) *Sidecar   { return &Sidecar{o, objectBase{s}} }
func NewService(o *corev1.Service, s Source) *Service       { return &Service{o, objectBase{s}} }
func NewEndpoints(o *corev1.Endpoints, s Source) *Endpoints { return &Endpoints{o, objectBase{s}} }
func NewNamespace(o *corev1.Namespace, s Source) *Namespace { return &Namespace{o, objectBase{s}} }
func NewEndpointSlice(o *discoveryv1.EndpointSlice, s Source) *EndpointSlice {
	return &EndpointSlice{o, objectBase{s}}
}

// Severity of a Problem.
type Severity string

const (
	SeverityError   Severity = "Error"
	SeverityWarning Severity = "Warning"
)

// Problem is one thing wrong with the input: where (source, object, field)
// and what. Problems never stop translation; the object they name is skipped
// (Error) or used as istiod would use it (Warning).
type Problem struct {
	Severity Severity `json:"severity"`
	Source   Source   `json:"source"`
	// Object is "Kind namespace/name", empty when the document could not be
	// read far enough to know it.
	Object  string `json:"object,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.Source.String())
	if p.Object != "" {
		b.WriteString(": ")
		b.WriteString(p.Object)
	}
	if p.Field != "" {
		b.WriteString(": ")
		b.WriteString(p.Field)
	}
	b.WriteString(": ")
	b.WriteString(p.Message)
	return b.String()
}

// ProblemFor builds a Problem naming obj.
func ProblemFor(sev Severity, obj Object, field, format string, args ...any) Problem {
	return Problem{Severity: sev, Source: obj.GetSource(), Object: obj.KindName(), Field: field, Message: fmt.Sprintf(format, args...)}
}

// Inputs is everything translation reads.
type Inputs struct {
	ServiceEntries   []*ServiceEntry
	Gateways         []*Gateway
	VirtualServices  []*VirtualService
	DestinationRules []*DestinationRule
	Sidecars         []*Sidecar
	Services         []*Service
	Endpoints        []*Endpoints
	EndpointSlices   []*EndpointSlice
	Namespaces       []*Namespace

	// Mesh is the mesh config in effect, with Istio's defaults filled in.
	Mesh       *meshconfig.MeshConfig
	MeshSource Source

	// Problems found while reading; the objects they name are not in the
	// lists above when the problem is an Error.
	Problems []Problem
}

// DefaultMesh returns Istio's defaults for the mesh config fields chokepoint
// reads.
func DefaultMesh() *meshconfig.MeshConfig {
	return &meshconfig.MeshConfig{
		OutboundTrafficPolicy: &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY},
		ConnectTimeout:        durationpb.New(10e9),
		ProxyListenPort:       15001,
		RootNamespace:         "istio-system",
		DefaultConfig:         &meshconfig.ProxyConfig{},
		AccessLogEncoding:     meshconfig.MeshConfig_TEXT,
		DnsRefreshRate:        durationpb.New(60e9),
	}
}

// Objects returns every object, in kind order, for listings such as /debug/inputs.
func (in *Inputs) Objects() []Object {
	var out []Object
	for _, o := range in.ServiceEntries {
		out = append(out, o)
	}
	for _, o := range in.Gateways {
		out = append(out, o)
	}
	for _, o := range in.VirtualServices {
		out = append(out, o)
	}
	for _, o := range in.DestinationRules {
		out = append(out, o)
	}
	for _, o := range in.Sidecars {
		out = append(out, o)
	}
	for _, o := range in.Services {
		out = append(out, o)
	}
	for _, o := range in.Endpoints {
		out = append(out, o)
	}
	for _, o := range in.EndpointSlices {
		out = append(out, o)
	}
	for _, o := range in.Namespaces {
		out = append(out, o)
	}
	return out
}

// Older orders objects as istiod resolves conflicts between them: the
// oldest (creation time) first, then by namespace and name.
func Older(a, b Object) bool {
	ta, tb := a.GetCreationTimestamp().Time, b.GetCreationTimestamp().Time
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	if a.GetNamespace() != b.GetNamespace() {
		return a.GetNamespace() < b.GetNamespace()
	}
	return a.GetName() < b.GetName()
}
