package analyze_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/chokepoint-xds/chokepoint/analyze"
	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/watch"
)

var update = flag.Bool("update", false, "rewrite testdata/*/want.txt (review the diff!)")

// testCase is testdata/NAME/case.yaml; the inputs are testdata/NAME/config
// and the expected text output testdata/NAME/want.txt.
type testCase struct {
	Description string `json:"description"`
	// Want is every message expected, by code, level, object and field:
	// no more, no fewer.
	Want []struct {
		Code   string        `json:"code"`
		Level  analyze.Level `json:"level"`
		Object string        `json:"object"`
		Field  string        `json:"field"`
	} `json:"want"`
	// Silent are objects of the inputs that no message may name: the valid
	// objects beside the broken ones.
	Silent []string `json:"silent"`
}

// load reads a config directory and makes the file names relative to it,
// so goldens do not depend on where the test runs.
func load(t *testing.T, dir string) *inputs.Inputs {
	t.Helper()
	in, _, err := watch.Load(watch.LoadOptions{Paths: []string{dir}})
	require.NoError(t, err)
	rel := func(s *inputs.Source) {
		if r, err := filepath.Rel(dir, s.File); err == nil && s.File != "" {
			s.File = r
		}
	}
	for _, o := range in.Objects() {
		switch o := o.(type) {
		case *inputs.ServiceEntry:
			rel(&o.Source)
		case *inputs.Gateway:
			rel(&o.Source)
		case *inputs.VirtualService:
			rel(&o.Source)
		case *inputs.DestinationRule:
			rel(&o.Source)
		case *inputs.Sidecar:
			rel(&o.Source)
		case *inputs.Service:
			rel(&o.Source)
		case *inputs.Endpoints:
			rel(&o.Source)
		case *inputs.EndpointSlice:
			rel(&o.Source)
		case *inputs.Namespace:
			rel(&o.Source)
		}
	}
	for i := range in.Problems {
		rel(&in.Problems[i].Source)
	}
	rel(&in.MeshSource)
	return in
}

func caseNames(t *testing.T) []string {
	entries, err := os.ReadDir("testdata")
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

func TestCases(t *testing.T) {
	seenCodes := map[string]bool{}
	for _, name := range caseNames(t) {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			raw, err := os.ReadFile(filepath.Join(dir, "case.yaml"))
			require.NoError(t, err)
			var tc testCase
			require.NoError(t, yaml.UnmarshalStrict(raw, &tc))
			require.NotEmpty(t, tc.Description)
			in := load(t, filepath.Join(dir, "config"))
			msgs := analyze.Analyze(in)

			var got, want []string
			for _, m := range msgs {
				got = append(got, strings.Join([]string{m.Code, string(m.Level), m.Object, m.Field}, " | "))
				seenCodes[m.Code] = true
				require.NotEmpty(t, m.Message)
				if m.Code != analyze.InputWarning.Code {
					require.NotEmpty(t, m.Consequence, "every analyzer says what the operator will see: %s", m)
				}
			}
			for _, w := range tc.Want {
				want = append(want, strings.Join([]string{w.Code, string(w.Level), w.Object, w.Field}, " | "))
			}
			sort.Strings(got)
			sort.Strings(want)
			require.Equal(t, want, got, "messages (code | level | object | field)")

			names := map[string]bool{}
			for _, o := range in.Objects() {
				names[o.KindName()] = true
			}
			for _, s := range tc.Silent {
				require.True(t, names[s], "silent object %s is not in the inputs", s)
				for _, m := range msgs {
					require.NotEqual(t, s, m.Object, "valid object flagged: %s", m)
				}
			}

			var buf bytes.Buffer
			require.NoError(t, analyze.WriteText(&buf, msgs))
			golden := filepath.Join(dir, "want.txt")
			if *update {
				require.NoError(t, os.WriteFile(golden, buf.Bytes(), 0o644))
				return
			}
			exp, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./analyze -update to write it")
			require.Equal(t, string(exp), buf.String())
		})
	}
	if t.Failed() {
		return
	}
	// Every code is exercised by some case.
	for _, c := range analyze.Codes {
		require.True(t, seenCodes[c.Code], "no test case reports %s (%s)", c.Code, c.Name)
	}
}

