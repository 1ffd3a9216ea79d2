package snapshot

import (
	"os"
	"path/filepath"
	"testing"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
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
	dirs, err := filepath.Glob("../translate/testdata/in/*")
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	checked := 0
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, "expect.yaml"))
		require.NoError(t, err)
		var exp struct {
			Proxies map[string]struct {
				Node   string            `json:"node"`
				Labels map[string]string `json:"labels"`
			} `json:"proxies"`
		}
		require.NoError(t, yaml.Unmarshal(raw, &exp), dir)
		in, _, err := watch.Load(watch.LoadOptions{Paths: []string{filepath.Join(dir, "config")}})
		require.NoError(t, err, dir)
		idx := translate.NewIndex(in)
		for name, px := range exp.Proxies {
			p, err := translate.ParseNodeID(px.Node)
			require.NoError(t, err)
			p.Labels = px.Labels
			res := idx.Translate(p)
			where := filepath.Base(dir) + "/" + name
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
	require.GreaterOrEqual(t, checked, len(dirs))
}

func cloneCLA(res *translate.Resources, name string) *endpoint.ClusterLoadAssignment {
	c := proto.Clone(res.Endpoints[0]).(*endpoint.ClusterLoadAssignment)
	c.ClusterName = name
	return c
}
