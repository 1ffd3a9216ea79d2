package e2e

import (
	"context"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/chokepoint-xds/chokepoint/internal/app"
)

func TestSmokeSotW(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := app.New(ctx, app.Options{Files: []string{"../../examples/httpbin-passthrough"}, XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0"})
	require.NoError(t, err)
	go a.Run(ctx)
	conn, err := grpc.NewClient(a.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	require.NoError(t, err)
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "mesh-test", "LABELS": map[string]any{"app": "sleep"}})
	node := &core.Node{Id: "sidecar~10.244.2.7~sleep-6d8f.mesh-test~mesh-test.svc.cluster.local", Metadata: md}
	require.NoError(t, stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster"}))
	done := make(chan *discovery.DiscoveryResponse, 1)
	go func() { r, _ := stream.Recv(); done <- r }()
	select {
	case r := <-done:
		require.NotNil(t, r)
		require.NotEmpty(t, r.Resources)
		t.Logf("got %d clusters version %s", len(r.Resources), r.VersionInfo)
	case <-time.After(5 * time.Second):
		t.Fatal("no response")
	}
}
