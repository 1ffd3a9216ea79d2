package snapshot

import (
	"testing"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/chokepoint-xds/chokepoint/test/scenarios"
	"github.com/chokepoint-xds/chokepoint/translate"
)

// gcpConsistent is go-control-plane's own check on the same resources.
func gcpConsistent(res *translate.Resources) error {
	items := map[types.ResponseType][]types.Resource{}
	for _, r := range res.Clusters {
		items[types.Cluster] = append(items[types.Cluster], r)
	}
	for _, r := range res.Listeners {
		items[types.Listener] = append(items[types.Listener], r)
	}
	for _, r := range res.Routes {
		items[types.Route] = append(items[types.Route], r)
	}
	for _, r := range res.Endpoints {
		items[types.Endpoint] = append(items[types.Endpoint], r)
	}
	s := &cachev3.Snapshot{}
	for typ, rs := range items {
		s.Resources[typ] = cachev3.NewResources("v", rs)
	}
	return s.Consistent()
}

// TestConsistentAgreesWithGoControlPlane runs both checks on every proxy
// of every translation scenario, and on broken copies of them.
func TestConsistentAgreesWithGoControlPlane(t *testing.T) {
	names := scenarios.Names(t)
	checked := 0
	for _, scenario := range names {
		sc, in := scenarios.Load(t, scenario)
		idx := translate.NewIndex(in)
		for name := range sc.Proxies {
			p := sc.Proxy(t, name)
			res := idx.Translate(p)
			where := scenario + "/" + name
			require.NoError(t, consistent(res), where)
			require.NoError(t, gcpConsistent(res), where)
			checked++
			if len(res.Routes) > 0 {
				broken := *res
				broken.Routes = res.Routes[1:]
				require.ErrorContains(t, consistent(&broken), "route configurations referenced but missing: "+res.Routes[0].Name, where)
				require.Error(t, gcpConsistent(&broken), where)
			}
			if len(res.Endpoints) > 0 {
				broken := *res
				broken.Endpoints = res.Endpoints[1:]
				require.ErrorContains(t, consistent(&broken), "endpoints referenced but missing: "+res.Endpoints[0].ClusterName, where)
				require.Error(t, gcpConsistent(&broken), where)
				broken.Endpoints = append(append(broken.Endpoints[:0:0], res.Endpoints...), res.Endpoints[0])
				broken.Endpoints[len(broken.Endpoints)-1] = cloneCLA(res, "extra")
				require.ErrorContains(t, consistent(&broken), "endpoints not referenced: extra", where)
				require.Error(t, gcpConsistent(&broken), where)
			}
		}
	}
	require.GreaterOrEqual(t, checked, len(names))
}

func cloneCLA(res *translate.Resources, name string) *endpoint.ClusterLoadAssignment {
	c := proto.Clone(res.Endpoints[0]).(*endpoint.ClusterLoadAssignment)
	c.ClusterName = name
	return c
}
