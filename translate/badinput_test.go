package translate_test

import (
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

// okEntry is the valid object every bad-input case sits beside.
const okEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ok, namespace: default}
spec:
  hosts: [ok.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
`

// dEntry is a second valid host for the cases whose broken object routes
// to a registered host.
const dEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: d, namespace: default}
spec:
  hosts: [d.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
`

const okCluster = "outbound|443||ok.example.com"

func seDoc(spec string) string {
	return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: bad, namespace: default}\nspec:\n" + spec
}

func gwDoc(servers string) string {
	return "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: istio-system}\nspec:\n  selector: {istio: egressgateway}\n  servers:\n" + servers
}

func vsDoc(spec string) string {
	return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad, namespace: default}\nspec:\n" + spec
}

func drDoc(spec string) string {
	return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: bad, namespace: default}\nspec:\n" + spec
}

// sniChain finds the sidecar filter chain matching SNI host on port 443.
func sniChain(res *translate.Resources, host string) *listener.FilterChain {
	for _, l := range res.Listeners {
		if l.GetAddress().GetSocketAddress().GetPortValue() != 443 {
			continue
		}
		for _, fc := range l.FilterChains {
			for _, sn := range fc.GetFilterChainMatch().GetServerNames() {
				if sn == host {
					return fc
				}
			}
		}
	}
	return nil
}

