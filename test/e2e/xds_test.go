package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/stretchr/testify/require"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/chokepoint-xds/chokepoint/snapshot"
	"github.com/chokepoint-xds/chokepoint/test/xdsclient"
)

// names decodes resources and returns them by name.
func names(t *testing.T, res []*anypb.Any) map[string]proto.Message {
	t.Helper()
	out := map[string]proto.Message{}
	for _, a := range res {
		m, err := a.UnmarshalNew()
		require.NoError(t, err)
		out[cachev3.GetResourceName(m)] = m
	}
	return out
}

type snapshotRow = snapshot.SyncStatus

func findProxy(rows []snapshotRow, id string) *snapshotRow {
	for i := range rows {
		if rows[i].ProxyID == id {
			return &rows[i]
		}
	}
	return nil
}

func TestSotWSeed(t *testing.T) {
	c := startCP(t)
	conn := c.dial(t)

	sc, sEvents := c.client(t, conn, xdsclient.Options{Node: sidecarNode()})
	got := initial(t, sc, sEvents)
	for _, typ := range xdsclient.Types {
		require.Contains(t, got, typ, "sidecar got no %s", xdsclient.Short(typ))
	}
	clusters := names(t, got[xdsclient.ClusterType].Resources)
	require.Contains(t, clusters, hop1Cluster)
	require.Contains(t, clusters, "outbound|443||httpbin.org")
	require.Contains(t, clusters, "BlackHoleCluster")
	eds := names(t, got[xdsclient.EndpointType].Resources)
	require.Contains(t, eds, hop1Cluster, "EDS answers the EDS cluster's subscription")
	require.Equal(t, sc.State(xdsclient.EndpointType).Names, sortedKeys(eds), "EDS returns exactly the subscribed names")
	listeners := names(t, got[xdsclient.ListenerType].Resources)
	require.Contains(t, listeners, "0.0.0.0_443")
	require.Contains(t, listeners, "virtualOutbound")
	routes := names(t, got[xdsclient.RouteType].Resources)
	require.Contains(t, routes, "80")
	var vhosts []string
	for _, vh := range routes["80"].(*route.RouteConfiguration).GetVirtualHosts() {
		vhosts = append(vhosts, vh.GetName())
	}
	require.Contains(t, vhosts, "block_all", "REGISTRY_ONLY sidecar route config")

	gc, gEvents := c.client(t, conn, xdsclient.Options{Node: gatewayNode()})
	ggot := initial(t, gc, gEvents)
	glisteners := names(t, ggot[xdsclient.ListenerType].Resources)
	require.Contains(t, glisteners, "0.0.0.0_8443", "gateway server 443 binds the Service's targetPort")
	require.Contains(t, names(t, ggot[xdsclient.ClusterType].Resources), "outbound|443||httpbin.org", "hop 2")

	// The server has seen every ACK.
	eventually(t, 3*time.Second, func() bool {
		rows := c.syncz(t)
		s, g := findProxy(rows, "sleep-6d8f.mesh-test"), findProxy(rows, "istio-egressgateway-7c9d.istio-system")
		return len(rows) == 2 && s != nil && g != nil &&
			s.ClusterSent != "" && s.ClusterSent == s.ClusterAcked && s.ListenerSent == s.ListenerAcked &&
			s.RouteSent == s.RouteAcked && s.EndpointSent == s.EndpointAcked && s.RouteAcked != "" &&
			g.ClusterSent == g.ClusterAcked && g.ListenerAcked == ggot[xdsclient.ListenerType].Version
	}, "syncz shows both proxies with everything ACKed: %+v", c.syncz(t))
	rows := c.syncz(t)
	s := findProxy(rows, "sleep-6d8f.mesh-test")
	require.Equal(t, got[xdsclient.ClusterType].Version, s.ClusterAcked)
	require.Equal(t, sidecarID, s.NodeID)
	require.Equal(t, "sidecar", s.ProxyType)
	require.Zero(t, s.NackCount)
}

