package kubeint

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/chokepoint-xds/chokepoint/internal/app"
	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/test/xdsclient"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

// The seed's proxies, as in the Makefile and test/e2e.
const (
	sidecarID = "sidecar~10.244.2.7~sleep-6d8f.mesh-test~mesh-test.svc.cluster.local"
	gatewayID = "router~10.244.1.20~istio-egressgateway-7c9d.istio-system~istio-system.svc.cluster.local"

	hop1Cluster = "outbound|443|httpbin|istio-egressgateway.istio-system.svc.cluster.local"
	hop2Cluster = "outbound|443||httpbin.org"

	// holdoff is the debounce the control planes run with.
	holdoff = 50 * time.Millisecond
	// syncTimeout bounds waits for config that should arrive promptly.
	syncTimeout = 20 * time.Second
	// reconnectTimeout bounds waits that include a client-go reflector's
	// backoff after failures (0.8 s doubling, jittered, up to 30 s).
	reconnectTimeout = time.Minute
)

var (
	sidecarLabels = map[string]string{"app": "sleep"}
	gatewayLabels = map[string]string{"app": "istio-egressgateway", "istio": "egressgateway"}
)

// readManifests concatenates the YAML files matching glob.
func readManifests(t *testing.T, glob string) string {
	t.Helper()
	files, err := filepath.Glob(glob)
	require.NoError(t, err)
	require.NotEmpty(t, files, glob)
	var docs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		docs = append(docs, string(b))
	}
	return strings.Join(docs, "\n---\n")
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// docsOfKind returns the documents of a YAML file whose kind is one of
// kinds.
func docsOfKind(t *testing.T, path string, kinds ...string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []string
	for _, doc := range docSeparator.Split(string(b), -1) {
		var tm metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal([]byte(doc), &tm), path)
		if slices.Contains(kinds, tm.Kind) {
			out = append(out, doc)
		}
	}
	return strings.Join(out, "\n---\n")
}

// endpointSlicesFor does what the EndpointSlice mirroring controller would:
// one EndpointSlice per subset of each Endpoints object among applied. The
// test API server runs no controller-manager, and chokepoint reads
// EndpointSlices only. It returns a manifest (a JSON List), "" when there
// are no Endpoints.
func endpointSlicesFor(t *testing.T, applied []*unstructured.Unstructured) string {
	t.Helper()
	var items []any
	for _, u := range applied {
		if u.GetKind() != "Endpoints" {
			continue
		}
		var eps corev1.Endpoints
		require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &eps))
		for i, ss := range eps.Subsets {
			slice := discoveryv1.EndpointSlice{
				TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
				ObjectMeta: metav1.ObjectMeta{
					Name: fmt.Sprintf("%s-mirror-%d", eps.Name, i), Namespace: eps.Namespace,
					Labels: map[string]string{discoveryv1.LabelServiceName: eps.Name},
				},
				AddressType: discoveryv1.AddressTypeIPv4,
			}
			for _, p := range ss.Ports {
				slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{Name: &p.Name, Port: &p.Port, Protocol: &p.Protocol})
			}
			for ready, addrs := range map[bool][]corev1.EndpointAddress{true: ss.Addresses, false: ss.NotReadyAddresses} {
				for _, a := range addrs {
					slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
						Addresses: []string{a.IP}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
					})
				}
			}
			items = append(items, slice)
		}
	}
	if len(items) == 0 {
		return ""
	}
	b, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	require.NoError(t, err)
	return string(b)
}

// relists records, per resource (the last segment of the URL path:
// "serviceentries", "configmaps"), when the API server answered a request
// that reads the whole collection: a list, or a watch-list (a watch with
// sendInitialEvents), which is how informers sync and resync.
type relists struct {
	mu sync.Mutex
	at map[string][]time.Time
}

// watch returns a copy of cfg whose requests are recorded in r.
func (r *relists) watch(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			q := req.URL.Query()
			if err == nil && resp.StatusCode == http.StatusOK && req.Method == http.MethodGet &&
				(q.Get("watch") != "true" || q.Get("sendInitialEvents") == "true") {
				r.mu.Lock()
				if r.at == nil {
					r.at = map[string][]time.Time{}
				}
				res := req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]
				r.at[res] = append(r.at[res], time.Now())
				r.mu.Unlock()
			}
			return resp, err
		})
	})
	return cfg
}

