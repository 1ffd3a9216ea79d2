// Package fleet generates the benchmark and load-test input: n external
// hosts, each with a ServiceEntry and a VirtualService routing it through
// the egress gateway (hop 1 on the mesh, hop 2 on the gateway), one Gateway
// admitting them all, the gateway's Service and Endpoints, and REGISTRY_ONLY.
package fleet

import (
	"fmt"
	"strings"
)

// YAML is the whole input for n hosts.
func YAML(n int) []byte { return Generate(n, func(int) bool { return true }) }

// Generate writes the input for n hosts, including host i's ServiceEntry
// only when withSE(i) (the load test keeps one in a file of its own).
func Generate(n int, withSE func(i int) bool) []byte {
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
		if withSE(i) {
			b.WriteString("---\n" + ServiceEntry(i, false))
		}
		fmt.Fprintf(&b, `---
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

// ServiceEntry is host i's ServiceEntry; extraPort adds TLS port 8443 (an
// edit that changes every proxy's clusters and listeners).
func ServiceEntry(i int, extraPort bool) string {
	ports := "[{number: 443, name: tls, protocol: TLS}]"
	if extraPort {
		ports = "[{number: 443, name: tls, protocol: TLS}, {number: 8443, name: tls-alt, protocol: TLS}]"
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: host-%[1]d, namespace: egress}
spec:
  hosts: [host-%[1]d.example.com]
  ports: %[2]s
  resolution: DNS
  location: MESH_EXTERNAL
`, i, ports)
}
