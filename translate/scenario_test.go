package translate_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/chokepoint-xds/chokepoint/configdump"
	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/test/scenarios"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/out (review the diff!)")

func loadScenario(t testing.TB, name string) (*scenarios.Scenario, *translate.Index) {
	sc, in := scenarios.Load(t, name)
	return sc, translate.NewIndex(in)
}

// TestScenarios checks each scenario's behaviour (calls through the
// generated config), its validity and consistency, and its golden files.
func TestScenarios(t *testing.T) {
	names := scenarios.Names(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			sc, idx := loadScenario(t, name)
			require.NotEmpty(t, sc.Proxies, "scenario needs proxies")
			results := map[string]*translate.Resources{}
			var problems []string
			for _, p := range idx.Problems() {
				problems = append(problems, p.Error())
			}
			pnames := make([]string, 0, len(sc.Proxies))
			for pn := range sc.Proxies {
				pnames = append(pnames, pn)
			}
			sort.Strings(pnames)
			for _, pn := range pnames {
				p := sc.Proxy(t, pn)
				res := idx.Translate(p)
				require.NoError(t, res.Validate(), "proxy %s", pn)
				for _, d := range res.Consistency() {
					ok := false
					for _, allowed := range sc.Dangling {
						if strings.Contains(d, allowed) {
							ok = true
						}
					}
					require.True(t, ok, "proxy %s: inconsistent: %s", pn, d)
				}
				// Deterministic: a second run gives the same bytes.
				again := idx.Translate(p)
				require.Equal(t, render(t, res), render(t, again), "proxy %s: output is not deterministic", pn)
				results[pn] = res
				for _, pr := range res.Problems {
					problems = append(problems, pr.Error())
				}
				checkGolden(t, name, pn, res)
			}
			for i, c := range sc.Calls {
				res, ok := results[c.From]
				require.True(t, ok, "call %d: unknown proxy %q", i, c.From)
				typ := translate.NodeType(strings.SplitN(sc.Proxies[c.From].Node, "~", 2)[0])
				got := sim.Run(res, typ, c.Call)
				w := c.Want
				msg := "call %d from %s %+v: got %s"
				require.Equal(t, w.Outcome, got.Outcome, msg, i, c.From, c.Call, got)
				if w.Cluster != "" {
					require.Equal(t, w.Cluster, got.Cluster, msg, i, c.From, c.Call, got)
				}
				if w.Status != 0 {
					require.Equal(t, w.Status, got.Status, msg, i, c.From, c.Call, got)
				}
				if w.VirtualHost != "" {
					require.Equal(t, w.VirtualHost, got.VirtualHost, msg, i, c.From, c.Call, got)
				}
				if w.RouteConfig != "" {
					require.Equal(t, w.RouteConfig, got.RouteConfig, msg, i, c.From, c.Call, got)
				}
				if w.Listener != "" {
					require.Equal(t, w.Listener, got.Listener, msg, i, c.From, c.Call, got)
				}
				if w.Route != "" {
					require.Equal(t, w.Route, got.Route, msg, i, c.From, c.Call, got)
				}
				if w.Source != "" {
					require.Contains(t, got.Sources, w.Source, msg, i, c.From, c.Call, got)
				}
			}
			for _, want := range sc.Problems {
				found := false
				for _, p := range problems {
					if strings.Contains(p, want) {
						found = true
					}
				}
				require.True(t, found, "no problem mentions %q; problems:\n%s", want, strings.Join(problems, "\n"))
			}
			for _, wc := range sc.Clusters {
				res := results[wc.Proxy]
				require.NotNil(t, res, "unknown proxy %q", wc.Proxy)
				var c *cluster.Cluster
				for _, x := range res.Clusters {
					if x.Name == wc.Name {
						c = x
					}
				}
				if wc.Absent {
					require.Nil(t, c, "cluster %s should not exist", wc.Name)
					continue
				}
				require.NotNil(t, c, "cluster %s missing on %s", wc.Name, wc.Proxy)
				if wc.Type != "" {
					require.Equal(t, wc.Type, c.GetType().String(), "cluster %s type", wc.Name)
				}
				if wc.MaxConnections != 0 {
					require.Equal(t, wc.MaxConnections, c.GetCircuitBreakers().GetThresholds()[0].GetMaxConnections().GetValue())
				}
				if wc.SNI != "" {
					require.Contains(t, string(mustJSON(t, c)), `"sni":"`+wc.SNI+`"`)
				}
			}
		})
	}
	if *update {
		removeStaleGoldens(t, names)
	}
}

func mustJSON(t testing.TB, m proto.Message) []byte {
	b, err := protojson.MarshalOptions{}.Marshal(m)
	require.NoError(t, err)
	var c bytes.Buffer
	require.NoError(t, jsonCompact(&c, b))
	return c.Bytes()
}

// render is the golden form: one YAML document per resource.
func render(t testing.TB, res *translate.Resources) map[string][]byte {
	out := map[string][]byte{}
	add := func(kind string, m proto.Message) {
		b, err := configdump.MarshalYAML(m)
		require.NoError(t, err)
		if len(out[kind]) > 0 {
			out[kind] = append(out[kind], []byte("---\n")...)
		}
		out[kind] = append(out[kind], b...)
	}
	for _, c := range res.Clusters {
		add("clusters", c)
	}
	for _, l := range res.Listeners {
		add("listeners", l)
	}
	for _, r := range res.Routes {
		add("routes", r)
	}
	for _, e := range res.Endpoints {
		add("endpoints", e)
	}
	return out
}

func checkGolden(t *testing.T, scenario, proxy string, res *translate.Resources) {
	dir := filepath.Join("testdata/out", scenario)
	for _, kind := range []string{"clusters", "listeners", "routes", "endpoints"} {
		got := render(t, res)[kind]
		path := filepath.Join(dir, proxy+"."+kind+".yaml")
		if *update {
			require.NoError(t, os.MkdirAll(dir, 0o755))
			if len(got) == 0 {
				_ = os.Remove(path)
				continue
			}
			require.NoError(t, os.WriteFile(path, got, 0o644))
			continue
		}
		want, err := os.ReadFile(path)
		if os.IsNotExist(err) && len(got) == 0 {
			continue
		}
		require.NoError(t, err, "golden file missing: run `make golden` and review it")
		require.Equal(t, string(want), string(got), "%s differs from the translation; if intended, run `make golden` and review the diff", path)
	}
}

// removeStaleGoldens deletes golden files whose scenario or proxy is gone.
func removeStaleGoldens(t *testing.T, names []string) {
	keep := map[string]map[string]bool{}
	for _, n := range names {
		sc, _ := loadScenario(t, n)
		keep[n] = map[string]bool{}
		for p := range sc.Proxies {
			keep[n][p] = true
		}
	}
	dirs, _ := os.ReadDir("testdata/out")
	for _, d := range dirs {
		proxies, ok := keep[d.Name()]
		if !ok {
			require.NoError(t, os.RemoveAll(filepath.Join("testdata/out", d.Name())))
			continue
		}
		files, _ := os.ReadDir(filepath.Join("testdata/out", d.Name()))
		for _, f := range files {
			p := strings.SplitN(f.Name(), ".", 2)[0]
			if !proxies[p] {
				require.NoError(t, os.Remove(filepath.Join("testdata/out", d.Name(), f.Name())))
			}
		}
	}
}
