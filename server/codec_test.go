package server

import (
	"fmt"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// encoded builds n Anys and their encoding as field 2 entries.
func encoded(n int) ([]*anypb.Any, []byte) {
	var as []*anypb.Any
	var b []byte
	for i := 0; i < n; i++ {
		a := &anypb.Any{TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster", Value: []byte(fmt.Sprintf("cluster-%d-%0*d", i, i%300, 7))}
		as = append(as, a)
		raw, _ := proto.Marshal(a)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, raw)
	}
	return as, b
}

// TestCodecShared: a response carrying its resources encoded is written as
// its own fields plus those bytes, by reference, and decodes to the same
// resources; other responses take gRPC's path.
func TestCodecShared(t *testing.T) {
	c := newXDSCodec()
	as, enc := encoded(300)
	resp := &discovery.DiscoveryResponse{VersionInfo: "v1", TypeUrl: "t", Nonce: "7"}
	resp.ProtoReflect().SetUnknown(enc)
	data, err := c.Marshal(resp)
	require.NoError(t, err)
	require.Len(t, data, 2)
	require.Same(t, &enc[0], &data[1].ReadOnlyData()[0], "the shared bytes are referenced")
	got := &discovery.DiscoveryResponse{}
	require.NoError(t, proto.Unmarshal(data.Materialize(), got))
	require.True(t, proto.Equal(&discovery.DiscoveryResponse{VersionInfo: "v1", TypeUrl: "t", Nonce: "7", Resources: as}, got))
	require.Equal(t, enc, []byte(resp.ProtoReflect().GetUnknown()), "the response itself is not changed")

	// Delta: the entries are Resources.
	var rs []*discovery.Resource
	var denc []byte
	for i, a := range as {
		r := &discovery.Resource{Name: fmt.Sprint("r", i), Version: "x", Resource: a}
		rs = append(rs, r)
		raw, _ := proto.Marshal(r)
		denc = protowire.AppendTag(denc, 2, protowire.BytesType)
		denc = protowire.AppendBytes(denc, raw)
	}
	dresp := &discovery.DeltaDiscoveryResponse{SystemVersionInfo: "s", TypeUrl: "t", Nonce: "9", RemovedResources: []string{"gone"}}
	dresp.ProtoReflect().SetUnknown(denc)
	data, err = c.Marshal(dresp)
	require.NoError(t, err)
	require.Len(t, data, 2)
	dgot := &discovery.DeltaDiscoveryResponse{}
	require.NoError(t, proto.Unmarshal(data.Materialize(), dgot))
	require.True(t, proto.Equal(&discovery.DeltaDiscoveryResponse{SystemVersionInfo: "s", TypeUrl: "t", Nonce: "9",
		RemovedResources: []string{"gone"}, Resources: rs}, dgot))

	// A plain response: gRPC's encoding.
	plain := &discovery.DiscoveryResponse{VersionInfo: "v", Resources: as[:3]}
	data, err = c.Marshal(plain)
	require.NoError(t, err)
	want, _ := proto.Marshal(plain)
	require.Equal(t, want, data.Materialize())
}
