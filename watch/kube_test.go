package watch_test

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/test/kubefake"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

const hop1Cluster = "outbound|443|httpbin|istio-egressgateway.istio-system.svc.cluster.local"

var (
	sleepProxy = translate.Proxy{Type: translate.Sidecar, IP: "10.244.2.7", ID: "sleep.mesh-test", Namespace: "mesh-test",
		DNSDomain: "mesh-test.svc.cluster.local", Labels: map[string]string{"app": "sleep"}}
	egressProxy = translate.Proxy{Type: translate.Router, IP: "10.244.1.20", ID: "istio-egressgateway.istio-system",
		Namespace: "istio-system", DNSDomain: "istio-system.svc.cluster.local",
		Labels: map[string]string{"app": "istio-egressgateway", "istio": "egressgateway"}}
)

// kubeEnv runs a KubeSource over fake clientsets and collects what it
// applies.
type kubeEnv struct {
	t       *testing.T
	c       *kubefake.Clients
	src     *watch.KubeSource
	reg     *prometheus.Registry
	logs    *observer.ObservedLogs
	applied chan *inputs.Inputs
	last    *inputs.Inputs
}

func newKubeEnv(t *testing.T, objs []runtime.Object, opt func(*watch.KubeOptions)) *kubeEnv {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	e := &kubeEnv{t: t, c: kubefake.New(objs...), reg: prometheus.NewRegistry(), logs: logs, applied: make(chan *inputs.Inputs, 100)}
	o := watch.KubeOptions{Client: e.c.Kube, Istio: e.c.IstioClient(), Holdoff: 10 * time.Millisecond, MaxHoldoff: 50 * time.Millisecond,
		Metrics: e.reg, Log: zap.New(core)}
	if opt != nil {
		opt(&o)
	}
	src, err := watch.NewKubeSource(o)
	require.NoError(t, err)
	e.src = src
	return e
}

func (e *kubeEnv) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		require.NoError(e.t, e.src.Run(ctx, func(in *inputs.Inputs) { e.applied <- in }))
	}()
	e.t.Cleanup(func() { cancel(); <-done })
}

func startKube(t *testing.T, objs []runtime.Object, opt func(*watch.KubeOptions)) *kubeEnv {
	e := newKubeEnv(t, objs, opt)
	e.start()
	return e
}

