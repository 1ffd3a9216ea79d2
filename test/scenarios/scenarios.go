// Package scenarios reads the translation scenarios under
// translate/testdata/in for the tests of every package that replays them
// (translate's goldens, trace, snapshot, the Kubernetes integration tests):
// NAME/expect.yaml says which proxies to build and how calls through their
// config must end; NAME/config holds the Istio YAML.
package scenarios

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

// Scenario is one expect.yaml.
type Scenario struct {
	Description string `json:"description"`
	// Mesh is an optional mesh config file, relative to the scenario.
	Mesh    string           `json:"mesh,omitempty"`
	Proxies map[string]Proxy `json:"proxies"`
	Calls   []Call           `json:"calls"`
	// Problems are substrings that must each appear in some problem.
	Problems []string `json:"problems,omitempty"`
	// Dangling are cluster names a route may name although they do not
	// exist (istiod does the same for unknown destinations).
	Dangling []string  `json:"dangling,omitempty"`
	Clusters []Cluster `json:"clusters,omitempty"`

	// Name and Dir are where the scenario was read from.
	Name string `json:"-"`
	Dir  string `json:"-"`
}

// Proxy is a proxy of the scenario.
type Proxy struct {
	Node   string            `json:"node"`
	Labels map[string]string `json:"labels"`
}

// Call is a call from a proxy and how it must end.
type Call struct {
	From string   `json:"from"`
	Call sim.Call `json:"call"`
	Want Want     `json:"want"`
}

// Want is the part of a sim.Result a call checks; empty fields are not
// checked.
type Want struct {
	Outcome     sim.Outcome `json:"outcome"`
	Cluster     string      `json:"cluster,omitempty"`
	Status      uint32      `json:"status,omitempty"`
	VirtualHost string      `json:"virtualHost,omitempty"`
	RouteConfig string      `json:"routeConfig,omitempty"`
	Listener    string      `json:"listener,omitempty"`
	Route       string      `json:"route,omitempty"`
	Source      string      `json:"source,omitempty"`
}

// Cluster is a check on one generated cluster.
type Cluster struct {
	Proxy          string `json:"proxy"`
	Name           string `json:"name"`
	Type           string `json:"type,omitempty"`
	MaxConnections uint32 `json:"maxConnections,omitempty"`
	SNI            string `json:"sni,omitempty"`
	Absent         bool   `json:"absent,omitempty"`
}

// Root is translate/testdata/in.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "translate", "testdata", "in")
}

// Names lists the scenarios.
func Names(t testing.TB) []string {
	entries, err := os.ReadDir(Root())
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	require.NotEmpty(t, names)
	return names
}

// Load reads scenario name and its inputs.
func Load(t testing.TB, name string) (*Scenario, *inputs.Inputs) {
	t.Helper()
	dir := filepath.Join(Root(), name)
	raw, err := os.ReadFile(filepath.Join(dir, "expect.yaml"))
	require.NoError(t, err)
	sc := &Scenario{Name: name, Dir: dir}
	require.NoError(t, yaml.UnmarshalStrict(raw, sc), "expect.yaml of %s", name)
	opts := watch.LoadOptions{Paths: []string{sc.ConfigDir()}}
	if sc.Mesh != "" {
		opts.MeshFile = filepath.Join(dir, sc.Mesh)
	}
	in, _, err := watch.Load(opts)
	require.NoError(t, err)
	return sc, in
}

// ConfigDir holds the scenario's Istio YAML.
func (sc *Scenario) ConfigDir() string { return filepath.Join(sc.Dir, "config") }

// Proxy builds the scenario's proxy name.
func (sc *Scenario) Proxy(t testing.TB, name string) translate.Proxy {
	t.Helper()
	spec, ok := sc.Proxies[name]
	require.True(t, ok, "unknown proxy %q", name)
	p, err := translate.ParseNodeID(spec.Node)
	require.NoError(t, err)
	p.Labels = spec.Labels
	return p
}
