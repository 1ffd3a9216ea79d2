package trace_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/trace"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/test/scenarios"
)

var update = flag.Bool("update", false, "rewrite testdata/*.txt (review the diff!)")

func loadScenario(t testing.TB, name string) (*scenarios.Scenario, *translate.Index) {
	sc, in := scenarios.Load(t, name)
	return sc, translate.NewIndex(in)
}

func callString(c sim.Call) string {
	parts := []string{string(c.Protocol)}
	if c.SNI != "" {
		parts = append(parts, "sni="+c.SNI)
	}
	if c.Host != "" {
		parts = append(parts, "host="+c.Host)
	}
	if c.Path != "" {
		parts = append(parts, "path="+c.Path)
	}
	if c.Address != "" {
		parts = append(parts, "address="+c.Address)
	}
	parts = append(parts, fmt.Sprintf("port=%d", c.Port))
	return strings.Join(parts, " ")
}

// TestGolden traces every call of every translate scenario and compares
// text, JSON (and, for the seeds, Mermaid) with testdata/SCENARIO.txt. The
// first hop must agree with the scenario's own expectation.
func TestGolden(t *testing.T) {
	keep := map[string]bool{}
	for _, name := range scenarios.Names(t) {
		keep[name+".txt"] = true
		t.Run(name, func(t *testing.T) {
			sc, idx := loadScenario(t, name)
			var b strings.Builder
			for i, c := range sc.Calls {
				tr := trace.Run(idx, sc.Proxy(t, c.From), c.Call, trace.Options{})
				require.NotEmpty(t, tr.Hops)
				first := tr.Hops[0]
				require.Equal(t, c.Want.Outcome, first.Outcome, "call %d: first hop disagrees with sim", i)
				if c.Want.Cluster != "" {
					require.Equal(t, c.Want.Cluster, first.Cluster, "call %d", i)
				}
				fmt.Fprintf(&b, "=== call %d from %s: %s\n--- text\n", i+1, c.From, callString(c.Call))
				require.NoError(t, tr.Text(&b))
				js, err := tr.JSON()
				require.NoError(t, err)
				b.WriteString("--- json\n")
				b.Write(js)
				if strings.HasPrefix(name, "seed-") {
					b.WriteString("--- mermaid\n")
					b.WriteString(tr.Mermaid())
				}
				b.WriteString("\n")
			}
			path := filepath.Join("testdata", name+".txt")
			if *update {
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
				return
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "golden file missing: run `go test ./trace -update` and review it")
			require.Equal(t, string(want), b.String(), "%s differs; if intended, run `go test ./trace -update` and review the diff", path)
		})
	}
	if *update {
		files, _ := os.ReadDir("testdata")
		var stale []string
		for _, f := range files {
			if strings.HasSuffix(f.Name(), ".txt") && !keep[f.Name()] {
				stale = append(stale, f.Name())
			}
		}
		sort.Strings(stale)
		for _, f := range stale {
			require.NoError(t, os.Remove(filepath.Join("testdata", f)))
		}
	}
}
