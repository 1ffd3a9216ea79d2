package translate_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

// egressFleet is the benchmark input: n external hosts, each with a
// ServiceEntry and a VirtualService routing it through the egress gateway
// (hop 1 on the mesh, hop 2 on the gateway), one Gateway admitting them all,
// and REGISTRY_ONLY.
func egressFleet(n int) []byte {
	var b strings.Builder
	b.WriteString(`apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports:
  - {name: http2, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
---
apiVersion: v1
kind: Endpoints
metadata: {name: istio-egressgateway, namespace: istio-system}
subsets:
- addresses: [{ip: 10.244.1.20}]
  ports: [{name: http2, port: 8080}, {name: https, port: 8443}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway, namespace: istio-system}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets: [{name: external}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    tls: {mode: PASSTHROUGH}
    hosts:
`)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    - host-%d.example.com\n", i)
	}
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: host-%[1]d, namespace: egress}
spec:
  hosts: [host-%[1]d.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  location: MESH_EXTERNAL
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: host-%[1]d, namespace: egress}
spec:
  hosts: [host-%[1]d.example.com]
  gateways: [mesh, istio-system/egress]
  tls:
  - match: [{gateways: [mesh], port: 443, sniHosts: [host-%[1]d.example.com]}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: external, port: {number: 443}}}]
  - match: [{gateways: [istio-system/egress], port: 443, sniHosts: [host-%[1]d.example.com]}]
    route: [{destination: {host: host-%[1]d.example.com, port: {number: 443}}}]
`, i)
	}
	return []byte(b.String())
}

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
