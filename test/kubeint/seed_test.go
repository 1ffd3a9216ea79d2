package kubeint

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/test/kubeenv"
	"github.com/chokepoint-xds/chokepoint/test/scenarios"
)

// TestSeedScenarios applies each seed scenario of translate's testdata to
// the API server and checks that the config proxies receive over ADS from
// `serve --kube` behaves as the scenario says (the same calls the golden
// tests run on the files). The API server adds what files lack: allocated
// clusterIPs, the default/kubernetes Service, server-side defaults.
func TestSeedScenarios(t *testing.T) {
	env := kubeenv.Start(t)
	var seeds []string
	for _, name := range scenarios.Names(t) {
		if strings.HasPrefix(name, "seed-") {
			seeds = append(seeds, name)
		}
	}
	require.Len(t, seeds, 3)
	for _, seed := range seeds {
		t.Run(seed, func(t *testing.T) {
			want, _ := scenarios.Load(t, seed)
			require.NotEmpty(t, want.Calls)

			manifest := readManifests(t, filepath.Join(want.ConfigDir(), "*.yaml"))
			applied := env.Apply(t, manifest)
			mirrored := endpointSlicesFor(t, applied)
			if mirrored != "" {
				env.Apply(t, mirrored)
			}
			t.Cleanup(func() {
				env.Delete(t, manifest)
				if mirrored != "" {
					env.Delete(t, mirrored)
				}
			})

			c := startCP(t, clientsFor(t, env.Config))
			names := make([]string, 0, len(want.Proxies))
			for name := range want.Proxies {
				names = append(names, name)
			}
			sort.Strings(names)
			proxies := map[string]*proxy{}
			for _, name := range names {
				spec := want.Proxies[name]
				proxies[name] = c.connect(t, spec.Node, spec.Labels)
			}
			for _, name := range names {
				p := proxies[name]
				res := p.synced(t, syncTimeout)
				require.NoError(t, res.Validate(), "proxy %s", name)
				require.Empty(t, res.Consistency(), "proxy %s", name)
			}
			for i, call := range want.Calls {
				p := proxies[call.From]
				require.NotNil(t, p, "call %d: unknown proxy %q", i, call.From)
				got := p.call(p.current(t), call.Call)
				w := call.Want
				msg := []any{"call %d from %s %+v: got %s", i, call.From, call.Call, got}
				require.Equal(t, w.Outcome, got.Outcome, msg...)
				for _, check := range []struct{ want, got string }{
					{w.Cluster, got.Cluster}, {w.VirtualHost, got.VirtualHost},
					{w.RouteConfig, got.RouteConfig}, {w.Listener, got.Listener},
				} {
					if check.want != "" {
						require.Equal(t, check.want, check.got, msg...)
					}
				}
				if w.Status != 0 {
					require.Equal(t, w.Status, got.Status, msg...)
				}
			}
			for _, wc := range want.Clusters {
				clusters := clusterNames(proxies[wc.Proxy].current(t))
				if wc.Absent {
					require.NotContains(t, clusters, wc.Name)
				} else {
					require.Contains(t, clusters, wc.Name)
				}
			}
		})
	}
}
