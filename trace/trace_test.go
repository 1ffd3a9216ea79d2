package trace_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/trace"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

const (
	example   = "../examples/httpbin-passthrough"
	sleepNode = "sidecar~10.244.2.7~sleep-6d8f.mesh-test~mesh-test.svc.cluster.local"
	hop1      = "outbound|443|httpbin|istio-egressgateway.istio-system.svc.cluster.local"
	vsPath    = "/apis/networking.istio.io/v1/namespaces/mesh-test/virtual-service/direct-httpbin-through-egress"
	gwPath    = "/apis/networking.istio.io/v1/namespaces/mesh-test/gateway/istio-egressgateway"
)

// seedIndex is the seed example plus extra YAML documents.
func seedIndex(t *testing.T, extra string) *translate.Index {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"egress-gateway-service.yaml", "egress.yaml"} {
		data, err := os.ReadFile(example + "/" + f)
		require.NoError(t, err)
		b.Write(data)
		b.WriteString("\n---\n")
	}
	b.WriteString(extra)
	in, _, err := watch.Load(watch.LoadOptions{Paths: []string{"-"}, Stdin: strings.NewReader(b.String())})
	require.NoError(t, err)
	require.Empty(t, in.Problems)
	return translate.NewIndex(in)
}

func sleep(t *testing.T) translate.Proxy {
	p, err := translate.ParseNodeID(sleepNode)
	require.NoError(t, err)
	p.Labels = map[string]string{"app": "sleep"}
	return p
}

func TestSeedTwoHopsEndAtHttpbin(t *testing.T) {
	tr := trace.Run(seedIndex(t, ""), sleep(t), sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 443}, trace.Options{})
	require.Len(t, tr.Hops, 2)

	h1 := tr.Hops[0]
	require.Equal(t, translate.Sidecar, h1.Proxy.Type)
	require.Equal(t, "0.0.0.0_443", h1.Listener)
	require.Equal(t, hop1, h1.Cluster)
	require.Contains(t, h1.Sources, vsPath)
	require.NotNil(t, h1.Next)
	require.Equal(t, trace.Forward{Service: "istio-system/istio-egressgateway", Port: 443, TargetPort: 8443,
		Address: "10.244.1.20", EndpointPort: 8443, TLS: "passthrough"}, *h1.Next)

	h2 := tr.Hops[1]
	require.Equal(t, translate.Router, h2.Proxy.Type)
	require.Equal(t, "istio-system", h2.Proxy.Namespace)
	require.Equal(t, map[string]string{"app": "istio-egressgateway", "istio": "egressgateway"}, h2.Proxy.Labels)
	require.Contains(t, h2.Proxy.Via, gwPath)
	require.Equal(t, sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 8443, Address: "10.244.1.20"}, h2.Call,
		"the connection arrives on the targetPort with the SNI unchanged")
	require.Equal(t, "0.0.0.0_8443", h2.Listener)
	require.Equal(t, "sni=httpbin.org", h2.FilterChain)
	require.Equal(t, "outbound|443||httpbin.org", h2.Cluster)
	require.Contains(t, h2.Sources, vsPath)
	require.Contains(t, h2.Sources, gwPath)
	require.Contains(t, h2.Sources, "/apis/networking.istio.io/v1/namespaces/mesh-test/service-entry/httpbin-ext")
	require.Nil(t, h2.Next)

	require.Equal(t, trace.External, tr.Outcome.Kind)
	require.Equal(t, "httpbin.org:443", tr.Outcome.Destination)
	require.Equal(t, "outbound|443||httpbin.org", tr.Outcome.Cluster)
	require.Contains(t, tr.Outcome.Explanation, "passes through untouched")
}

func TestUnregisteredHostIsBlackholed(t *testing.T) {
	idx := seedIndex(t, "")
	tr := trace.Run(idx, sleep(t), sim.Call{Protocol: sim.TLS, SNI: "example.com", Port: 443}, trace.Options{})
	require.Len(t, tr.Hops, 1)
	require.Equal(t, translate.BlackHoleCluster, tr.Hops[0].Cluster)
	require.Equal(t, trace.Blackhole, tr.Outcome.Kind)
	require.Contains(t, tr.Outcome.Explanation, "curl: 000")
	require.Contains(t, tr.Outcome.Explanation, "REGISTRY_ONLY (Sidecar mesh-test/default)")
	require.Equal(t, []string{"/apis/networking.istio.io/v1/namespaces/mesh-test/sidecar/default"}, tr.Hops[0].Sources)

	tr = trace.Run(idx, sleep(t), sim.Call{Protocol: sim.HTTP, Host: "example.com", Port: 80}, trace.Options{})
	require.Equal(t, trace.DirectResponse, tr.Outcome.Kind)
	require.EqualValues(t, 502, tr.Outcome.Status)

	tr = trace.Run(idx, sleep(t), sim.Call{Protocol: sim.TCP, Port: 3306}, trace.Options{})
	require.Equal(t, trace.Blackhole, tr.Outcome.Kind)
	require.Equal(t, "virtualOutbound", tr.Hops[0].Listener)
}