func sortedKeys(m map[string]proto.Message) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestNack(t *testing.T) {
	c := startCP(t)
	const msg = "Error adding/updating listener(s) 0.0.0.0_443: test rejection"
	var once sync.Once
	nack := func(r *discovery.DiscoveryResponse) string {
		out := ""
		if r.TypeUrl == xdsclient.ListenerType {
			once.Do(func() { out = msg })
		}
		return out
	}
	cl, events := c.client(t, c.dial(t), xdsclient.Options{Node: sidecarNode(), Nack: nack})
	r := next(t, events, xdsclient.ListenerType, 5*time.Second)
	require.Equal(t, msg, r.Nacked)
	require.Empty(t, cl.State(xdsclient.ListenerType).Acked, "nothing accepted yet")

	var row *snapshotRow
	eventually(t, 3*time.Second, func() bool {
		row = findProxy(c.syncz(t), "sleep-6d8f.mesh-test")
		return row != nil && row.Nacks["lds"] != nil
	}, "syncz shows the NACK")
	require.Equal(t, msg, row.Nacks["lds"].Error)
	require.Equal(t, r.Version, row.Nacks["lds"].Version, "the NACK names the rejected version")
	require.Equal(t, r.Nonce, row.Nacks["lds"].Nonce)
	require.Equal(t, 1, row.NackCount)
	require.Empty(t, row.ListenerAcked)
	require.Equal(t, "1", c.metric(t, `chokepoint_xds_rejects_total{type="lds"}`))
	require.Empty(t, c.metric(t, `chokepoint_xds_rejects_total{type="cds"}`))

	// The rejected version is not sent again (Envoy would reject it again,
	// in a loop); the next config change is.
	noMore(t, events, 500*time.Millisecond, xdsclient.ListenerType)
	file := filepath.Join(c.dir, "egress.yaml")
	orig, err := os.ReadFile(file)
	require.NoError(t, err)
	writeFile(t, file, string(orig)+apiExampleSE)
	r2 := next(t, events, xdsclient.ListenerType, 5*time.Second)
	require.NotEqual(t, r.Version, r2.Version)
	require.Empty(t, r2.Nacked)
	eventually(t, 3*time.Second, func() bool {
		row = findProxy(c.syncz(t), "sleep-6d8f.mesh-test")
		return row != nil && row.ListenerAcked == r2.Version
	}, "syncz shows the new LDS version ACKed")
	require.Equal(t, 1, row.NackCount)
}

const apiExampleSE = `
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: api-example
  namespace: mesh-test
spec:
  hosts:
  - api.example.com
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: DNS
  location: MESH_EXTERNAL
`

// noMore asserts that no response of the given types arrives within d.
func noMore(t *testing.T, events <-chan xdsclient.Response, d time.Duration, types ...string) []xdsclient.Response {
	t.Helper()
	rs := collect(events, d)
	for _, r := range rs {
		for _, typ := range types {
			require.NotEqual(t, typ, r.TypeURL, "unexpected %s version %s", xdsclient.Short(typ), r.Version)
		}
	}
	return rs
}

func TestFileEdit(t *testing.T) {
	c := startCP(t)
	cl, events := c.client(t, c.dial(t), xdsclient.Options{Node: sidecarNode()})
	before := initial(t, cl, events)
	file := filepath.Join(c.dir, "egress.yaml")
	orig, err := os.ReadFile(file)
	require.NoError(t, err)

	// A TLS ServiceEntry: a new cluster, and a new SNI filter chain on
	// 0.0.0.0_443. Endpoints and routes stay as they are.
	writeFile(t, file, string(orig)+apiExampleSE)
	cds := next(t, events, xdsclient.ClusterType, 5*time.Second)
	require.NotEqual(t, before[xdsclient.ClusterType].Version, cds.Version)
	require.Contains(t, names(t, cds.Resources), "outbound|443||api.example.com")
	lds := next(t, events, xdsclient.ListenerType, 2*time.Second)
	require.NotEqual(t, before[xdsclient.ListenerType].Version, lds.Version)
	require.Contains(t, fmt.Sprint(lds.Resources), "api.example.com")
	noMore(t, events, 500*time.Millisecond, xdsclient.EndpointType, xdsclient.RouteType, xdsclient.ClusterType, xdsclient.ListenerType)

	// A DestinationRule policy on the hop 2 host only changes that cluster:
	// only CDS is sent again.
	writeFile(t, file, string(orig)+apiExampleSE+`
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: api-example
  namespace: mesh-test
spec:
  host: api.example.com
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 7
`)
	cds2 := next(t, events, xdsclient.ClusterType, 5*time.Second)
	require.NotEqual(t, cds.Version, cds2.Version)
	require.Contains(t, fmt.Sprint(names(t, cds2.Resources)["outbound|443||api.example.com"]), "max_connections:{value:7}")
	noMore(t, events, 500*time.Millisecond, xdsclient.EndpointType, xdsclient.RouteType, xdsclient.ListenerType, xdsclient.ClusterType)
	eventually(t, 2*time.Second, func() bool {
		row := findProxy(c.syncz(t), "sleep-6d8f.mesh-test")
		return row != nil && row.ClusterAcked == cds2.Version
	}, "syncz shows the new CDS version ACKed")
}