// waitFor returns the first applied inputs (the last one included) for
// which cond holds.
func (e *kubeEnv) waitFor(what string, cond func(*inputs.Inputs) bool) *inputs.Inputs {
	e.t.Helper()
	if e.last != nil && cond(e.last) {
		return e.last
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case in := <-e.applied:
			e.last = in
			if cond(in) {
				return in
			}
		case <-deadline:
			e.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// first waits for the first inputs.
func (e *kubeEnv) first() *inputs.Inputs {
	e.t.Helper()
	return e.waitFor("the first inputs", func(*inputs.Inputs) bool { return true })
}

// quiet asserts that nothing is applied for d.
func (e *kubeEnv) quiet(d time.Duration) {
	e.t.Helper()
	select {
	case in := <-e.applied:
		e.t.Fatalf("unexpected inputs applied: %d objects", len(in.Objects()))
	case <-time.After(d):
	}
}

func fixture(t *testing.T, extra ...runtime.Object) []runtime.Object {
	t.Helper()
	objs, err := kubefake.Objects(kubefake.Egress)
	require.NoError(t, err)
	return append(objs, extra...)
}

func clusterNames(in *inputs.Inputs, p translate.Proxy) []string {
	var out []string
	for _, c := range translate.Translate(in, p).Clusters {
		out = append(out, c.GetName())
	}
	return out
}

func hasCluster(in *inputs.Inputs, p translate.Proxy, name string) bool {
	return slices.Contains(clusterNames(in, p), name)
}

func tlsCall(in *inputs.Inputs, p translate.Proxy, sni string, port uint32) sim.Result {
	return sim.Run(translate.Translate(in, p), p.Type, sim.Call{Protocol: sim.TLS, SNI: sni, Port: port})
}

func kinds(in *inputs.Inputs) map[string]int {
	out := map[string]int{}
	for _, o := range in.Objects() {
		kn := o.KindName()
		out[kn[:strings.Index(kn, " ")]]++
	}
	return out
}

var ctx = context.Background()

func TestMain(m *testing.M) {
	watch.RouteKlog(zap.NewNop())
	os.Exit(m.Run())
}

// TestKubeSeed: the seed's objects, read from the API server, give the
// same two hops as from files, and every object remembers its source.
func TestKubeSeed(t *testing.T) {
	e := startKube(t, fixture(t, kubefake.MeshConfigMap("accessLogFile: /dev/stdout\n")), nil)
	in := e.first()
	require.True(t, e.src.Synced())
	require.Equal(t, map[string]int{"ServiceEntry": 1, "Gateway": 1, "VirtualService": 1, "DestinationRule": 1, "Sidecar": 1,
		"Service": 1, "EndpointSlice": 1, "Namespace": 2}, kinds(in))
	for _, o := range in.Objects() {
		require.NotEmpty(t, o.GetSource().Kube, o.KindName())
		require.Empty(t, o.GetSource().File)
	}
	require.NotEmpty(t, in.MeshSource.Kube)
	require.Equal(t, "/dev/stdout", in.Mesh.GetAccessLogFile())
	require.Empty(t, in.Problems)

	require.Equal(t, hop1Cluster, tlsCall(in, sleepProxy, "httpbin.org", 443).Cluster, "hop 1")
	require.Equal(t, sim.Blackhole, tlsCall(in, sleepProxy, "example.com", 443).Outcome, "REGISTRY_ONLY from the Sidecar")
	require.Equal(t, "outbound|443||httpbin.org", tlsCall(in, egressProxy, "httpbin.org", 8443).Cluster, "hop 2 on the targetPort")
	var eps []string
	for _, cla := range translate.Translate(in, sleepProxy).Endpoints {
		if cla.GetClusterName() == hop1Cluster {
			for _, le := range cla.GetEndpoints() {
				for _, ep := range le.GetLbEndpoints() {
					a := ep.GetEndpoint().GetAddress().GetSocketAddress()
					eps = append(eps, a.GetAddress()+":"+itoa(a.GetPortValue()))
				}
			}
		}
	}
	require.Equal(t, []string{"10.244.1.20:8443"}, eps, "hop 1 endpoints from the EndpointSlice")
	e.quiet(100 * time.Millisecond)
}

func itoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func newSE(name, ns, host string) *networking.ServiceEntry {
	o := &networking.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	o.Spec.Hosts = []string{host}
	o.Spec.Ports = append(o.Spec.Ports, newPort(443, "tls", "TLS"))
	o.Spec.Location = networkingapi.ServiceEntry_MESH_EXTERNAL
	o.Spec.Resolution = networkingapi.ServiceEntry_DNS
	return o
}

func newPort(n uint32, name, protocol string) *networkingapi.ServicePort {
	return &networkingapi.ServicePort{Number: n, Name: name, Protocol: protocol}
}

// TestKubeAddUpdateDelete: add, update and delete of every kind reach the
// inputs and change what the proxies get.
func TestKubeAddUpdateDelete(t *testing.T) {
	e := startKube(t, fixture(t), nil)
	e.first()
	nw := e.c.Istio.NetworkingV1()
	core := e.c.Kube.CoreV1()

	// ServiceEntry: a new host gets a cluster; deleting it removes it.
	_, err := nw.ServiceEntries("mesh-test").Create(ctx, newSE("api", "mesh-test", "api.example.com"), metav1.CreateOptions{})
	require.NoError(t, err)
	in := e.waitFor("the new ServiceEntry's cluster", func(in *inputs.Inputs) bool {
		return hasCluster(in, sleepProxy, "outbound|443||api.example.com")
	})
	require.Equal(t, "outbound|443||api.example.com", tlsCall(in, sleepProxy, "api.example.com", 443).Cluster)
	se, err := nw.ServiceEntries("mesh-test").Get(ctx, "api", metav1.GetOptions{})
	require.NoError(t, err)
	se.Spec.Hosts = []string{"api2.example.com"}
	_, err = nw.ServiceEntries("mesh-test").Update(ctx, se, metav1.UpdateOptions{})
	require.NoError(t, err)
	in = e.waitFor("the updated ServiceEntry", func(in *inputs.Inputs) bool {
		return hasCluster(in, sleepProxy, "outbound|443||api2.example.com")
	})
	require.False(t, hasCluster(in, sleepProxy, "outbound|443||api.example.com"))
	require.NoError(t, nw.ServiceEntries("mesh-test").Delete(ctx, "api", metav1.DeleteOptions{}))
	in = e.waitFor("the ServiceEntry's cluster gone", func(in *inputs.Inputs) bool {
		return !hasCluster(in, sleepProxy, "outbound|443||api2.example.com")
	})
	require.Equal(t, sim.Blackhole, tlsCall(in, sleepProxy, "api2.example.com", 443).Outcome)

	// DestinationRule: the subset cluster of hop 1 follows it.
	dr, err := nw.DestinationRules("mesh-test").Get(ctx, "egressgateway-for-httpbin", metav1.GetOptions{})
	require.NoError(t, err)
	dr.Spec.Subsets[0].Name = "httpbin2"
	_, err = nw.DestinationRules("mesh-test").Update(ctx, dr, metav1.UpdateOptions{})
	require.NoError(t, err)
	e.waitFor("the renamed subset cluster", func(in *inputs.Inputs) bool {
		return hasCluster(in, sleepProxy, "outbound|443|httpbin2|istio-egressgateway.istio-system.svc.cluster.local")
	})
	require.NoError(t, nw.DestinationRules("mesh-test").Delete(ctx, "egressgateway-for-httpbin", metav1.DeleteOptions{}))
	e.waitFor("no subset cluster", func(in *inputs.Inputs) bool {
		return !hasCluster(in, sleepProxy, "outbound|443|httpbin2|istio-egressgateway.istio-system.svc.cluster.local")
	})

	// Sidecar: REGISTRY_ONLY → ALLOW_ANY turns the blackhole into a
	// passthrough; deleting it falls back to the mesh default (ALLOW_ANY).
	sc, err := nw.Sidecars("mesh-test").Get(ctx, "default", metav1.GetOptions{})
	require.NoError(t, err)
	sc.Spec.OutboundTrafficPolicy.Mode = networkingapi.OutboundTrafficPolicy_ALLOW_ANY
	_, err = nw.Sidecars("mesh-test").Update(ctx, sc, metav1.UpdateOptions{})
	require.NoError(t, err)
	e.waitFor("ALLOW_ANY from the Sidecar", func(in *inputs.Inputs) bool {
		return tlsCall(in, sleepProxy, "example.com", 443).Outcome == sim.Passthrough
	})
	require.NoError(t, nw.Sidecars("mesh-test").Delete(ctx, "default", metav1.DeleteOptions{}))
	in = e.waitFor("the Sidecar gone", func(in *inputs.Inputs) bool { return len(in.Sidecars) == 0 })
	require.Equal(t, sim.Passthrough, tlsCall(in, sleepProxy, "example.com", 443).Outcome)

	// EndpointSlice: hop 1's endpoints follow it.
	es, err := e.c.Kube.DiscoveryV1().EndpointSlices("istio-system").Get(ctx, "istio-egressgateway-x7k2p", metav1.GetOptions{})
	require.NoError(t, err)
	es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.244.1.21"}})
	_, err = e.c.Kube.DiscoveryV1().EndpointSlices("istio-system").Update(ctx, es, metav1.UpdateOptions{})
	require.NoError(t, err)
	e.waitFor("two endpoints", func(in *inputs.Inputs) bool {
		return len(in.EndpointSlices) == 1 && len(in.EndpointSlices[0].Endpoints) == 2
	})
	require.NoError(t, e.c.Kube.DiscoveryV1().EndpointSlices("istio-system").Delete(ctx, "istio-egressgateway-x7k2p", metav1.DeleteOptions{}))
	e.waitFor("no EndpointSlice", func(in *inputs.Inputs) bool { return len(in.EndpointSlices) == 0 })

	// Service: deleting the egress gateway's Service takes hop 1's
	// destination away; adding it back restores it.
	svc, err := core.Services("istio-system").Get(ctx, "istio-egressgateway", metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, core.Services("istio-system").Delete(ctx, "istio-egressgateway", metav1.DeleteOptions{}))
	e.waitFor("no hop 1 cluster", func(in *inputs.Inputs) bool {
		return len(in.Services) == 0 && !hasCluster(in, sleepProxy, "outbound|443||istio-egressgateway.istio-system.svc.cluster.local")
	})
	svc.ResourceVersion = ""
	_, err = core.Services("istio-system").Create(ctx, svc, metav1.CreateOptions{})
	require.NoError(t, err)
	e.waitFor("the gateway Service back", func(in *inputs.Inputs) bool {
		return hasCluster(in, sleepProxy, "outbound|443||istio-egressgateway.istio-system.svc.cluster.local")
	})

	// Namespace: added and deleted.
	_, err = core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	e.waitFor("three namespaces", func(in *inputs.Inputs) bool { return len(in.Namespaces) == 3 })
	require.NoError(t, core.Namespaces().Delete(ctx, "team-a", metav1.DeleteOptions{}))
	e.waitFor("two namespaces", func(in *inputs.Inputs) bool { return len(in.Namespaces) == 2 })

	// Gateway and VirtualService: covered by TestKubeVirtualServiceMoves.
	require.Positive(t, metric(t, e.reg, "chokepoint_kube_events_total", map[string]string{"kind": "ServiceEntry", "event": "delete"}))
}

// TestKubeVirtualServiceMoves: a VirtualService moved from one Gateway to
// another moves its SNI route to the other Gateway's listener.
func TestKubeVirtualServiceMoves(t *testing.T) {
	e := startKube(t, fixture(t), nil)
	in := e.first()
	require.Equal(t, "outbound|443||httpbin.org", tlsCall(in, egressProxy, "httpbin.org", 8443).Cluster)
	nw := e.c.Istio.NetworkingV1()

	// A second Gateway on the same workload, port 15443.
	gw, err := nw.Gateways("mesh-test").Get(ctx, "istio-egressgateway", metav1.GetOptions{})
	require.NoError(t, err)
	gw2 := gw.DeepCopy()
	gw2.Name, gw2.ResourceVersion = "egress-15443", ""
	gw2.Spec.Servers[0].Port.Number = 15443
	_, err = nw.Gateways("mesh-test").Create(ctx, gw2, metav1.CreateOptions{})
	require.NoError(t, err)
	e.waitFor("the second Gateway", func(in *inputs.Inputs) bool { return len(in.Gateways) == 2 })

	vs, err := nw.VirtualServices("mesh-test").Get(ctx, "direct-httpbin-through-egress", metav1.GetOptions{})
	require.NoError(t, err)
	vs.Spec.Gateways = []string{"mesh", "egress-15443"}
	vs.Spec.Tls[1].Match[0].Gateways = []string{"egress-15443"}
	vs.Spec.Tls[1].Match[0].Port = 15443
	_, err = nw.VirtualServices("mesh-test").Update(ctx, vs, metav1.UpdateOptions{})
	require.NoError(t, err)
	in = e.waitFor("the route on 15443", func(in *inputs.Inputs) bool {
		return tlsCall(in, egressProxy, "httpbin.org", 15443).Cluster == "outbound|443||httpbin.org"
	})
	require.NotEqual(t, sim.ToCluster, tlsCall(in, egressProxy, "httpbin.org", 8443).Outcome, "gone from the first Gateway")

	// Deleting the Gateway takes its listener away.
	require.NoError(t, nw.Gateways("mesh-test").Delete(ctx, "egress-15443", metav1.DeleteOptions{}))
	e.waitFor("no route on 15443", func(in *inputs.Inputs) bool {
		return len(in.Gateways) == 1 && tlsCall(in, egressProxy, "httpbin.org", 15443).Outcome != sim.ToCluster
	})
	require.NoError(t, nw.VirtualServices("mesh-test").Delete(ctx, "direct-httpbin-through-egress", metav1.DeleteOptions{}))
	e.waitFor("no VirtualService", func(in *inputs.Inputs) bool {
		return len(in.VirtualServices) == 0 && tlsCall(in, sleepProxy, "httpbin.org", 443).Cluster == "outbound|443||httpbin.org"
	})
}

// TestKubeMeshConfigMap: the istio ConfigMap's outboundTrafficPolicy
// switches a sidecar without a Sidecar between passthrough and blackhole;
// a broken mesh config keeps the last good one.
func TestKubeMeshConfigMap(t *testing.T) {
	var objs []runtime.Object
	for _, o := range fixture(t, kubefake.MeshConfigMap("outboundTrafficPolicy: {mode: ALLOW_ANY}\n")) {
		if _, ok := o.(*networking.Sidecar); !ok {
			objs = append(objs, o)
		}
	}
	e := startKube(t, objs, nil)
	in := e.first()
	require.Equal(t, sim.Passthrough, tlsCall(in, sleepProxy, "example.com", 443).Outcome)
	cms := e.c.Kube.CoreV1().ConfigMaps("istio-system")

	cm := kubefake.MeshConfigMap("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")
	cm.ResourceVersion = "7"
	_, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	in = e.waitFor("REGISTRY_ONLY", func(in *inputs.Inputs) bool {
		return tlsCall(in, sleepProxy, "example.com", 443).Outcome == sim.Blackhole
	})
	require.Equal(t, "outbound|443||httpbin.org", tlsCall(in, egressProxy, "httpbin.org", 8443).Cluster)

	cm = kubefake.MeshConfigMap("outboundTrafficPolicy: {mode: REGISTRY_ONLYY}\n")
	cm.ResourceVersion = "8"
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	in = e.waitFor("the mesh config error", func(in *inputs.Inputs) bool { return len(in.Problems) > 0 })
	require.Equal(t, sim.Blackhole, tlsCall(in, sleepProxy, "example.com", 443).Outcome, "the last good mesh config stays")
	require.Equal(t, "ConfigMap istio-system/istio", in.Problems[0].Object)
	require.Equal(t, "data.mesh.outboundTrafficPolicy.mode", in.Problems[0].Field)
	require.Contains(t, in.Problems[0].Message, "REGISTRY_ONLYY")
	require.Contains(t, in.Problems[1].Message, "last good version (resourceVersion 7)")

	require.NoError(t, cms.Delete(ctx, "istio", metav1.DeleteOptions{}))
	in = e.waitFor("the defaults", func(in *inputs.Inputs) bool { return len(in.Problems) == 0 })
	require.Equal(t, inputs.Source{}, in.MeshSource)
	require.Equal(t, sim.Passthrough, tlsCall(in, sleepProxy, "example.com", 443).Outcome, "Istio's default is ALLOW_ANY")
}

// TestKubeNamespaceFilter: --namespace restricts the namespaced kinds;
// Namespaces and the mesh ConfigMap are still read.
func TestKubeNamespaceFilter(t *testing.T) {
	other := newSE("other", "team-b", "other.example.com")
	e := startKube(t, fixture(t, other, kubefake.MeshConfigMap("accessLogFile: /dev/stdout\n")), func(o *watch.KubeOptions) {
		o.Namespaces = []string{"mesh-test", "istio-system", "mesh-test"}
	})
	in := e.first()
	require.Len(t, in.ServiceEntries, 1)
	require.Equal(t, "httpbin-ext", in.ServiceEntries[0].Name)
	require.Len(t, in.Services, 1, "istio-system is watched")
	require.Len(t, in.Namespaces, 2)
	require.Equal(t, "/dev/stdout", in.Mesh.GetAccessLogFile())

	_, err := e.c.Istio.NetworkingV1().ServiceEntries("team-b").Create(ctx, newSE("other2", "team-b", "other2.example.com"), metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = e.c.Istio.NetworkingV1().ServiceEntries("mesh-test").Create(ctx, newSE("api", "mesh-test", "api.example.com"), metav1.CreateOptions{})
	require.NoError(t, err)
	in = e.waitFor("the mesh-test ServiceEntry", func(in *inputs.Inputs) bool { return len(in.ServiceEntries) == 2 })
	for _, se := range in.ServiceEntries {
		require.Equal(t, "mesh-test", se.Namespace)
	}
	var watched []string
	for _, st := range e.src.Status() {
		if st.Resource == "networking.istio.io/v1/serviceentries" {
			watched = append(watched, st.Namespace)
		}
	}
	require.Equal(t, []string{"istio-system", "mesh-test"}, watched, "one informer per namespace, deduplicated")
}

var sidecarsGR = schema.GroupResource{Group: "networking.istio.io", Resource: "sidecars"}

// TestKubeForbidden: a kind RBAC forbids is logged once, naming the
// resource and the verb, is treated as empty, and the rest works.
func TestKubeForbidden(t *testing.T) {
	e := newKubeEnv(t, fixture(t), nil)
	var lists atomic.Int32
	var allowed atomic.Bool
	e.c.Istio.PrependReactor("list", "sidecars", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		if allowed.Load() {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(sidecarsGR, "", errors.New(
			`User "system:serviceaccount:istio-system:chokepoint" cannot list resource "sidecars" in API group "networking.istio.io" at the cluster scope`))
	})
	e.start()
	in := e.first()
	require.Empty(t, in.Sidecars)
	require.Len(t, in.ServiceEntries, 1)
	require.Equal(t, sim.Passthrough, tlsCall(in, sleepProxy, "example.com", 443).Outcome, "no Sidecar: the mesh default")

	st := status(e.src, "networking.istio.io/v1/sidecars")
	require.Equal(t, "unavailable", st.State)
	require.Equal(t, "forbidden", st.Reason)
	require.Equal(t, 1.0, metric(t, e.reg, "chokepoint_kube_resource_state",
		map[string]string{"resource": "networking.istio.io/v1/sidecars", "state": "unavailable"}))

	// The other kinds keep working while the reflector retries.
	_, err := e.c.Istio.NetworkingV1().ServiceEntries("mesh-test").Create(ctx, newSE("api", "mesh-test", "api.example.com"), metav1.CreateOptions{})
	require.NoError(t, err)
	e.waitFor("the new ServiceEntry", func(in *inputs.Inputs) bool { return len(in.ServiceEntries) == 2 })
	require.Eventually(t, func() bool { return lists.Load() >= 2 }, 5*time.Second, 20*time.Millisecond, "the reflector retries")

	lines := e.logs.FilterMessage("kubernetes RBAC forbids reading a resource").AllUntimed()
	require.Len(t, lines, 1, "one line, not one per retry")
	f := lines[0].ContextMap()
	require.Equal(t, zapcore.WarnLevel, lines[0].Level)
	require.Equal(t, "networking.istio.io/v1/sidecars", f["resource"])
	require.Equal(t, "list", f["missing_verbs"])
	require.Equal(t, "all", f["namespace"])
	require.Contains(t, f["rbac"], "networking.istio.io resources sidecars")
	require.Contains(t, f["effect"], "treated as empty")

	// RBAC granted: the Sidecars arrive without a restart.
	allowed.Store(true)
	in = e.waitFor("the Sidecar once readable", func(in *inputs.Inputs) bool { return len(in.Sidecars) == 1 })
	require.Equal(t, sim.Blackhole, tlsCall(in, sleepProxy, "example.com", 443).Outcome)
	require.Equal(t, "synced", status(e.src, "networking.istio.io/v1/sidecars").State)
	require.Len(t, e.logs.FilterMessage("kubernetes resource readable again").AllUntimed(), 1)
}

// TestKubeMissingCRD: a kind the API server does not serve (its CRD is not
// installed) is reported once and treated as empty.
func TestKubeMissingCRD(t *testing.T) {
	e := newKubeEnv(t, fixture(t), nil)
	var lists atomic.Int32
	e.c.Istio.PrependReactor("list", "sidecars", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		return true, nil, apierrors.NewGenericServerResponse(404, "list", sidecarsGR, "", "", 0, true)
	})
	e.start()
	in := e.first()
	require.Empty(t, in.Sidecars)
	require.Len(t, in.VirtualServices, 1)
	require.Equal(t, "not_served", status(e.src, "networking.istio.io/v1/sidecars").Reason)
	require.Eventually(t, func() bool { return lists.Load() >= 2 }, 5*time.Second, 20*time.Millisecond)
	lines := e.logs.FilterMessage("kubernetes API server does not serve a resource (CRD not installed?)").AllUntimed()
	require.Len(t, lines, 1)
	require.Equal(t, "networking.istio.io/v1/sidecars", lines[0].ContextMap()["resource"])
}

// TestKubeReadyAfterSync: nothing is applied while a kind has not synced
// (here: the API server refuses its list for a while), then everything at
// once.
func TestKubeReadyAfterSync(t *testing.T) {
	e := newKubeEnv(t, fixture(t), nil)
	var refuse = make(chan struct{})
	e.c.Istio.PrependReactor("list", "virtualservices", func(k8stesting.Action) (bool, runtime.Object, error) {
		select {
		case <-refuse:
			return false, nil, nil
		default:
			return true, nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
		}
	})
	e.start()
	e.quiet(300 * time.Millisecond)
	require.False(t, e.src.Synced())
	st := status(e.src, "networking.istio.io/v1/virtualservices")
	require.Equal(t, "syncing", st.State)
	require.Equal(t, "unreachable", st.Reason)
	require.Equal(t, "synced", status(e.src, "networking.istio.io/v1/serviceentries").State)
	require.Len(t, e.logs.FilterMessageSnippet("API server unreachable").AllUntimed(), 1)

	close(refuse)
	in := e.first()
	require.True(t, e.src.Synced())
	require.Len(t, in.VirtualServices, 1)
	require.Len(t, in.ServiceEntries, 1)
	select {
	case <-e.src.Ready():
	default:
		t.Fatal("Ready not closed after the first inputs")
	}
}

// TestKubeSyncTimeout: a kind that keeps failing with server errors is
// given up on after the sync timeout, not waited for forever.
func TestKubeSyncTimeout(t *testing.T) {
	e := newKubeEnv(t, fixture(t), func(o *watch.KubeOptions) { o.SyncTimeout = 200 * time.Millisecond })
	e.c.Istio.PrependReactor("list", "destinationrules", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("conversion webhook for networking.istio.io/v1 failed"))
	})
	e.start()
	in := e.first()
	require.Empty(t, in.DestinationRules)
	st := status(e.src, "networking.istio.io/v1/destinationrules")
	require.Equal(t, "unavailable", st.State)
	require.Equal(t, "error", st.Reason)
	require.Len(t, e.logs.FilterMessage("reading a kubernetes resource failed").AllUntimed(), 1)
	require.Len(t, e.logs.FilterMessageSnippet("still failing after the sync timeout").AllUntimed(), 1)
}

