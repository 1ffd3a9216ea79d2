package translate_test

import (
	"fmt"
	"testing"

	"github.com/chokepoint-xds/chokepoint/test/fleet"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

// egressFleet is the benchmark input (see test/fleet).
func egressFleet(n int) []byte { return fleet.YAML(n) }

var benchProxies = map[string]translate.Proxy{
	"sidecar": {Type: translate.Sidecar, IP: "10.244.2.7", ID: "sleep.default", Namespace: "default", DNSDomain: "default.svc.cluster.local", Labels: map[string]string{"app": "sleep"}},
	"router":  {Type: translate.Router, IP: "10.244.1.20", ID: "gw.istio-system", Namespace: "istio-system", DNSDomain: "istio-system.svc.cluster.local", Labels: map[string]string{"istio": "egressgateway"}},
}

// BenchmarkTranslate measures one proxy's translation against a shared
// index, which is what serving costs per proxy class.
func BenchmarkTranslate(b *testing.B) {
	for _, kind := range []string{"sidecar", "router"} {
		for _, n := range []int{1000, 5000, 10000} {
			b.Run(fmt.Sprintf("%s/n=%d", kind, n), func(b *testing.B) {
				idx := translate.NewIndex(watch.Parse(egressFleet(n), "fleet.yaml"))
				p := benchProxies[kind]
				if res := idx.Translate(p); len(res.Clusters) < n {
					b.Fatalf("%s: %d clusters for %d hosts", kind, len(res.Clusters), n)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					idx.Translate(p)
				}
			})
		}
	}
}

// BenchmarkIndex measures building the shared registry from inputs.
func BenchmarkIndex(b *testing.B) {
	for _, n := range []int{1000, 5000, 10000} {
		in := watch.Parse(egressFleet(n), "fleet.yaml")
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				translate.NewIndex(in)
			}
		})
	}
}

// BenchmarkDecode measures reading the YAML.
func BenchmarkDecode(b *testing.B) {
	data := egressFleet(5000)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		watch.Parse(data, "fleet.yaml")
	}
}