func TestBrokenFile(t *testing.T) {
	c := startCP(t)
	cl, events := c.client(t, c.dial(t), xdsclient.Options{Node: sidecarNode()})
	before := initial(t, cl, events)
	file := filepath.Join(c.dir, "egress.yaml")
	orig, err := os.ReadFile(file)
	require.NoError(t, err)
	quiet := holdoff*4 + 1500*time.Millisecond

	problemsFor := func() []string {
		var in inputsView
		c.getJSON(t, "/debug/inputs", &in)
		var out []string
		for _, p := range in.Problems {
			if p.Source.File == file && p.Severity == "Error" {
				out = append(out, p.Object+" "+p.Field+": "+p.Message)
			}
		}
		return out
	}

	// 1. A YAML syntax error.
	writeFile(t, file, string(orig)+apiExampleSE+"\n---\nkind: ServiceEntry\nmetadata: {name: [broken\n")
	eventually(t, 3*time.Second, func() bool { return len(problemsFor()) > 0 }, "/debug/inputs lists the syntax error")
	noMore(t, events, quiet, xdsclient.Types...)
	var in inputsView
	c.getJSON(t, "/debug/inputs", &in)
	require.Contains(t, fmt.Sprint(in.Objects), "httpbin-ext", "the file's last good objects stay in effect")
	require.NotContains(t, fmt.Sprint(in.Objects), "api-example", "nothing of the broken version is applied")

	// 2. Valid YAML, but an invalid object: a ServiceEntry without ports,
	// next to a valid new one. The file is not applied at all.
	writeFile(t, file, string(orig)+apiExampleSE+`
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: no-ports
  namespace: mesh-test
spec:
  hosts: [noports.example.com]
  resolution: DNS
`)
	eventually(t, 3*time.Second, func() bool {
		return strings.Contains(strings.Join(problemsFor(), "\n"), "no-ports")
	}, "/debug/inputs lists the invalid ServiceEntry: %v", problemsFor())
	noMore(t, events, quiet, xdsclient.Types...)
	for _, typ := range []string{xdsclient.ClusterType, xdsclient.ListenerType} {
		require.Equal(t, before[typ].Version, cl.State(typ).Acked)
	}
	c.getJSON(t, "/debug/inputs", &in)
	require.NotContains(t, fmt.Sprint(in.Objects), "api-example")

	// 3. Fixed: the new ServiceEntry is served, without a restart.
	writeFile(t, file, string(orig)+apiExampleSE)
	cds := next(t, events, xdsclient.ClusterType, 5*time.Second)
	require.Contains(t, names(t, cds.Resources), "outbound|443||api.example.com")
	require.Contains(t, names(t, cds.Resources), hop1Cluster)
	eventually(t, 3*time.Second, func() bool { return len(problemsFor()) == 0 }, "the problems are gone: %v", problemsFor())
}

