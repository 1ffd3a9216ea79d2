package snapshot

import (
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/runtime/protoiface"
)

// premarshaled stands in for a resource in the snapshot cache. The
// resource's wire bytes are computed once per snapshot; go-control-plane
// marshals every resource again for every response it builds (once per
// stream), and for a premarshaled resource that costs nothing: Marshal
// returns the shared bytes. Everything else (reflection, Interface()) is the
// real resource's.
type premarshaled struct {
	protoreflect.Message
	name    string
	raw     []byte
	methods *protoiface.Methods
}

func newPremarshaled(real protoreflect.ProtoMessage, name string, raw []byte) *premarshaled {
	p := &premarshaled{Message: real.ProtoReflect(), name: name, raw: raw}
	p.methods = &protoiface.Methods{
		Flags: protoiface.SupportMarshalDeterministic,
		Marshal: func(in protoiface.MarshalInput) (protoiface.MarshalOutput, error) {
			if len(in.Buf) == 0 {
				// The bytes are read-only: gRPC copies them to the wire.
				return protoiface.MarshalOutput{Buf: p.raw}, nil
			}
			return protoiface.MarshalOutput{Buf: append(in.Buf, p.raw...)}, nil
		},
		CheckInitialized: func(protoiface.CheckInitializedInput) (protoiface.CheckInitializedOutput, error) {
			return protoiface.CheckInitializedOutput{}, nil // checked when built
		},
	}
	return p
}

// ProtoReflect makes premarshaled a proto.Message whose reflection has the
// fast-path methods above.
func (p *premarshaled) ProtoReflect() protoreflect.Message { return p }

// ProtoMethods overrides the real resource's fast paths.
func (p *premarshaled) ProtoMethods() *protoiface.Methods { return p.methods }

// GetName is how go-control-plane names a resource.
func (p *premarshaled) GetName() string { return p.name }