// since returns the resources that were read whole after t.
func (r *relists) since(t time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for res, at := range r.at {
		if at[len(at)-1].After(t) {
			out = append(out, res)
		}
	}
	slices.Sort(out)
	return out
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// cp is a control plane reading the test's API server.
type cp struct {
	*app.App
	logs    *observer.ObservedLogs
	cancel  context.CancelFunc
	stopped chan struct{}
	once    sync.Once
}

// startCP runs `serve --kube` with o (Kube is set, addresses, holdoff and
// the logger are filled in) and logs captured in cp.logs. It stops when the
// test ends, or at cp.stop.
func startCP(t *testing.T, o app.Options) *cp {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	o.Kube, o.XDSAddress, o.AdminAddress = true, "127.0.0.1:0", "127.0.0.1:0"
	o.Holdoff, o.MaxHoldoff, o.Drain = holdoff, 4*holdoff, time.Second
	o.Log = zap.New(core)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &cp{App: a, logs: logs, cancel: cancel, stopped: make(chan struct{})}
	go func() {
		if err := a.Run(ctx); err != nil {
			t.Errorf("control plane: %v", err)
		}
		close(c.stopped)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			for _, e := range logs.Filter(func(e observer.LoggedEntry) bool { return e.Level >= zapcore.InfoLevel }).All() {
				t.Logf("log: %s %s %s %v", e.Time.Format("15:04:05.000"), e.Level, e.Message, e.ContextMap())
			}
		}
		c.stop(t)
	})
	return c
}

// clientsFor is app.Options with the clients of cfg.
func clientsFor(t *testing.T, cfg *rest.Config) app.Options {
	t.Helper()
	kc, ic, err := watch.KubeClientsFor(cfg)
	require.NoError(t, err)
	return app.Options{KubeClient: kc, IstioClient: ic}
}

func (c *cp) stop(t *testing.T) {
	c.once.Do(func() {
		c.cancel()
		select {
		case <-c.stopped:
		case <-time.After(10 * time.Second):
			t.Error("control plane did not stop")
		}
	})
}

func (c *cp) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + c.AdminAddr() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func (c *cp) getOK(t *testing.T, path string) string {
	t.Helper()
	code, body := c.get(t, path)
	require.Equal(t, http.StatusOK, code, "GET %s: %s", path, body)
	return body
}

func (c *cp) ready(t *testing.T) bool {
	code, _ := c.get(t, "/readyz")
	return code == http.StatusOK
}

// metric returns the value of one series of /metrics, e.g.
// `chokepoint_kube_resource_state{namespace="all",resource="...",state="synced"}`,
// and whether it is there.
func (c *cp) metric(t *testing.T, series string) (float64, bool) {
	t.Helper()
	for _, line := range strings.Split(c.getOK(t, "/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, line)
			return f, true
		}
	}
	return 0, false
}

// inputs reads /debug/inputs, whatever its status (503 before the first
// sync, with the informers' states).
func (c *cp) inputs(t *testing.T) (int, inputsView) {
	t.Helper()
	code, body := c.get(t, "/debug/inputs")
	var v inputsView
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return code, v
}

// resourceStates maps group/version/resource to its informer's status
// (namespace "all" and cluster-scoped ones, as without --namespace).
func resourceStates(v inputsView) map[string]watch.KubeResourceStatus {
	out := map[string]watch.KubeResourceStatus{}
	for _, st := range v.Kubernetes {
		out[st.Resource] = st
	}
	return out
}

// warnings are the log entries at warn level or above that match.
func warnings(logs *observer.ObservedLogs, match func(observer.LoggedEntry) bool) []observer.LoggedEntry {
	return logs.Filter(func(e observer.LoggedEntry) bool { return e.Level >= zapcore.WarnLevel && match(e) }).All()
}