func TestReconnect(t *testing.T) {
	c := startCP(t)
	conn := c.dial(t)
	cl, events := c.client(t, conn, xdsclient.Options{Node: sidecarNode()})
	before := initial(t, cl, events)
	cl.Close()
	eventually(t, 3*time.Second, func() bool { return len(c.syncz(t)) == 0 }, "the closed stream leaves syncz")

	start := time.Now()
	cl2, events2 := c.client(t, conn, xdsclient.Options{Node: sidecarNode()})
	after := initial(t, cl2, events2)
	require.Less(t, time.Since(start), time.Second, "the current config arrives at once")
	for _, typ := range xdsclient.Types {
		require.Equal(t, before[typ].Version, after[typ].Version, xdsclient.Short(typ))
	}

	// Also over a new connection, as after an Envoy restart.
	cl3, events3 := c.client(t, c.dial(t), xdsclient.Options{Node: sidecarNode()})
	require.Equal(t, before[xdsclient.ClusterType].Version, initial(t, cl3, events3)[xdsclient.ClusterType].Version)
}

func TestManyClients(t *testing.T) {
	c := startCP(t)
	type class struct {
		typ, ns string
		labels  map[string]string
	}
	classes := []class{
		{"sidecar", "mesh-test", map[string]string{"app": "sleep"}},
		{"sidecar", "mesh-test", map[string]string{"app": "curl"}},
		{"sidecar", "default", map[string]string{"app": "sleep"}},
		{"sidecar", "other", map[string]string{"app": "web", "version": "v2"}},
		{"router", "istio-system", map[string]string{"app": "istio-egressgateway", "istio": "egressgateway"}},
	}
	const n = 100
	conns := make([]*xdsclientConn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		k := classes[i%len(classes)]
		id := fmt.Sprintf("%s~10.1.%d.%d~pod-%d.%s~%s.svc.cluster.local", k.typ, i/250, i%250, i, k.ns, k.ns)
		conns[i] = &xdsclientConn{id: id}
		conn := c.dial(t)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cl, err := xdsclient.Start(t.Context(), conn, xdsclient.Options{Node: xdsclient.Node(id, k.ns, k.labels)})
			if err != nil {
				errs <- err
				return
			}
			conns[i].cl = cl
			if err := cl.WaitSynced(10 * time.Second); err != nil {
				errs <- fmt.Errorf("%s: %w", id, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, cc := range conns {
		require.NotZero(t, cc.cl.State(xdsclient.ClusterType).Count, cc.id)
		require.NotZero(t, cc.cl.State(xdsclient.ListenerType).Count, cc.id)
	}
	rows := c.classes(t)
	require.Len(t, rows, len(classes), "%+v", rows)
	for _, r := range rows {
		require.Equal(t, n/len(classes), r.Streams, r.Class)
		require.NotEmpty(t, r.Version, r.Class)
	}
	eventually(t, 5*time.Second, func() bool {
		rows := c.syncz(t)
		if len(rows) != n {
			return false
		}
		for _, r := range rows {
			if r.ClusterAcked == "" || r.ClusterAcked != r.ClusterSent || r.ListenerAcked != r.ListenerSent {
				return false
			}
		}
		return true
	}, "syncz lists %d proxies, all ACKed", n)
	require.Equal(t, fmt.Sprint(n), c.metric(t, "chokepoint_xds_connected_proxies"))
}

type xdsclientConn struct {
	id string
	cl *xdsclient.Client
}

func TestDelta(t *testing.T) {
	c := startCP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(c.dial(t)).DeltaAggregatedResources(ctx)
	require.NoError(t, err)
	recv := func() *discovery.DeltaDiscoveryResponse {
		t.Helper()
		ch := make(chan *discovery.DeltaDiscoveryResponse, 1)
		go func() {
			r, err := stream.Recv()
			if err != nil {
				t.Error(err)
			}
			ch <- r
		}()
		select {
		case r := <-ch:
			require.NotNil(t, r)
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("no delta response")
			return nil
		}
	}

	require.NoError(t, stream.Send(&discovery.DeltaDiscoveryRequest{Node: sidecarNode(), TypeUrl: xdsclient.ClusterType,
		ResourceNamesSubscribe: []string{"*"}}))
	cds := recv()
	require.Equal(t, xdsclient.ClusterType, cds.TypeUrl)
	var got []string
	for _, r := range cds.Resources {
		got = append(got, r.Name)
		require.NotEmpty(t, r.Version, r.Name)
	}
	require.Contains(t, got, hop1Cluster)
	require.NoError(t, stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdsclient.ClusterType, ResponseNonce: cds.Nonce}))

	require.NoError(t, stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdsclient.ListenerType, ResourceNamesSubscribe: []string{"*"}}))
	lds := recv()
	require.Equal(t, xdsclient.ListenerType, lds.TypeUrl)
	require.NotEmpty(t, lds.Resources)
	const msg = "delta listener rejected by test"
	require.NoError(t, stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdsclient.ListenerType, ResponseNonce: lds.Nonce,
		ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: msg}}))

	var row *snapshotRow
	eventually(t, 3*time.Second, func() bool {
		row = findProxy(c.syncz(t), "sleep-6d8f.mesh-test")
		return row != nil && row.Nacks["lds"] != nil
	}, "syncz shows the delta NACK")
	require.True(t, row.Delta)
	require.Equal(t, msg, row.Nacks["lds"].Error)
	require.Equal(t, lds.SystemVersionInfo, row.Nacks["lds"].Version)
	require.Equal(t, cds.SystemVersionInfo, row.ClusterSent)
	require.Equal(t, row.ClusterSent, row.ClusterAcked, "the CDS ACK is recorded")
	require.Equal(t, "1", c.metric(t, `chokepoint_xds_rejects_total{type="lds"}`))
}

