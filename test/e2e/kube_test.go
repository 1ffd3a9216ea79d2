package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/chokepoint-xds/chokepoint/internal/app"
	"github.com/chokepoint-xds/chokepoint/test/kubefake"
	"github.com/chokepoint-xds/chokepoint/test/xdsclient"
)

// startKubeCP runs a control plane reading the fake API server (and the
// files, if any); it stops when the test ends.
func startKubeCP(t *testing.T, kc *kubefake.Clients, files ...string) *cp {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, app.Options{Files: files, Kube: true, KubeClient: kc.Kube, IstioClient: kc.IstioClient(),
		XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0",
		Holdoff: holdoff, MaxHoldoff: 4 * holdoff, Drain: 2 * time.Second})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &cp{App: a, cancel: cancel, stopped: make(chan struct{})}
	go func() { c.runErr = a.Run(ctx); close(c.stopped) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.stopped:
		case <-time.After(10 * time.Second):
			t.Error("control plane did not stop")
		}
	})
	return c
}

func kubeObjects(t *testing.T, extra ...runtime.Object) []runtime.Object {
	t.Helper()
	objs, err := kubefake.Objects(kubefake.Egress)
	require.NoError(t, err)
	return append(objs, extra...)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestKubeServe: serve --kube against a (fake) API server: nothing is
// served and /readyz fails until every informer has synced; then a sidecar
// gets the seed's two hops, and deleting a ServiceEntry in the cluster
// takes its cluster away.
func TestKubeServe(t *testing.T) {
	kc := kubefake.New(kubeObjects(t, kubefake.MeshConfigMap("accessLogFile: /dev/stdout\n"))...)
	var refuse atomic.Bool
	refuse.Store(true)
	kc.Istio.PrependReactor("list", "virtualservices", func(k8stesting.Action) (bool, runtime.Object, error) {
		if refuse.Load() {
			return true, nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
		}
		return false, nil, nil
	})
	c := startKubeCP(t, kc)
	cl, events := c.client(t, c.dial(t), xdsclient.Options{Node: sidecarNode()})

	// Not synced: not ready, no config, /debug/inputs says what it waits for.
	require.Empty(t, collect(events, 300*time.Millisecond), "no config before the informers synced")
	code, body := get(t, "http://"+c.AdminAddr()+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	code, body = get(t, "http://"+c.AdminAddr()+"/debug/inputs")
	require.Equal(t, http.StatusServiceUnavailable, code)
	var waiting inputsView
	require.NoError(t, json.Unmarshal([]byte(body), &waiting), body)
	states := map[string]string{}
	for _, k := range waiting.Kubernetes {
		states[k.Resource] = k.State
	}
	require.Equal(t, "syncing", states["networking.istio.io/v1/virtualservices"])
	require.Equal(t, "synced", states["networking.istio.io/v1/serviceentries"])

	refuse.Store(false)
	got := initial(t, cl, events)
	clusters := names(t, got[xdsclient.ClusterType].Resources)
	require.Contains(t, clusters, hop1Cluster)
	require.Contains(t, clusters, "outbound|443||httpbin.org")
	require.Contains(t, clusters, "BlackHoleCluster")
	require.Equal(t, "ok\n", c.getBody(t, "/readyz"))

	var view inputsView
	c.getJSON(t, "/debug/inputs", &view)
	require.Len(t, view.Objects, 9)
	for _, o := range view.Objects {
		require.NotEmpty(t, o.Source.Kube, "%s %s/%s", o.Kind, o.Namespace, o.Name)
	}
	require.NotEmpty(t, view.MeshSource.Kube)
	require.Len(t, view.Kubernetes, 9)
	require.Contains(t, c.getBody(t, "/metrics"), `chokepoint_kube_resource_state{namespace="all",resource="networking.istio.io/v1/serviceentries",state="synced"} 1`)

	require.NoError(t, kc.Istio.NetworkingV1().ServiceEntries("mesh-test").Delete(context.Background(), "httpbin-ext", metav1.DeleteOptions{}))
	cds := next(t, events, xdsclient.ClusterType, 5*time.Second)
	require.NotContains(t, names(t, cds.Resources), "outbound|443||httpbin.org")
	require.Contains(t, names(t, cds.Resources), hop1Cluster)
	require.Contains(t, c.getBody(t, "/metrics"), `chokepoint_kube_events_total{event="delete",kind="ServiceEntry"} 1`)
}

// TestKubeServeOutage: when the API server goes away the proxies keep
// their config (nothing is pushed); when it is back, changes flow again.
func TestKubeServeOutage(t *testing.T) {
	kc := kubefake.New(kubeObjects(t)...)
	c := startKubeCP(t, kc)
	cl, events := c.client(t, c.dial(t), xdsclient.Options{Node: sidecarNode()})
	before := initial(t, cl, events)

	kc.SetMode(kubefake.Down)
	require.Empty(t, collect(events, time.Second), "nothing pushed during the outage")
	require.Equal(t, "ok\n", c.getBody(t, "/readyz"), "still ready: the last config is served")

	kc.SetMode(kubefake.Up)
	se, err := kc.Istio.NetworkingV1().ServiceEntries("mesh-test").Get(context.Background(), "httpbin-ext", metav1.GetOptions{})
	require.NoError(t, err)
	se.Spec.Hosts = append(se.Spec.Hosts, "api.example.com")
	_, err = kc.Istio.NetworkingV1().ServiceEntries("mesh-test").Update(context.Background(), se, metav1.UpdateOptions{})
	require.NoError(t, err)
	cds := next(t, events, xdsclient.ClusterType, 10*time.Second)
	require.NotEqual(t, before[xdsclient.ClusterType].Version, cds.Version)
	clusters := names(t, cds.Resources)
	require.Contains(t, clusters, "outbound|443||api.example.com")
	require.Contains(t, clusters, "outbound|443||httpbin.org")
	require.Contains(t, clusters, hop1Cluster)
}

// TestKubeAndFiles: -f and --kube together: both sources' objects are
// served, a file's object wins over the cluster's of the same name, and
// the cluster's istio ConfigMap is the mesh config when no --mesh is given.
func TestKubeAndFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "local.yaml"), []byte(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: mesh-test}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin-ext, namespace: mesh-test}
spec:
  hosts: [httpbin.org, www.httpbin.org]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`), 0o644))
	kc := kubefake.New(kubeObjects(t, kubefake.MeshConfigMap("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"))...)
	require.NoError(t, kc.Istio.NetworkingV1().Sidecars("mesh-test").Delete(context.Background(), "default", metav1.DeleteOptions{}))
	c := startKubeCP(t, kc, dir)
	cl, events := c.client(t, c.dial(t), xdsclient.Options{Node: sidecarNode()})
	got := initial(t, cl, events)
	clusters := names(t, got[xdsclient.ClusterType].Resources)
	require.Contains(t, clusters, "outbound|443||api.example.com", "from the file")
	require.Contains(t, clusters, "outbound|443||www.httpbin.org", "the file's version of httpbin-ext")
	require.Contains(t, clusters, hop1Cluster, "from the cluster")

	var view inputsView
	c.getJSON(t, "/debug/inputs", &view)
	require.Equal(t, "REGISTRY_ONLY", view.Policy, "the cluster's ConfigMap")
	require.NotEmpty(t, view.MeshSource.Kube)
	sources := map[string]string{}
	for _, o := range view.Objects {
		if o.Kind == "ServiceEntry" {
			sources[o.Name] = o.Source.File + o.Source.Kube
		}
	}
	require.Len(t, sources, 2)
	require.Equal(t, filepath.Join(dir, "local.yaml"), sources["api"])
	require.Equal(t, filepath.Join(dir, "local.yaml"), sources["httpbin-ext"])
	var dup []string
	for _, p := range view.Problems {
		if p.Object == "ServiceEntry mesh-test/httpbin-ext" {
			dup = append(dup, string(p.Severity)+": "+p.Message)
		}
	}
	require.Len(t, dup, 1)
	require.Contains(t, dup[0], "Warning: also defined in "+filepath.Join(dir, "local.yaml"))
}
