package server

import (
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec wrapped here
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// xdsCodec is gRPC's proto codec, except for xDS responses that carry
// their resources already encoded, shared by every stream of a proxy class
// (as unknown fields: see snapshot/encoded.go). gRPC's codec would encode
// each such response into a new buffer per stream (megabytes per proxy per
// push with thousands of clusters, held in gRPC's buffer pool); this one
// writes the response's own fields and then the shared bytes, by reference.
type xdsCodec struct{ inner encoding.CodecV2 }

func newXDSCodec() encoding.CodecV2 {
	return xdsCodec{inner: encoding.GetCodecV2("proto")}
}

// minShared is the size of encoded resources from which a response is
// written by reference.
const minShared = 4 << 10

func (c xdsCodec) Name() string { return "proto" }

func (c xdsCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.inner.Unmarshal(data, v) }

func (c xdsCodec) Marshal(v any) (mem.BufferSlice, error) {
	var head proto.Message
	var shared []byte
	switch r := v.(type) {
	case *discovery.DiscoveryResponse:
		if shared = r.ProtoReflect().GetUnknown(); len(shared) >= minShared {
			head = &discovery.DiscoveryResponse{
				VersionInfo: r.VersionInfo, Resources: r.Resources, Canary: r.Canary, TypeUrl: r.TypeUrl,
				Nonce: r.Nonce, ControlPlane: r.ControlPlane, ResourceErrors: r.ResourceErrors,
			}
		}
	case *discovery.DeltaDiscoveryResponse:
		if shared = r.ProtoReflect().GetUnknown(); len(shared) >= minShared {
			head = &discovery.DeltaDiscoveryResponse{
				SystemVersionInfo: r.SystemVersionInfo, Resources: r.Resources, TypeUrl: r.TypeUrl,
				RemovedResources: r.RemovedResources, RemovedResourceNames: r.RemovedResourceNames,
				Nonce: r.Nonce, ControlPlane: r.ControlPlane, ResourceErrors: r.ResourceErrors,
			}
		}
	}
	if head == nil {
		return c.inner.Marshal(v)
	}
	b, err := proto.Marshal(head)
	if err != nil {
		return nil, err
	}
	// Fields may come in any order on the wire.
	return mem.BufferSlice{mem.SliceBuffer(b), mem.SliceBuffer(shared)}, nil
}