// The sidecar sends api.github.com to the gateway, but no Gateway server
// there takes that SNI: the gateway closes the connection.
func TestGatewayWithoutChainCloses(t *testing.T) {
	idx := seedIndex(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: github, namespace: mesh-test}
spec:
  hosts: [api.github.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: github-half-done, namespace: mesh-test}
spec:
  hosts: [api.github.com]
  gateways: [mesh]
  tls:
  - match: [{port: 443, sniHosts: [api.github.com]}]
    route:
    - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: httpbin, port: {number: 443}}
`)
	tr := trace.Run(idx, sleep(t), sim.Call{Protocol: sim.TLS, SNI: "api.github.com", Port: 443}, trace.Options{})
	require.Len(t, tr.Hops, 2)
	require.Equal(t, hop1, tr.Hops[0].Cluster)
	require.Contains(t, tr.Hops[0].Sources, "/apis/networking.istio.io/v1/namespaces/mesh-test/virtual-service/github-half-done")
	require.Equal(t, "0.0.0.0_8443", tr.Hops[1].Listener)
	require.Empty(t, tr.Hops[1].FilterChain)
	require.Equal(t, trace.NoFilterChain, tr.Outcome.Kind)
	require.Contains(t, tr.Outcome.Explanation, `bind SNI "api.github.com"`)
}

// A gateway whose VirtualService sends a host back to the gateway's own
// Service: the trace stops at the second visit.
func TestLoopIsCaught(t *testing.T) {
	idx := seedIndex(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: loop, namespace: mesh-test}
spec:
  hosts: [loop.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: loop-gw, namespace: mesh-test}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: tls-loop, protocol: TLS}
    hosts: [loop.example.com]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: loop, namespace: mesh-test}
spec:
  hosts: [loop.example.com]
  gateways: [mesh, loop-gw]
  tls:
  - match: [{port: 443, sniHosts: [loop.example.com]}]
    route:
    - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: httpbin, port: {number: 443}}
`)
	tr := trace.Run(idx, sleep(t), sim.Call{Protocol: sim.TLS, SNI: "loop.example.com", Port: 443}, trace.Options{})
	require.Equal(t, trace.Loop, tr.Outcome.Kind, "%+v", tr.Outcome)
	require.Len(t, tr.Hops, 2)
	require.Equal(t, hop1, tr.Hops[1].Cluster)
	require.NotNil(t, tr.Hops[1].Next, "the gateway hands the call to itself")
	require.Contains(t, tr.Outcome.Explanation, "as at hop 2")

	// The hop bound stops a trace on its own.
	tr = trace.Run(seedIndex(t, ""), sleep(t), sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 443}, trace.Options{MaxHops: 1})
	require.Len(t, tr.Hops, 1)
	require.Equal(t, trace.Loop, tr.Outcome.Kind)
}

func TestHTTPEgressThroughGateway(t *testing.T) {
	sc, idx := loadScenario(t, "egress-gateway-http")
	tr := trace.Run(idx, sc.Proxy(t, "sleep"), sim.Call{Protocol: sim.HTTP, Host: "edition.cnn.com", Path: "/politics", Port: 80}, trace.Options{})
	require.Len(t, tr.Hops, 2)
	require.Equal(t, "80", tr.Hops[0].RouteConfig)
	require.Equal(t, uint32(8080), tr.Hops[0].Next.TargetPort)
	require.Empty(t, tr.Hops[0].Next.TLS)
	require.Equal(t, sim.Call{Protocol: sim.HTTP, Host: "edition.cnn.com", Path: "/politics", Port: 8080, Address: "10.244.1.20"}, tr.Hops[1].Call,
		"HTTP stays HTTP, with the Host carried over")
	require.Equal(t, "http.8080", tr.Hops[1].RouteConfig)
	require.Equal(t, trace.External, tr.Outcome.Kind)
	require.Equal(t, "edition.cnn.com:80", tr.Outcome.Destination)

	// TLS origination at the gateway: HTTP in, TLS out to 443.
	sc, idx = loadScenario(t, "tls-origination-egress-gateway")
	tr = trace.Run(idx, sc.Proxy(t, "sleep"), sim.Call{Protocol: sim.HTTP, Host: "edition.cnn.com", Path: "/politics", Port: 80}, trace.Options{})
	require.Len(t, tr.Hops, 2)
	require.Equal(t, trace.External, tr.Outcome.Kind)
	require.Equal(t, "edition.cnn.com:443", tr.Outcome.Destination)
	require.Contains(t, tr.Outcome.Explanation, `originating TLS with SNI "edition.cnn.com"`)
}

