package analyze_test

import (
	"fmt"
	"testing"

	"github.com/chokepoint-xds/chokepoint/analyze"
	"github.com/chokepoint-xds/chokepoint/test/fleet"
	"github.com/chokepoint-xds/chokepoint/watch"
)

// BenchmarkAnalyze: N ServiceEntries routed through the egress gateway (one
// Gateway, one VirtualService per host with both hops, REGISTRY_ONLY).
func BenchmarkAnalyze(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		in := watch.Parse(fleet.YAML(n), "fleet.yaml")
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if msgs := analyze.Analyze(in); len(msgs) != 0 {
					b.Fatalf("fleet input should be clean, got %d messages, first: %s", len(msgs), msgs[0])
				}
			}
		})
	}
}