func TestBadNode(t *testing.T) {
	c := startCP(t)
	conn := c.dial(t)
	for id, want := range map[string]string{
		"envoy-1": "TYPE~IP~POD.NAMESPACE",
		"":        "TYPE~IP~POD.NAMESPACE",
		"gateway~10.0.0.1~gw.ns~ns.svc.cluster.local": "want sidecar or router",
		"sidecar~10.0.0.1~sleep~.svc.cluster.local":   "POD.NAMESPACE",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		require.NoError(t, err)
		require.NoError(t, stream.Send(&discovery.DiscoveryRequest{Node: xdsclient.Node(id, "ns", nil), TypeUrl: xdsclient.ClusterType}))
		_, err = stream.Recv()
		cancel()
		require.Error(t, err, id)
		st, ok := status.FromError(err)
		require.True(t, ok, err)
		require.Equal(t, codes.InvalidArgument, st.Code(), "%q: %v", id, err)
		require.Contains(t, st.Message(), want, "%q: the message says what a node id looks like", id)
	}
	require.Empty(t, c.syncz(t), "rejected streams are not listed")
	require.Empty(t, c.classes(t))
}

func TestPerTypeCDS(t *testing.T) {
	c := startCP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := clusterservice.NewClusterDiscoveryServiceClient(c.dial(t)).StreamClusters(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&discovery.DiscoveryRequest{Node: sidecarNode(), TypeUrl: xdsclient.ClusterType}))
	r, err := stream.Recv()
	require.NoError(t, err)
	require.Contains(t, names(t, r.Resources), hop1Cluster)
	require.NoError(t, stream.Send(&discovery.DiscoveryRequest{TypeUrl: xdsclient.ClusterType, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce}))
	eventually(t, 3*time.Second, func() bool {
		row := findProxy(c.syncz(t), "sleep-6d8f.mesh-test")
		return row != nil && row.ClusterAcked == r.VersionInfo
	}, "syncz shows the per-type stream's ACK")
}

func TestGracefulShutdown(t *testing.T) {
	c := startCP(t)
	cl, events := c.client(t, c.dial(t), xdsclient.Options{Node: sidecarNode()})
	initial(t, cl, events)
	start := time.Now()
	c.cancel()
	select {
	case <-c.stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the context was cancelled")
	}
	require.NoError(t, c.runErr)
	select {
	case <-cl.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the client stream is still open")
	}
	require.Error(t, cl.Err())
	t.Logf("stopped in %s; client stream ended with %v", time.Since(start), cl.Err())
}
