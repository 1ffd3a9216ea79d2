package kubeint

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/chokepoint-xds/chokepoint/internal/app"
	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/test/kubeenv"
	"github.com/chokepoint-xds/chokepoint/test/xdsclient"
	"github.com/chokepoint-xds/chokepoint/translate"
)

const (
	sidecarProxyID = "sleep-6d8f.mesh-test"
	gatewayProxyID = "istio-egressgateway-7c9d.istio-system"

	// A second egress gateway workload, for moving a VirtualService.
	gatewayBID = "router~10.244.1.21~istio-egressgateway-b-5f6d.istio-system~istio-system.svc.cluster.local"

	// outage is how long the API server stays down: longer than the
	// holdoff and a few reflector retries (0.8 s, then doubling).
	outage = 5 * time.Second
)

var gatewayBLabels = map[string]string{"app": "istio-egressgateway-b", "istio": "egressgateway-b"}

// apiEntry is a ServiceEntry for api.example.com on port.
func apiEntry(name string, port int) string {
	return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ` + name + `, namespace: mesh-test}
spec:
  hosts: [api.example.com]
  ports: [{number: ` + strconv.Itoa(port) + `, name: tls, protocol: TLS}]
  resolution: DNS
  location: MESH_EXTERNAL
`
}

const gatewayBManifest = `
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway-b, namespace: istio-system}
spec:
  selector: {app: istio-egressgateway-b, istio: egressgateway-b}
  ports:
  - {name: https, port: 443, targetPort: 8443}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway-b, namespace: mesh-test}
spec:
  selector: {istio: egressgateway-b}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [httpbin.org]
    tls: {mode: PASSTHROUGH}
`

// movedVirtualService is the seed's VirtualService with its gateway half
// bound to gateway B instead.
const movedVirtualService = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-httpbin-through-egress, namespace: mesh-test}
spec:
  hosts: [httpbin.org]
  gateways: [mesh, istio-egressgateway-b]
  tls:
  - match: [{gateways: [mesh], port: 443, sniHosts: [httpbin.org]}]
    route:
    - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: httpbin, port: {number: 443}}
  - match: [{gateways: [istio-egressgateway-b], port: 443, sniHosts: [httpbin.org]}]
    route:
    - destination: {host: httpbin.org, port: {number: 443}}
`

var (
	httpbinCall = sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 443}
	// What reaches the gateway's container port (Service 443 -> 8443).
	httpbinAtGateway = sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 8443}
)

// requireTwoHops checks the seed's two hops in the config the sidecar and
// the gateway accepted.
func requireTwoHops(t *testing.T, sidecar, gateway *proxy, sres, gres *translate.Resources) {
	t.Helper()
	clusters := clusterNames(sres)
	require.Contains(t, clusters, hop1Cluster)
	require.Contains(t, clusters, hop2Cluster)
	got := sidecar.call(sres, httpbinCall)
	require.Equal(t, hop1Cluster, got.Cluster, got.String())

	l := findListener(gres, "0.0.0.0_8443")
	require.NotNil(t, l, "gateway listener 0.0.0.0_8443: %s", summary(gres))
	require.Contains(t, serverNames(l), "httpbin.org")
	got = gateway.call(gres, httpbinAtGateway)
	require.Equal(t, sim.ToCluster, got.Outcome, got.String())
	require.Equal(t, hop2Cluster, got.Cluster, got.String())
}

func clusterIPOf(t *testing.T, applied []*unstructured.Unstructured, namespace, name string) string {
	t.Helper()
	for _, u := range applied {
		if u.GetKind() == "Service" && u.GetNamespace() == namespace && u.GetName() == name {
			ip, _, err := unstructured.NestedString(u.Object, "spec", "clusterIP")
			require.NoError(t, err)
			require.NotEmpty(t, ip, "the API server allocates a clusterIP")
			return ip
		}
	}
	t.Fatalf("Service %s/%s not applied", namespace, name)
	return ""
}

func allStates(v inputsView, state string) bool {
	if len(v.Kubernetes) == 0 {
		return false
	}
	for _, st := range v.Kubernetes {
		if st.State != state {
			return false
		}
	}
	return true
}

func messageIs(msg string) func(observer.LoggedEntry) bool {
	return func(e observer.LoggedEntry) bool { return e.Message == msg }
}