func TestOtherEndings(t *testing.T) {
	// ALLOW_ANY: the original destination.
	sc, idx := loadScenario(t, "allow-any-tls-passthrough")
	tr := trace.Run(idx, sc.Proxy(t, "sleep"), sim.Call{Protocol: sim.TLS, SNI: "edition.cnn.com", Port: 443, Address: "151.101.1.67"}, trace.Options{})
	require.Equal(t, trace.Passthrough, tr.Outcome.Kind)
	require.Equal(t, "151.101.1.67:443", tr.Outcome.Destination)

	// A gateway reached on a port no Gateway server uses: refused.
	sc, idx = loadScenario(t, "seed-httpbin-passthrough")
	tr = trace.Run(idx, sc.Proxy(t, "egress"), sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 443}, trace.Options{})
	require.Equal(t, trace.NoListener, tr.Outcome.Kind)
	require.Equal(t, "10.244.1.20", tr.Hops[0].Call.Address, "a gateway is reached on its own address")

	// An in-mesh Service with no endpoints.
	sc, idx = loadScenario(t, "seed-bookinfo-ingress")
	tr = trace.Run(idx, sc.Proxy(t, "ingress"), sim.Call{Protocol: sim.HTTP, Host: "bookinfo.example.com", Path: "/productpage", Port: 8080}, trace.Options{})
	require.Equal(t, trace.NoEndpoints, tr.Outcome.Kind)
	require.EqualValues(t, 503, tr.Outcome.Status)
	tr = trace.Run(idx, sc.Proxy(t, "ingress"), sim.Call{Protocol: sim.HTTP, Host: "bookinfo.example.com", Path: "/nothing", Port: 8080}, trace.Options{})
	require.Equal(t, trace.NoRoute, tr.Outcome.Kind)
	require.EqualValues(t, 404, tr.Outcome.Status)

	// An in-mesh Service with endpoints; a Service that only looks like a
	// gateway's (no Gateway selects its workloads) is not a hop.
	sc, idx = loadScenario(t, "ingress-uri-exact-vs-prefix")
	tr = trace.Run(idx, sc.Proxy(t, "ingress"), sim.Call{Protocol: sim.HTTP, Host: "www.example.com", Path: "/loginx", Port: 8080}, trace.Options{})
	require.Len(t, tr.Hops, 1)
	require.Equal(t, trace.Service, tr.Outcome.Kind)
	require.Equal(t, "10.244.2.15:8080", tr.Outcome.Destination)

	// An HTTPS redirect.
	sc, idx = loadScenario(t, "ingress-https-redirect")
	tr = trace.Run(idx, sc.Proxy(t, "ingress"), sim.Call{Protocol: sim.HTTP, Host: "httpbin.example.com", Path: "/status/418", Port: 8080}, trace.Options{})
	require.Equal(t, trace.Redirect, tr.Outcome.Kind)
	require.Equal(t, "https://httpbin.example.com/status/418", tr.Outcome.Destination)
}

// Options.Config supplies each proxy's config (the served snapshot in
// /debug/trace).
func TestConfigHook(t *testing.T) {
	idx := seedIndex(t, "")
	var asked []translate.NodeType
	opts := trace.Options{Config: func(p translate.Proxy) *translate.Resources {
		asked = append(asked, p.Type)
		return idx.Translate(p)
	}}
	tr := trace.Run(idx, sleep(t), sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 443}, opts)
	require.Equal(t, trace.External, tr.Outcome.Kind)
	require.Equal(t, []translate.NodeType{translate.Sidecar, translate.Router}, asked)
}

func TestNames(t *testing.T) {
	require.Equal(t, "VirtualService mesh-test/direct-httpbin-through-egress", trace.ObjectName(vsPath))
	require.Equal(t, "Service istio-system/istio-egressgateway", trace.ObjectName("/api/v1/namespaces/istio-system/service/istio-egressgateway"))
	require.Equal(t, "mesh config", trace.ObjectName("mesh config"))
	port, subset, host, ok := trace.ParseClusterName(hop1)
	require.True(t, ok)
	require.Equal(t, uint32(443), port)
	require.Equal(t, "httpbin", subset)
	require.Equal(t, "istio-egressgateway.istio-system.svc.cluster.local", host)
	_, _, _, ok = trace.ParseClusterName(translate.BlackHoleCluster)
	require.False(t, ok)
}

func TestMermaidEscapes(t *testing.T) {
	tr := trace.Run(seedIndex(t, ""), sleep(t), sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 443}, trace.Options{})
	m := tr.Mermaid()
	require.True(t, strings.HasPrefix(m, "flowchart LR\n"))
	require.Contains(t, m, `h1k{{"cluster outbound#124;443#124;httpbin#124;istio-egressgateway.istio-system.svc.cluster.local"}}`)
	require.Contains(t, m, `h1k -->|"443 → 8443 TLS passthrough"| h2l`)
	require.Contains(t, m, `out(["external httpbin.org:443"])`)
	for i, line := range strings.Split(strings.TrimSpace(m), "\n")[1:] {
		// Outside the edge-label pipes, no raw | may appear: every label
		// is quoted and escaped.
		stripped := strings.ReplaceAll(line, `-->|"`, "")
		stripped = strings.ReplaceAll(stripped, `"|`, "")
		require.NotContains(t, stripped, "|", "line %d: %s", i+2, line)
		require.Equal(t, 0, strings.Count(line, `"`)%2, "line %d: unbalanced quotes: %s", i+2, line)
	}
}