// TestTranslateScenarios runs over the translator's scenario corpus: the
// valid scenarios stay silent, the broken ones give exactly their pitfall.
func TestTranslateScenarios(t *testing.T) {
	expected := map[string][]string{
		// The seeds of the two broken-gateway pitfalls.
		"gateway-selector-no-match":   {"IST0101 Error Gateway default/istio-egressgateway spec.selector"},
		"gateway-port-not-in-service": {"IST0162 Warning Gateway default/admin-gateway spec.servers[0].port.number"},
		// The translator's own conflict warning, on purpose.
		"se-duplicate-host-oldest-wins": {"CP0001 Warning ServiceEntry default/a-partner-api-pinned spec.hosts"},
		// Egress gateways under the default ALLOW_ANY: bypassable, an Info.
		"egress-gateway-http": {"CP0006 Info VirtualService default/direct-cnn-through-egress-gateway spec.http[0].route[0].destination.host"},
		"egress-gateway-tls-multi-host": {
			"CP0006 Info VirtualService default/cnn-through-egress-gateway spec.tls[0].route[0].destination.host",
			"CP0006 Info VirtualService default/github-through-egress-gateway spec.tls[0].route[0].destination.host",
		},
		"tls-origination-egress-gateway": {"CP0006 Info VirtualService default/direct-cnn-through-egress-gateway spec.http[0].route[0].destination.host"},
		"wildcard-egress-gateway":        {"CP0006 Info VirtualService default/direct-wikipedia-through-egress-gateway spec.tls[0].route[0].destination.host"},
	}
	dirs, err := filepath.Glob("../translate/testdata/in/*/config")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(dirs), 31)
	for _, dir := range dirs {
		name := filepath.Base(filepath.Dir(dir))
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, m := range analyze.Analyze(load(t, dir)) {
				got = append(got, strings.Join([]string{m.Code, string(m.Level), m.Object, m.Field}, " "))
			}
			require.Equal(t, expected[name], got)
		})
	}
}

// TestExampleSilent: the seed's httpbin passthrough with REGISTRY_ONLY is
// the reference setup and must give no message at all.
func TestExampleSilent(t *testing.T) {
	msgs := analyze.Analyze(load(t, "../examples/httpbin-passthrough"))
	require.Empty(t, msgs)
}

func TestRender(t *testing.T) {
	m := analyze.Message{Code: "IST0101", Level: analyze.Error, Object: "Gateway default/gw",
		Source: inputs.Source{File: "egress.yaml", Doc: 2}, Field: "spec.selector",
		Message: "Referenced selector not found", Consequence: "Traffic does not flow."}
	require.Equal(t, "Error [IST0101] (Gateway default/gw egress.yaml:2) spec.selector: Referenced selector not found\n    Traffic does not flow.", m.String())
	m.Source = inputs.Source{Kube: "12345"}
	m.Field, m.Consequence = "", ""
	require.Equal(t, "Error [IST0101] (Gateway default/gw kube@12345) Referenced selector not found", m.String())
	m.Object, m.Source = "", inputs.Source{File: "x.yaml", Doc: 4}
	require.Equal(t, "Error [IST0101] (x.yaml:4) Referenced selector not found", m.String())

	var buf bytes.Buffer
	require.NoError(t, analyze.WriteText(&buf, nil))
	require.Equal(t, "No validation issues found.\n", buf.String())
	buf.Reset()
	require.NoError(t, analyze.WriteJSON(&buf, nil))
	require.Equal(t, "[]\n", buf.String())
	buf.Reset()
	require.NoError(t, analyze.WriteJSON(&buf, []analyze.Message{m}))
	var back []map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &back))
	require.Equal(t, []map[string]any{{"code": "IST0101", "level": "Error", "source": map[string]any{"file": "x.yaml", "doc": float64(4)},
		"message": "Referenced selector not found"}}, back)
}

// TestCodesDocumented: the README's table lists every code with its level.
func TestCodesDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, c := range analyze.Codes {
		require.False(t, seen[c.Code], "code %s listed twice", c.Code)
		seen[c.Code] = true
		row := "| " + c.Code + " | " + c.Name + " | " + string(c.Level) + " |"
		require.True(t, strings.Contains(string(readme), row), "README has no code table row starting %q", row)
	}
}