// TestKubeOutage: when the API server goes away nothing is applied (the
// last config stays), the outage is logged once, and when it comes back
// changes flow again.
func TestKubeOutage(t *testing.T) {
	e := startKube(t, fixture(t), nil)
	e.first()
	e.c.SetMode(kubefake.Down)
	require.Eventually(t, func() bool { return status(e.src, "networking.istio.io/v1/serviceentries").State == "failing" },
		5*time.Second, 20*time.Millisecond)
	e.quiet(time.Second)
	require.Len(t, e.logs.FilterMessageSnippet("API server unreachable").AllUntimed(), 1, "one line for the whole outage")
	require.Equal(t, "unreachable", status(e.src, "v1/services").Reason)

	e.c.SetMode(kubefake.Up)
	_, err := e.c.Istio.NetworkingV1().ServiceEntries("mesh-test").Create(ctx, newSE("api", "mesh-test", "api.example.com"), metav1.CreateOptions{})
	require.NoError(t, err)
	in := e.waitFor("the ServiceEntry made during recovery", func(in *inputs.Inputs) bool { return len(in.ServiceEntries) == 2 })
	require.Equal(t, map[string]int{"ServiceEntry": 2, "Gateway": 1, "VirtualService": 1, "DestinationRule": 1, "Sidecar": 1,
		"Service": 1, "EndpointSlice": 1, "Namespace": 2}, kinds(in), "nothing lost across the outage")
	require.Eventually(t, func() bool { return status(e.src, "networking.istio.io/v1/serviceentries").State == "synced" },
		5*time.Second, 20*time.Millisecond)
	require.Len(t, e.logs.FilterMessage("kubernetes API server answers again").AllUntimed(), 1)
}

