package kubeint

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/test/kubeenv"
)

// expectation is the part of a translate scenario's expect.yaml these
// tests check: the proxies and the calls through their config.
type expectation struct {
	Proxies map[string]struct {
		Node   string            `json:"node"`
		Labels map[string]string `json:"labels"`
	} `json:"proxies"`
	Calls []struct {
		From string   `json:"from"`
		Call sim.Call `json:"call"`
		Want struct {
			Outcome     sim.Outcome `json:"outcome"`
			Cluster     string      `json:"cluster"`
			Status      uint32      `json:"status"`
			VirtualHost string      `json:"virtualHost"`
			RouteConfig string      `json:"routeConfig"`
			Listener    string      `json:"listener"`
		} `json:"want"`
	} `json:"calls"`
	Clusters []struct {
		Proxy  string `json:"proxy"`
		Name   string `json:"name"`
		Absent bool   `json:"absent"`
	} `json:"clusters"`
}

// TestSeedScenarios applies each seed scenario of translate's testdata to
// the API server and checks that the config proxies receive over ADS from
// `serve --kube` behaves as the scenario says (the same calls the golden
// tests run on the files). The API server adds what files lack: allocated
// clusterIPs, the default/kubernetes Service, server-side defaults.
func TestSeedScenarios(t *testing.T) {
	env := kubeenv.Start(t)
	dirs, err := filepath.Glob("../../translate/testdata/in/seed-*")
	require.NoError(t, err)
	require.Len(t, dirs, 3)
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "expect.yaml"))
			require.NoError(t, err)
			var want expectation
			require.NoError(t, yaml.Unmarshal(raw, &want))
			require.NotEmpty(t, want.Calls)

			manifest := readManifests(t, filepath.Join(dir, "config", "*.yaml"))
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
