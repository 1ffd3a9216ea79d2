package analyze_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/translate"
)

const (
	egressNode  = "router~10.244.1.20~istio-egressgateway-7c9d.istio-system~istio-system.svc.cluster.local"
	ingressNode = "router~10.244.1.30~istio-ingressgateway-5d6f.istio-system~istio-system.svc.cluster.local"
)

var (
	egressLabels  = map[string]string{"app": "istio-egressgateway", "istio": "egressgateway"}
	ingressLabels = map[string]string{"app": "istio-ingressgateway", "istio": "ingressgateway"}
)

func sidecarIn(ns string) string {
	return "sidecar~10.244.2.7~sleep-6d8f." + ns + "~" + ns + ".svc.cluster.local"
}

// TestConsequences checks, with the translator and the simulator, that
// what the messages say the operator will see is what the generated config
// does.
func TestConsequences(t *testing.T) {
	for _, tc := range []struct {
		name    string // testdata case
		node    string
		labels  map[string]string
		call    sim.Call
		outcome sim.Outcome
		cluster string
		// missing: the cluster the call reaches is not in CDS.
		missing bool
		source  string
	}{
		// IST0101 selector: the gateway proxy gets nothing from the Gateway,
		// only the good one's chain for api.github.com.
		{name: "gateway-selector-no-match", node: egressNode, labels: egressLabels,
			call: sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 8443}, outcome: sim.NoFilterChain},
		{name: "gateway-selector-no-match", node: egressNode, labels: egressLabels,
			call: sim.Call{Protocol: sim.TLS, SNI: "api.github.com", Port: 8443}, outcome: sim.ToCluster, cluster: "outbound|443||api.github.com"},
		// IST0162: the server listens on 7070, which no Service port forwards to.
		{name: "gateway-port-not-in-service", node: ingressNode, labels: ingressLabels,
			call: sim.Call{Protocol: sim.HTTP, Host: "admin.example.com", Path: "/", Port: 7070}, outcome: sim.NoRoute},
		// IST0101 under REGISTRY_ONLY: blackholed.
		{name: "dest-host-registry-only", node: sidecarIn("default"),
			call: sim.Call{Protocol: sim.TLS, SNI: "api.example.com", Port: 443}, outcome: sim.Blackhole, cluster: translate.BlackHoleCluster},
		// IST0101 under ALLOW_ANY: passed through, the VirtualService unused.
		{name: "dest-host-allow-any", node: sidecarIn("default"),
			call: sim.Call{Protocol: sim.TLS, SNI: "api.example.com", Port: 443}, outcome: sim.Passthrough, cluster: translate.PassthroughCluster},
		{name: "dest-host-allow-any", node: sidecarIn("default"),
			call: sim.Call{Protocol: sim.HTTP, Host: "api.example.com", Path: "/", Port: 80}, outcome: sim.ToCluster, cluster: "outbound|80||api.example.com", missing: true},
		// IST0101 on a covered host: a route to a cluster that does not exist.
		{name: "dest-host-allow-any", node: sidecarIn("team-a"),
			call: sim.Call{Protocol: sim.TLS, SNI: "en.wikipedia.org", Port: 443}, outcome: sim.ToCluster, cluster: "outbound|443||en.wikipedia.org", missing: true},
		{name: "dest-host-allow-any", node: egressNode, labels: egressLabels,
			call: sim.Call{Protocol: sim.TLS, SNI: "en.wikipedia.org", Port: 8443}, outcome: sim.ToCluster, cluster: "outbound|443||www.wikipedia.org", missing: true},
		// IST0101 subset: hop 1 goes to a subset cluster that does not exist.
		{name: "subset-not-defined", node: sidecarIn("mesh-test"),
			call: sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 443}, outcome: sim.ToCluster,
			cluster: "outbound|443|httpbin|istio-egressgateway.istio-system.svc.cluster.local", missing: true},
		// IST0145: the older Gateway's VirtualService gets the SNI.
		{name: "conflicting-gateways", node: egressNode, labels: egressLabels,
			call: sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 8443}, outcome: sim.ToCluster, cluster: "outbound|443||httpbin.org",
			source: "/apis/networking.istio.io/v1/namespaces/default/virtual-service/via-team-a"},
		// CP0004: an SNI the Gateway does not list is forwarded anyway.
		{name: "sni-hosts", node: egressNode, labels: egressLabels,
			call: sim.Call{Protocol: sim.TLS, SNI: "uploads.github.com", Port: 8443}, outcome: sim.ToCluster, cluster: "outbound|443||*.github.com"},
		// CP0005: HTTP for admin.internal.example lands in db's TCP cluster.
		{name: "serviceentry-conflicts", node: sidecarIn("default"),
			call:    sim.Call{Protocol: sim.HTTP, Host: "admin.internal.example", Path: "/", Port: 9000, Address: "240.240.0.1"},
			outcome: sim.ToCluster, cluster: "outbound|9000||db.internal.example"},
		// CP0006: under ALLOW_ANY an unrouted destination leaves directly.
		{name: "egress-gateway-allow-any", node: sidecarIn("open"),
			call: sim.Call{Protocol: sim.TLS, SNI: "example.com", Port: 443}, outcome: sim.Passthrough, cluster: translate.PassthroughCluster},
		{name: "egress-gateway-allow-any", node: sidecarIn("locked"),
			call: sim.Call{Protocol: sim.TLS, SNI: "example.com", Port: 443}, outcome: sim.Blackhole, cluster: translate.BlackHoleCluster},
		// CP0007: the TLS call skips the http rule's hop to the gateway.
		{name: "http-rules-on-tls", node: sidecarIn("default"),
			call: sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 443}, outcome: sim.ToCluster, cluster: "outbound|443||httpbin.org"},
		// CP0008: no filter chain, so no listener at all on the gateway.
		{name: "http-rules-on-tls", node: egressNode, labels: egressLabels,
			call: sim.Call{Protocol: sim.TLS, SNI: "edition.cnn.com", Port: 8443}, outcome: sim.NoListener},
		// CP0009: the gateway side of the rule is never bound.
		{name: "match-gateway-not-bound", node: egressNode, labels: egressLabels,
			call: sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 8443}, outcome: sim.NoListener},
		// CP0010: hop 1 points at the gateway cluster the Sidecar hides.
		{name: "sidecar-hides-destination", node: sidecarIn("mesh-test"),
			call: sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 443}, outcome: sim.ToCluster,
			cluster: "outbound|443||istio-egressgateway.istio-system.svc.cluster.local", missing: true},
		{name: "sidecar-hides-destination", node: sidecarIn("other"),
			call: sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 443}, outcome: sim.ToCluster,
			cluster: "outbound|443||istio-egressgateway.istio-system.svc.cluster.local"},
		// CP0011: no ServiceEntry, so the VirtualService is not used.
		{name: "vs-host-not-in-registry", node: sidecarIn("restricted"),
			call: sim.Call{Protocol: sim.TLS, SNI: "edition.cnn.com", Port: 443}, outcome: sim.Blackhole, cluster: translate.BlackHoleCluster},
		{name: "vs-host-not-in-registry", node: sidecarIn("default"),
			call: sim.Call{Protocol: sim.TLS, SNI: "edition.cnn.com", Port: 443}, outcome: sim.Passthrough, cluster: translate.PassthroughCluster},
		// CP0012: the gateway pod listens on 8443, not on 8080.
		{name: "gateway-port-not-served", node: egressNode, labels: egressLabels,
			call: sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 8080}, outcome: sim.NoListener},
		{name: "gateway-port-not-served", node: egressNode, labels: egressLabels,
			call: sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 8443}, outcome: sim.ToCluster, cluster: "outbound|443||httpbin.org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := load(t, filepath.Join("testdata", tc.name, "config"))
			p, err := translate.ParseNodeID(tc.node)
			require.NoError(t, err)
			p.Labels = tc.labels
			res := translate.Translate(in, p)
			got := sim.Run(res, p.Type, tc.call)
			require.Equal(t, tc.outcome, got.Outcome, "%s", got)
			if tc.cluster != "" {
				require.Equal(t, tc.cluster, got.Cluster, "%s", got)
			}
			if tc.source != "" {
				require.Contains(t, got.Sources, tc.source)
			}
			if got.Cluster != "" {
				exists := false
				for _, c := range res.Clusters {
					if c.Name == got.Cluster {
						exists = true
					}
				}
				require.Equal(t, !tc.missing, exists, "cluster %s in CDS", got.Cluster)
			}
		})
	}
}