// TestKubeWatchExpired: a watch that ends with 410 Gone makes the
// informer relist, and what changed meanwhile (a delete the watch never
// delivered) is picked up.
func TestKubeWatchExpired(t *testing.T) {
	e := startKube(t, fixture(t), nil)
	e.first()
	watches := e.c.Calls("watch", "serviceentries")
	e.c.SetMode(kubefake.Expired) // the open watches end with 410 Gone
	gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
	require.NoError(t, e.c.Istio.Tracker().Delete(gvr, "mesh-test", "httpbin-ext"))
	e.c.SetMode(kubefake.Up)
	in := e.waitFor("the ServiceEntry deleted while the watch was down", func(in *inputs.Inputs) bool {
		return len(in.ServiceEntries) == 0
	})
	require.Len(t, in.VirtualServices, 1, "a relist is not an empty config")
	require.Len(t, in.Services, 1)
	require.Eventually(t, func() bool { return e.c.Calls("watch", "serviceentries") > watches }, 5*time.Second, 20*time.Millisecond)
	_, err := e.c.Istio.NetworkingV1().ServiceEntries("mesh-test").Create(ctx, newSE("api", "mesh-test", "api.example.com"), metav1.CreateOptions{})
	require.NoError(t, err)
	e.waitFor("watches work again", func(in *inputs.Inputs) bool { return len(in.ServiceEntries) == 1 })
	require.Empty(t, e.logs.FilterLevelExact(zapcore.WarnLevel).AllUntimed(), "an expired watch is routine")
}

