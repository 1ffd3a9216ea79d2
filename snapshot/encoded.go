package snapshot

import (
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// A full response to a wildcard subscription is the same for every stream
// of a class: all of its resources at one version. Its resources field is
// encoded once (encodeResources) and carried by each stream's response as
// unknown fields (withEncoded): on the wire these are the repeated field 2
// entries of DiscoveryResponse and DeltaDiscoveryResponse, so the proxy
// decodes ordinary resources. The server's codec (server.xdsCodec) writes
// such bytes by reference, so a push to a thousand proxies neither encodes
// nor copies megabytes per stream; the SotW and Delta callbacks count them
// with EncodedSize.

// resourcesField is the field number of resources in both responses.
const resourcesField = 2

func encodeResources(n int, at func(int) proto.Message) []byte {
	var b []byte
	opts := proto.MarshalOptions{Deterministic: true}
	for i := 0; i < n; i++ {
		m := at(i)
		b = protowire.AppendTag(b, resourcesField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(opts.Size(m)))
		var err error
		if b, err = opts.MarshalAppend(b, m); err != nil {
			// Anys and Delta entries of bytes already encoded once cannot
			// fail to encode again.
			panic(err)
		}
	}
	if b == nil {
		b = []byte{}
	}
	return b
}

// withEncoded attaches encoded resources to a response that has none.
func withEncoded(m proto.Message, encoded []byte) {
	m.ProtoReflect().SetUnknown(encoded)
}

// EncodedSize is the size of the resources a response carries, whether as
// messages or encoded.
func EncodedSize(m proto.Message) int64 {
	n := int64(len(m.ProtoReflect().GetUnknown()))
	switch r := m.(type) {
	case *discovery.DiscoveryResponse:
		for _, a := range r.GetResources() {
			n += int64(len(a.GetValue()))
		}
	case *discovery.DeltaDiscoveryResponse:
		for _, res := range r.GetResources() {
			n += int64(len(res.GetResource().GetValue()))
		}
	}
	return n
}
