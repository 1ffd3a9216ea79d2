package translate_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

// fuzzSeeds are small documents that reach the corners of the decoder and
// the translator quickly.
var fuzzSeeds = []string{
	"",
	"---\n",
	"apiVersion: v1\nkind: List\nitems: []\n",
	`{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry","metadata":{"name":"x"},"spec":{"hosts":["a.example.com"],"ports":[{"number":443,"name":"tls","protocol":"TLS"}],"resolution":"DNS"}}`,
	`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild}
spec:
  hosts: ["*.example.com"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
  location: MESH_EXTERNAL
`,
	`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static}
spec:
  hosts: [s.example.com]
  addresses: [10.1.0.0/16]
  ports: [{number: 8080, name: tcp, protocol: TCP, targetPort: 9090}]
  resolution: STATIC
  endpoints: [{address: 10.1.2.3, ports: {tcp: 9999}, weight: 3, locality: r/z/s}]
`,
	`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [gw, mesh]
  http:
  - match: [{uri: {prefix: /a}, headers: {x: {exact: y}}}]
    route: [{destination: {host: a.example.com, subset: v1, port: {number: 80}}, weight: 100}]
    timeout: 3s
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: 5xx}
  - redirect: {uri: /b, authority: b.example.com}
  - directResponse: {status: 503}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr, namespace: istio-system}
spec:
  host: a.example.com
  trafficPolicy:
    tls: {mode: SIMPLE, sni: a.example.com}
    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m}
  subsets: [{name: v1, labels: {version: v1}}]
`,
	`apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: default}
subsets: [{addresses: [{ip: 10.0.0.5}], ports: [{name: http, port: 8080}]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    outboundTrafficPolicy: {mode: REGISTRY_ONLY}
    accessLogFile: /dev/stdout
`,
}

// FuzzTranslate decodes arbitrary bytes as a config stream and translates
// them for a sidecar and an egress gateway: whatever the input, the
// translator must not panic and must not emit config Envoy would reject.
func FuzzTranslate(f *testing.F) {
	files, err := filepath.Glob("testdata/in/*/config/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	sidecar, err := translate.ParseNodeID("sidecar~10.0.0.1~a.default~default.svc.cluster.local")
	if err != nil {
		f.Fatal(err)
	}
	router, err := translate.ParseNodeID("router~10.0.0.2~gw.istio-system~istio-system.svc.cluster.local")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := watch.Parse(data, "fuzz.yaml")
		idx := translate.NewIndex(in)
		for _, p := range []translate.Proxy{sidecar, router} {
			p.Labels = nil
			if p.Type == translate.Router {
				p.Labels = map[string]string{"istio": "egressgateway"}
			}
			res := idx.Translate(p)
			if err := res.Validate(); err != nil {
				t.Fatalf("%s: invalid output: %v", p.Type, err)
			}
		}
	})
}