// TestServe runs `serve --kube` on the seed (examples/httpbin-passthrough)
// in a real API server: the first config is served only once every
// informer has synced, changes arrive as new versions, and an API server
// outage pushes nothing. The subtests run in order on one API server.
func TestServe(t *testing.T) {
	env := kubeenv.Start(t)
	manifest := readManifests(t, "../../examples/httpbin-passthrough/*.yaml")
	applied := env.Apply(t, manifest)
	env.Apply(t, endpointSlicesFor(t, applied))
	gatewayIP := clusterIPOf(t, applied, "istio-system", "istio-egressgateway")

	t.Run("cold start", func(t *testing.T) {
		// chokepoint starts while the API server is down: nothing is
		// served and it is not ready until every informer has synced.
		env.StopAPIServer(t)
		c := startCP(t, app.Options{Kubeconfig: env.Kubeconfig})
		sidecar := c.connect(t, sidecarID, sidecarLabels)
		gateway := c.connect(t, gatewayID, gatewayLabels)
		eventually(t, syncTimeout, func() bool {
			_, v := c.inputs(t)
			for _, st := range v.Kubernetes {
				if st.State != "syncing" || st.Reason != "unreachable" {
					return false
				}
			}
			return len(v.Kubernetes) == 9
		}, "every informer to have failed to reach the API server")
		code, body := c.get(t, "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, code, body)
		code, view := c.inputs(t)
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Contains(t, view.Error, "waiting for the Kubernetes informers to sync")
		require.Zero(t, sidecar.responses(), "nothing is pushed before the informers synced")
		require.Zero(t, gateway.responses(), "nothing is pushed before the informers synced")

		env.StartAPIServer(t)
		sres := sidecar.synced(t, reconnectTimeout)
		gres := gateway.synced(t, syncTimeout)
		require.True(t, c.ready(t))
		requireTwoHops(t, sidecar, gateway, sres, gres)
		first := sidecar.since(0)[0]
		require.Equal(t, xdsclient.ClusterType, first.TypeURL)
		require.Equal(t, sidecar.cl.State(xdsclient.ClusterType).Acked, first.Version,
			"the first CDS response is already the complete config")

		// The API server allocated the gateway Service's clusterIP: the
		// sidecar has its VIP listeners.
		require.NotNil(t, findListener(sres, gatewayIP+"_443"), summary(sres))
		// Hop 1's endpoints come from the EndpointSlice.
		var eps []string
		for _, cla := range sres.Endpoints {
			if cla.GetClusterName() == hop1Cluster {
				for _, le := range cla.GetEndpoints() {
					for _, lb := range le.GetLbEndpoints() {
						sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
						eps = append(eps, sa.GetAddress()+":"+strconv.Itoa(int(sa.GetPortValue())))
					}
				}
			}
		}
		require.Equal(t, []string{"10.244.1.20:8443"}, eps)

		_, view = c.inputs(t)
		kinds := map[string]int{}
		for _, o := range view.Objects {
			require.Empty(t, o.Source.File, "%s %s/%s", o.Kind, o.Namespace, o.Name)
			_, err := strconv.ParseUint(o.Source.Kube, 10, 64)
			require.NoError(t, err, "%s %s/%s: source %q is not a resourceVersion", o.Kind, o.Namespace, o.Name, o.Source.Kube)
			kinds[o.Kind]++
		}
		for _, kind := range []string{"ServiceEntry", "Gateway", "VirtualService", "DestinationRule", "Sidecar", "Service", "EndpointSlice", "Namespace"} {
			require.NotZero(t, kinds[kind], "no %s in /debug/inputs: %v", kind, kinds)
		}
		require.True(t, allStates(view, "synced"), "%+v", view.Kubernetes)
		v, ok := c.metric(t, `chokepoint_kube_resource_state{namespace="all",resource="networking.istio.io/v1/serviceentries",state="synced"}`)
		require.True(t, ok)
		require.Equal(t, 1.0, v)

		down := warnings(c.logs, func(e observer.LoggedEntry) bool { return true })
		require.Len(t, down, 1, "one line for the unreachable API server:%s", describeEntries(down))
		require.Contains(t, down[0].Message, "kubernetes API server unreachable: nothing is served until every informer has synced")
		require.Len(t, c.logs.Filter(messageIs("kubernetes API server answers again")).All(), 1)
	})

	t.Run("changes", func(t *testing.T) {
		c := startCP(t, clientsFor(t, env.Config))
		sidecar := c.connect(t, sidecarID, sidecarLabels)
		gateway := c.connect(t, gatewayID, gatewayLabels)
		gatewayB := c.connect(t, gatewayBID, gatewayBLabels)
		sidecar.synced(t, syncTimeout)
		gateway.synced(t, syncTimeout)
		before := sidecar.cl.State(xdsclient.ClusterType).Acked

		// A new ServiceEntry: a new CDS version with its cluster, ACKed.
		env.Apply(t, apiEntry("api", 443))
		res := sidecar.waitFor(t, syncTimeout, "the new ServiceEntry's cluster", func(r *translate.Resources) bool {
			return slices.Contains(clusterNames(r), "outbound|443||api.example.com")
		})
		added := sidecar.cl.State(xdsclient.ClusterType).Acked
		require.NotEqual(t, before, added)
		require.Contains(t, clusterNames(res), hop1Cluster)
		require.Contains(t, clusterNames(res), hop2Cluster)

		// Its port changes.
		env.Apply(t, apiEntry("api", 8443))
		sidecar.waitFor(t, syncTimeout, "the cluster on the new port only", func(r *translate.Resources) bool {
			cs := clusterNames(r)
			return slices.Contains(cs, "outbound|8443||api.example.com") && !slices.Contains(cs, "outbound|443||api.example.com")
		})
		require.NotEqual(t, added, sidecar.cl.State(xdsclient.ClusterType).Acked)

		// Deleted: its cluster disappears, the rest stays.
		env.Delete(t, apiEntry("api", 8443))
		res = sidecar.waitFor(t, syncTimeout, "the deleted ServiceEntry's cluster to go", func(r *translate.Resources) bool {
			return !slices.ContainsFunc(clusterNames(r), func(n string) bool { return strings.HasSuffix(n, "||api.example.com") })
		})
		require.Contains(t, clusterNames(res), hop1Cluster)
		require.Contains(t, clusterNames(res), hop2Cluster)

		// The VirtualService's gateway half moves to gateway B: the SNI
		// route leaves gateway A's listener and appears on B's.
		env.Apply(t, gatewayBManifest)
		env.Apply(t, movedVirtualService)
		bres := gatewayB.waitFor(t, syncTimeout, "httpbin.org routed on gateway B", func(r *translate.Resources) bool {
			return gatewayB.call(r, httpbinAtGateway).Cluster == hop2Cluster
		})
		require.Contains(t, serverNames(findListener(bres, "0.0.0.0_8443")), "httpbin.org")
		ares := gateway.waitFor(t, syncTimeout, "httpbin.org gone from gateway A", func(r *translate.Resources) bool {
			return gateway.call(r, httpbinAtGateway).Outcome != sim.ToCluster
		})
		require.NotContains(t, serverNames(findListener(ares, "0.0.0.0_8443")), "httpbin.org")
		got := sidecar.call(sidecar.current(t), httpbinCall)
		require.Equal(t, hop1Cluster, got.Cluster, "the sidecar's half is unchanged: %s", got)

		// And back.
		env.Apply(t, manifest)
		env.Delete(t, gatewayBManifest)
		gatewayB.waitFor(t, syncTimeout, "httpbin.org gone from gateway B", func(r *translate.Resources) bool {
			return gatewayB.call(r, httpbinAtGateway).Outcome != sim.ToCluster
		})
		ares = gateway.waitFor(t, syncTimeout, "httpbin.org back on gateway A", func(r *translate.Resources) bool {
			return gateway.call(r, httpbinAtGateway).Cluster == hop2Cluster
		})
		requireTwoHops(t, sidecar, gateway, sidecar.current(t), ares)
		require.Empty(t, warnings(c.logs, func(observer.LoggedEntry) bool { return true }))
	})

	t.Run("outage", func(t *testing.T) {
		var reads relists
		c := startCP(t, clientsFor(t, reads.watch(env.Config)))
		sidecar := c.connect(t, sidecarID, sidecarLabels)
		gateway := c.connect(t, gatewayID, gatewayLabels)
		sres := sidecar.synced(t, syncTimeout)
		gres := gateway.synced(t, syncTimeout)
		requireTwoHops(t, sidecar, gateway, sres, gres)
		dumps := func() []string {
			return []string{
				c.getOK(t, "/debug/config_dump?proxyID="+sidecarProxyID),
				c.getOK(t, "/debug/config_dump?proxyID="+gatewayProxyID),
			}
		}
		dumped := dumps()
		ns, ng := sidecar.responses(), gateway.responses()

		// kube-apiserver closes its watches at once and takes a few
		// seconds to exit; the outage starts with the SIGTERM.
		stopping := time.Now()
		env.StopAPIServer(t)
		eventually(t, syncTimeout, func() bool { _, v := c.inputs(t); return allStates(v, "failing") },
			"every informer to notice the outage")
		_, view := c.inputs(t)
		for _, st := range view.Kubernetes {
			require.Equal(t, "unreachable", st.Reason, "%+v", st)
		}
		time.Sleep(time.Until(stopping.Add(outage))) // an outage is a wait: nothing must happen in it
		require.Empty(t, sidecar.since(ns), "nothing is pushed to the sidecar during the outage")
		require.Empty(t, gateway.since(ng), "nothing is pushed to the gateway during the outage")
		require.True(t, c.ready(t), "still ready: the last config is served")
		require.Equal(t, dumped, dumps(), "config_dump unchanged during the outage")
		require.NoError(t, sidecar.cl.Err())
		require.NoError(t, gateway.cl.Err())
		down := warnings(c.logs, func(observer.LoggedEntry) bool { return true })
		require.Len(t, down, 1, "one line for the whole outage:%s", describeEntries(down))
		require.Equal(t, "kubernetes API server unreachable: the last config stays in effect; informers retry with backoff", down[0].Message)

		// Back, with a change. The restarted API server's watch cache
		// cannot resume the informers' watches (410 Gone), so each one
		// relists after client-go's backoff, which grew during the outage.
		env.StartAPIServer(t)
		restarted := time.Now()
		env.Apply(t, apiEntry("after-outage", 443))
		t.Cleanup(func() { env.Delete(t, apiEntry("after-outage", 443)) })
		for _, p := range []*proxy{sidecar, gateway} {
			res := p.waitFor(t, reconnectTimeout, "the ServiceEntry applied after the outage", func(r *translate.Resources) bool {
				return slices.Contains(clusterNames(r), "outbound|443||api.example.com")
			})
			prev := sres
			if p == gateway {
				prev = gres
			}
			for _, name := range clusterNames(prev) {
				require.Contains(t, clusterNames(res), name, "%s lost a cluster", p.id)
			}
		}
		arrived := time.Since(restarted)
		eventually(t, reconnectTimeout, func() bool { return len(reads.since(restarted)) == 9 },
			"every informer to relist (relisted: %v)", lazy(func() string { return strings.Join(reads.since(restarted), ",") }))
		t.Logf("API server down %s; after it was back the change arrived in %s, every informer relisted in %s",
			restarted.Sub(stopping).Round(time.Millisecond), arrived.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
		time.Sleep(10 * holdoff) // a push would follow the last relist within the (max) holdoff
		// The relists pushed nothing but the change: one new version of
		// each type that changed, no empty or partial config in between.
		for _, p := range []*proxy{sidecar, gateway} {
			n := ns
			if p == gateway {
				n = ng
			}
			versions := map[string]map[string]bool{}
			for _, r := range p.since(n) {
				if versions[r.TypeURL] == nil {
					versions[r.TypeURL] = map[string]bool{}
				}
				versions[r.TypeURL][r.Version] = true
			}
			require.NotEmpty(t, versions[xdsclient.ClusterType], p.id)
			for typ, vs := range versions {
				require.Len(t, vs, 1, "%s: more than one new %s version after the outage", p.id, xdsclient.Short(typ))
			}
		}
		requireTwoHops(t, sidecar, gateway, sidecar.current(t), gateway.current(t))
		_, view = c.inputs(t)
		require.True(t, allStates(view, "synced"), "%+v", view.Kubernetes)
		require.Len(t, c.logs.Filter(messageIs("kubernetes API server answers again")).All(), 1)
		for _, e := range c.logs.Filter(func(e observer.LoggedEntry) bool { return e.Level >= zapcore.WarnLevel }).All() {
			require.Equal(t, down[0].Message, e.Message, "no other warning")
		}
	})
}