// TestKubeBrokenObjectKeepsLastGood: an object the translator rejects is
// replaced by its last good version until it is fixed, with the error
// naming it.
func TestKubeBrokenObjectKeepsLastGood(t *testing.T) {
	check := func(in *inputs.Inputs) []inputs.Problem { return translate.NewIndex(in).Problems() }
	e := startKube(t, fixture(t), func(o *watch.KubeOptions) { o.Check = check })
	e.first()
	ses := e.c.Istio.NetworkingV1().ServiceEntries("mesh-test")
	api := newSE("api", "mesh-test", "api.example.com")
	api.ResourceVersion = "41"
	_, err := ses.Create(ctx, api, metav1.CreateOptions{})
	require.NoError(t, err)
	e.waitFor("the good version", func(in *inputs.Inputs) bool { return hasCluster(in, sleepProxy, "outbound|443||api.example.com") })

	bad := api.DeepCopy()
	bad.ResourceVersion = "42"
	bad.Spec.Hosts = []string{"api.example.com", "new.example.com"}
	bad.Spec.Ports = append(bad.Spec.Ports, newPort(443, "tls2", "TLS"))
	_, err = ses.Update(ctx, bad, metav1.UpdateOptions{})
	require.NoError(t, err)
	in := e.waitFor("the error", func(in *inputs.Inputs) bool { return len(in.Problems) > 0 })
	require.True(t, hasCluster(in, sleepProxy, "outbound|443||api.example.com"), "the last good version is served")
	require.False(t, hasCluster(in, sleepProxy, "outbound|443||new.example.com"))
	require.Len(t, in.Problems, 2)
	require.Equal(t, "kubernetes (resourceVersion 42): ServiceEntry mesh-test/api: spec.ports[1].number: port 443 is listed twice", in.Problems[0].Error())
	require.Equal(t, inputs.SeverityWarning, in.Problems[1].Severity)
	require.Contains(t, in.Problems[1].Message, "last good version (resourceVersion 41)")

	fixed := bad.DeepCopy()
	fixed.ResourceVersion = "43"
	fixed.Spec.Ports = fixed.Spec.Ports[:1]
	_, err = ses.Update(ctx, fixed, metav1.UpdateOptions{})
	require.NoError(t, err)
	in = e.waitFor("the fix", func(in *inputs.Inputs) bool { return hasCluster(in, sleepProxy, "outbound|443||new.example.com") })
	require.Empty(t, in.Problems)

	// A new object that never was good is left out.
	never := newSE("never", "mesh-test", "never.example.com")
	never.Spec.Ports = append(never.Spec.Ports, newPort(443, "tls2", "TLS"))
	_, err = ses.Create(ctx, never, metav1.CreateOptions{})
	require.NoError(t, err)
	in = e.waitFor("the never-good object's error", func(in *inputs.Inputs) bool { return len(in.Problems) > 0 })
	require.False(t, hasCluster(in, sleepProxy, "outbound|443||never.example.com"))
	require.Contains(t, in.Problems[len(in.Problems)-1].Message, "was not applied")
}

func status(s *watch.KubeSource, resource string) watch.KubeResourceStatus {
	for _, st := range s.Status() {
		if st.Resource == resource {
			return st
		}
	}
	return watch.KubeResourceStatus{}
}

// metric reads one sample (the first whose labels include want) from reg.
func metric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no sample of %s with %v", name, want)
	return 0
}