func TestBadInputIsReportedAndIsolated(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want string
		// dangling is the cluster reference the broken object leaves, as
		// istiod leaves it (Envoy answers "no cluster").
		dangling string
	}{
		{"ServiceEntry without hosts", seDoc("  ports: [{number: 80, name: http, protocol: HTTP}]\n"),
			`bad.yaml (document 2): ServiceEntry default/bad: spec.hosts: required field is missing: a ServiceEntry needs at least one host`, ""},
		{"ServiceEntry without ports", seDoc("  hosts: [b.example.com]\n"),
			`bad.yaml (document 2): ServiceEntry default/bad: spec.ports: required field is missing: a ServiceEntry needs at least one port`, ""},
		{"ServiceEntry port 0", seDoc("  hosts: [b.example.com]\n  ports: [{number: 0, name: http, protocol: HTTP}]\n"),
			`bad.yaml (document 2): ServiceEntry default/bad: spec.ports[0].number: port number 0 is out of range 1-65535`, ""},
		{"ServiceEntry port too large", seDoc("  hosts: [b.example.com]\n  ports: [{number: 70000, name: http, protocol: HTTP}]\n"),
			`bad.yaml (document 2): ServiceEntry default/bad: spec.ports[0].number: port number 70000 is out of range 1-65535`, ""},
		{"ServiceEntry duplicated port", seDoc("  hosts: [b.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}, {number: 80, name: http2, protocol: HTTP}]\n"),
			`bad.yaml (document 2): ServiceEntry default/bad: spec.ports[1].number: port 80 is listed twice`, ""},
		{"ServiceEntry STATIC endpoint with a hostname", seDoc("  hosts: [b.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints: [{address: backend.example.com}]\n"),
			`bad.yaml (document 2): ServiceEntry default/bad: spec.endpoints[0].address: resolution STATIC needs IP addresses, got "backend.example.com"`, ""},
		{"ServiceEntry DNS wildcard without endpoints", seDoc("  hosts: ['*.b.example.com']\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n"),
			`bad.yaml (document 2): ServiceEntry default/bad: spec.hosts[0]: wildcard host "*.b.example.com" with resolution DNS needs endpoints: there is no name to resolve`, ""},
		{"ServiceEntry host *", seDoc("  hosts: ['*']\n  ports: [{number: 80, name: http, protocol: HTTP}]\n"),
			`bad.yaml (document 2): ServiceEntry default/bad: spec.hosts[0]: host "*" is not allowed (use a name or a wildcard such as *.example.com)`, ""},
		{"ServiceEntry bad address", seDoc("  hosts: [b.example.com]\n  addresses: [10.0.0.300]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n"),
			`bad.yaml (document 2): ServiceEntry default/bad: spec.addresses[0]: "10.0.0.300" is neither an IP address nor a CIDR`, ""},
		{"Gateway server without port", gwDoc("  - hosts: ['*']\n"),
			`bad.yaml (document 2): Gateway istio-system/gw: spec.servers[0].port: required field is missing`, ""},
		{"Gateway server without hosts", gwDoc("  - port: {number: 443, name: tls, protocol: TLS}\n    tls: {mode: PASSTHROUGH}\n"),
			`bad.yaml (document 2): Gateway istio-system/gw: spec.servers[0].hosts: required field is missing: a server needs at least one host`, ""},
		{"Gateway server without protocol", gwDoc("  - port: {number: 443, name: tls}\n    hosts: ['*']\n"),
			`bad.yaml (document 2): Gateway istio-system/gw: spec.servers[0].port.protocol: required field is missing`, ""},
		{"Gateway SIMPLE without credentials", gwDoc("  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: ['*']\n    tls: {mode: SIMPLE}\n"),
			`bad.yaml (document 2): Gateway istio-system/gw: spec.servers[0].tls: mode SIMPLE needs credentialName or serverCertificate and privateKey`, ""},
		{"VirtualService without hosts", vsDoc("  tls: [{match: [{sniHosts: [ok.example.com]}], route: [{destination: {host: ok.example.com}}]}]\n"),
			`bad.yaml (document 2): VirtualService default/bad: spec.hosts: required field is missing: a VirtualService needs at least one host`, ""},
		{"tls route without sniHosts", vsDoc("  hosts: [ok.example.com]\n  tls: [{match: [{port: 443}], route: [{destination: {host: ok.example.com}}]}]\n"),
			`bad.yaml (document 2): VirtualService default/bad: spec.tls[0].match[0].sniHosts: required field is missing`, ""},
		{"tls route without match", vsDoc("  hosts: [ok.example.com]\n  tls: [{route: [{destination: {host: ok.example.com}}]}]\n"),
			`bad.yaml (document 2): VirtualService default/bad: spec.tls[0].match: required field is missing: a tls route needs a match with sniHosts`, ""},
		{"http route without destination host", vsDoc("  hosts: [c.example.com]\n  http: [{route: [{destination: {port: {number: 80}}}]}]\n"),
			`bad.yaml (document 2): VirtualService default/bad: spec.http[0].route[0].destination.host: required field is missing`, ""},
		{"http route without action", vsDoc("  hosts: [c.example.com]\n  http: [{match: [{uri: {prefix: /}}]}]\n"),
			`bad.yaml (document 2): VirtualService default/bad: spec.http[0]: an http route needs route, redirect or directResponse`, ""},
		{"DestinationRule without host", drDoc("  trafficPolicy: {tls: {mode: SIMPLE}}\n"),
			`bad.yaml (document 2): DestinationRule default/bad: spec.host: required field is missing`, ""},
		{"DestinationRule duplicate subsets", drDoc("  host: ok.example.com\n  subsets: [{name: v1, labels: {v: '1'}}, {name: v1, labels: {v: '2'}}]\n"),
			`bad.yaml (document 2): DestinationRule default/bad: spec.subsets[1].name: subset "v1" is defined twice`, ""},
		{"VirtualService gateway that does not exist", vsDoc("  hosts: [ok.example.com]\n  gateways: [istio-system/nope]\n  tls: [{match: [{sniHosts: [ok.example.com]}], route: [{destination: {host: ok.example.com}}]}]\n"),
			`bad.yaml (document 2): VirtualService default/bad: spec.gateways[0]: gateway "istio-system/nope" not found: the routes for it are not used by any gateway`, ""},
		{"destination not in the registry", vsDoc("  hosts: [c.example.com]\n  http: [{route: [{destination: {host: c.example.com}}]}]\n"),
			`bad.yaml (document 2): VirtualService default/bad: spec.http[0].route[0].destination.host: destination host c.example.com is not in the registry (no ServiceEntry or Service): its cluster does not exist and traffic to it fails`, ""},
		{"destination port not defined", dEntry + vsDoc("  hosts: [d.example.com]\n  tls: [{match: [{sniHosts: [d.example.com]}], route: [{destination: {host: d.example.com, port: {number: 8443}}}]}]\n"),
			`bad.yaml (document 3): VirtualService default/bad: spec.tls[0].route[0].destination.port.number: destination d.example.com has no port 8443`,
			"cluster outbound|8443||d.example.com (used by listener 0.0.0.0_443) does not exist"},
		{"subset not defined", dEntry + vsDoc("  hosts: [d.example.com]\n  tls: [{match: [{sniHosts: [d.example.com]}], route: [{destination: {host: d.example.com, subset: v9}}]}]\n"),
			`bad.yaml (document 3): VirtualService default/bad: spec.tls[0].route[0].destination.subset: subset "v9" of d.example.com is not defined by any DestinationRule: its cluster does not exist`,
			"cluster outbound|443|v9|d.example.com (used by listener 0.0.0.0_443) does not exist"},
	}
	sidecar, err := translate.ParseNodeID("sidecar~10.0.0.1~a.default~default.svc.cluster.local")
	require.NoError(t, err)
	router, err := translate.ParseNodeID("router~10.0.0.2~gw.istio-system~istio-system.svc.cluster.local")
	require.NoError(t, err)
	router.Labels = map[string]string{"istio": "egressgateway"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := watch.Parse([]byte(okEntry+c.doc), "bad.yaml")
			require.Empty(t, in.Problems, "the document decodes")
			idx := translate.NewIndex(in)
			var got []string
			for _, p := range idx.Problems() {
				got = append(got, p.Error())
			}
			res := idx.Translate(sidecar)
			for _, p := range res.Problems {
				got = append(got, p.Error())
			}
			require.Equal(t, []string{c.want}, got)
			require.NoError(t, res.Validate())
			if c.dangling != "" {
				require.Equal(t, []string{c.dangling}, res.Consistency())
			} else {
				require.Empty(t, res.Consistency())
			}

			var names []string
			for _, cl := range res.Clusters {
				names = append(names, cl.Name)
			}
			require.Contains(t, names, okCluster)
			fc := sniChain(res, "ok.example.com")
			require.NotNil(t, fc, "no SNI chain for ok.example.com")
			require.Contains(t, string(mustJSON(t, fc)), okCluster)

			gw := idx.Translate(router)
			require.NoError(t, gw.Validate())
			require.Empty(t, strings.Join(gw.Consistency(), "\n"))
		})
	}
}