func describeEntries(es []observer.LoggedEntry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\n  %s %q %v", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}

// proxy is an ADS client of the control plane whose responses are all kept.
type proxy struct {
	id string
	cl *xdsclient.Client

	mu     sync.Mutex
	all    []xdsclient.Response
	latest map[string]xdsclient.Response
}

// connect opens an ADS stream for the node id (namespace from the id) with
// the workload labels; it is closed when the test ends.
func (c *cp) connect(t *testing.T, id string, labels map[string]string) *proxy {
	t.Helper()
	node, err := translate.ParseNodeID(id)
	require.NoError(t, err)
	conn, err := grpc.NewClient(c.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	events := make(chan xdsclient.Response, 64)
	ctx, cancel := context.WithCancel(context.Background())
	cl, err := xdsclient.Start(ctx, conn, xdsclient.Options{
		Node: xdsclient.Node(id, node.Namespace, labels), KeepResources: true, Events: events,
	})
	require.NoError(t, err)
	p := &proxy{id: id, cl: cl, latest: map[string]xdsclient.Response{}}
	go func() {
		for {
			select {
			case r := <-events:
				p.mu.Lock()
				p.all = append(p.all, r)
				p.latest[r.TypeURL] = r
				p.mu.Unlock()
			case <-cl.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-cl.Done()
		conn.Close()
	})
	return p
}

// responses returns how many responses arrived so far.
func (p *proxy) responses() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.all)
}

// since returns the responses after the first n.
func (p *proxy) since(n int) []xdsclient.Response {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.all[n:])
}

// current is the config the proxy has accepted, once it holds every type
// its config needs and has read every response it ACKed; else nil.
func (p *proxy) current(t *testing.T) *translate.Resources {
	if !p.cl.Synced() {
		return nil
	}
	p.mu.Lock()
	latest := make(map[string]xdsclient.Response, len(p.latest))
	for k, v := range p.latest {
		latest[k] = v
	}
	p.mu.Unlock()
	for _, typ := range xdsclient.Types {
		if acked := p.cl.State(typ).Acked; acked != "" && latest[typ].Version != acked {
			return nil
		}
	}
	res := &translate.Resources{}
	for _, a := range latest[xdsclient.ClusterType].Resources {
		m := &cluster.Cluster{}
		require.NoError(t, a.UnmarshalTo(m))
		res.Clusters = append(res.Clusters, m)
	}
	for _, a := range latest[xdsclient.ListenerType].Resources {
		m := &listener.Listener{}
		require.NoError(t, a.UnmarshalTo(m))
		res.Listeners = append(res.Listeners, m)
	}
	for _, a := range latest[xdsclient.RouteType].Resources {
		m := &route.RouteConfiguration{}
		require.NoError(t, a.UnmarshalTo(m))
		res.Routes = append(res.Routes, m)
	}
	for _, a := range latest[xdsclient.EndpointType].Resources {
		m := &endpoint.ClusterLoadAssignment{}
		require.NoError(t, a.UnmarshalTo(m))
		res.Endpoints = append(res.Endpoints, m)
	}
	return res
}

// waitFor polls until the proxy's accepted config satisfies cond.
func (p *proxy) waitFor(t *testing.T, timeout time.Duration, what string, cond func(*translate.Resources) bool) *translate.Resources {
	t.Helper()
	var res *translate.Resources
	eventually(t, timeout, func() bool {
		res = p.current(t)
		return res != nil && cond(res)
	}, "%s: %s (stream error: %v; last config: %s)", p.id, what, p.cl.Err(), lazy(func() string { return summary(p.current(t)) }))
	return res
}

// synced waits for the proxy's first complete config.
func (p *proxy) synced(t *testing.T, timeout time.Duration) *translate.Resources {
	t.Helper()
	return p.waitFor(t, timeout, "a complete config", func(*translate.Resources) bool { return true })
}

// call runs a simulated call through the proxy's config.
func (p *proxy) call(res *translate.Resources, c sim.Call) sim.Result {
	return sim.Run(res, translate.NodeType(strings.SplitN(p.id, "~", 2)[0]), c)
}

type lazy func() string

func (l lazy) String() string { return l() }

func summary(res *translate.Resources) string {
	if res == nil {
		return "none"
	}
	var ls []string
	for _, l := range res.Listeners {
		ls = append(ls, l.GetName())
	}
	return fmt.Sprintf("clusters %v, listeners %v", clusterNames(res), ls)
}

func clusterNames(res *translate.Resources) []string {
	var out []string
	for _, c := range res.Clusters {
		out = append(out, c.GetName())
	}
	return out
}

func findListener(res *translate.Resources, name string) *listener.Listener {
	for _, l := range res.Listeners {
		if l.GetName() == name {
			return l
		}
	}
	return nil
}

// serverNames are the SNI names of a listener's filter chains.
func serverNames(l *listener.Listener) []string {
	var out []string
	for _, fc := range l.GetFilterChains() {
		out = append(out, fc.GetFilterChainMatch().GetServerNames()...)
	}
	return out
}

// eventually polls cond every 20 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type inputsView = app.InputsView
