package translate_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

const fpBase = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: visible, namespace: a}
spec: {hosts: [v.example.com], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNS}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: b}
spec: {hosts: [p.example.com], exportTo: ["."], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNS}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
`

// TestFingerprint: a proxy's fingerprint changes exactly when something it
// reads changes, and then its resources change too.
func TestFingerprint(t *testing.T) {
	sidecar := translate.Proxy{Type: translate.Sidecar, ID: "app.a", Namespace: "a", DNSDomain: "a.svc.cluster.local", Labels: map[string]string{"app": "x"}}
	egress := translate.Proxy{Type: translate.Router, ID: "gw.istio-system", Namespace: "istio-system", DNSDomain: "istio-system.svc.cluster.local", Labels: map[string]string{"istio": "egressgateway"}}
	fp := func(doc string, p translate.Proxy) uint64 {
		return translate.NewIndex(watch.Parse([]byte(doc), "in.yaml")).Fingerprint(p)
	}
	base := fp(fpBase, sidecar)
	require.Equal(t, base, fp(fpBase, sidecar), "same inputs, same fingerprint")

	// Invisible to namespace a: same fingerprint.
	hidden := fpBase + "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: private2, namespace: b}\nspec: {hosts: [q.example.com], exportTo: [\".\"], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNS}\n"
	require.Equal(t, base, fp(hidden, sidecar))
	// A Gateway selecting another workload does not concern the egress gateway.
	require.Equal(t, fp(fpBase, egress), fp(fpBase+"---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: other2, namespace: istio-system}\nspec:\n  selector: {istio: ingressgateway}\n  servers: [{port: {number: 81, name: http, protocol: HTTP}, hosts: [\"*\"]}]\n", egress))

	// Visible changes change it.
	visible := fpBase + "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: new, namespace: c}\nspec: {hosts: [n.example.com], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNS}\n"
	require.NotEqual(t, base, fp(visible, sidecar))
	mesh := fpBase + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
	require.NotEqual(t, base, fp(mesh, sidecar))
	gw := fpBase + "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: egress, namespace: istio-system}\nspec:\n  selector: {istio: egressgateway}\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"]}]\n"
	require.NotEqual(t, fp(fpBase, egress), fp(gw, egress))
}
