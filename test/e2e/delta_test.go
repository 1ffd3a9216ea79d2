package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/test/xdsclient"
)

// deltaStream is a hand-driven Delta ADS stream: every request and
// response is explicit, so the tests see exactly what the server sends.
type deltaStream struct {
	t   *testing.T
	s   discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	got chan *discovery.DeltaDiscoveryResponse
}

func (c *cp) delta(t *testing.T) *deltaStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := discovery.NewAggregatedDiscoveryServiceClient(c.dial(t)).DeltaAggregatedResources(ctx)
	require.NoError(t, err)
	d := &deltaStream{t: t, s: s, got: make(chan *discovery.DeltaDiscoveryResponse, 16)}
	go func() {
		for {
			r, err := s.Recv()
			if err != nil {
				close(d.got)
				return
			}
			d.got <- r
		}
	}()
	return d
}

func (d *deltaStream) send(r *discovery.DeltaDiscoveryRequest) {
	d.t.Helper()
	require.NoError(d.t, d.s.Send(r))
}

// recv returns the next response, which must be of typeURL, and ACKs it.
func (d *deltaStream) recv(typeURL string) *discovery.DeltaDiscoveryResponse {
	d.t.Helper()
	select {
	case r, ok := <-d.got:
		require.True(d.t, ok, "stream ended")
		require.Equal(d.t, xdsclient.Short(typeURL), xdsclient.Short(r.TypeUrl))
		d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce})
		return r
	case <-time.After(5 * time.Second):
		d.t.Fatalf("no %s response", xdsclient.Short(typeURL))
		return nil
	}
}

func (d *deltaStream) none(wait time.Duration) {
	d.t.Helper()
	select {
	case r := <-d.got:
		d.t.Fatalf("unexpected %s response: %d resources, removed %v", xdsclient.Short(r.GetTypeUrl()), len(r.GetResources()), r.GetRemovedResources())
	case <-time.After(wait):
	}
}

func resourceNames(r *discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, res := range r.Resources {
		out = append(out, res.Name)
	}
	sort.Strings(out)
	return out
}

func versionsOf(r *discovery.DeltaDiscoveryResponse) map[string]string {
	out := map[string]string{}
	for _, res := range r.Resources {
		out[res.Name] = res.Version
	}
	return out
}

// TestDeltaIncremental: an edit sends only what changed, a deletion sends
// removed_resources, a reconnect with initial_resource_versions gets only
// what differs, and named subscriptions follow subscribe/unsubscribe.
func TestDeltaIncremental(t *testing.T) {
	c := startCP(t)
	d := c.delta(t)
	d.send(&discovery.DeltaDiscoveryRequest{Node: sidecarNode(), TypeUrl: xdsclient.ClusterType})
	cds := d.recv(xdsclient.ClusterType)
	require.Contains(t, resourceNames(cds), "outbound|443||httpbin.org")
	require.Contains(t, resourceNames(cds), hop1Cluster)
	require.Empty(t, cds.RemovedResources)
	have := versionsOf(cds)

	// EDS by name, as Envoy subscribes to its EDS clusters.
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdsclient.EndpointType, ResourceNamesSubscribe: []string{hop1Cluster}})
	eds := d.recv(xdsclient.EndpointType)
	require.Equal(t, []string{hop1Cluster}, resourceNames(eds))
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdsclient.ListenerType, ResourceNamesSubscribe: []string{"*"}})
	lds := d.recv(xdsclient.ListenerType)
	require.Contains(t, resourceNames(lds), "0.0.0.0_443")
	d.none(300 * time.Millisecond) // ACKs get no answer

	// One new ServiceEntry: the new cluster alone, and the changed 443
	// listener alone; no EDS.
	file := filepath.Join(c.dir, "egress.yaml")
	orig, err := os.ReadFile(file)
	require.NoError(t, err)
	writeFile(t, file, string(orig)+apiExampleSE)
	cds2 := d.recv(xdsclient.ClusterType)
	require.Equal(t, []string{"outbound|443||api.example.com"}, resourceNames(cds2))
	require.Empty(t, cds2.RemovedResources)
	require.NotEqual(t, cds.SystemVersionInfo, cds2.SystemVersionInfo)
	lds2 := d.recv(xdsclient.ListenerType)
	require.Equal(t, []string{"0.0.0.0_443"}, resourceNames(lds2))
	d.none(500 * time.Millisecond)
	for n, v := range versionsOf(cds2) {
		have[n] = v
	}

	// Deleting it again: removed_resources only.
	writeFile(t, file, string(orig))
	cds3 := d.recv(xdsclient.ClusterType)
	require.Empty(t, cds3.Resources)
	require.Equal(t, []string{"outbound|443||api.example.com"}, cds3.RemovedResources)
	d.recv(xdsclient.ListenerType)
	d.none(300 * time.Millisecond)
	delete(have, "outbound|443||api.example.com")

	// Unsubscribing the EDS name and subscribing it again sends it again.
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdsclient.EndpointType, ResourceNamesUnsubscribe: []string{hop1Cluster}})
	d.none(300 * time.Millisecond)
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: xdsclient.EndpointType, ResourceNamesSubscribe: []string{hop1Cluster}})
	require.Equal(t, []string{hop1Cluster}, resourceNames(d.recv(xdsclient.EndpointType)))

	// A reconnecting proxy that holds every cluster but one at the current
	// version, one at a stale version and one the server no longer has.
	stale := "BlackHoleCluster"
	initial := map[string]string{}
	for n, v := range have {
		initial[n] = v
	}
	initial[stale] = "stale"
	initial["outbound|443||gone.example.com"] = "1"
	d2 := c.delta(t)
	d2.send(&discovery.DeltaDiscoveryRequest{Node: sidecarNode(), TypeUrl: xdsclient.ClusterType, InitialResourceVersions: initial})
	re := d2.recv(xdsclient.ClusterType)
	require.Equal(t, []string{stale}, resourceNames(re))
	require.Equal(t, []string{"outbound|443||gone.example.com"}, re.RemovedResources)

	// A reconnect holding exactly the current clusters still gets a
	// (empty) first response, so it finishes initialising.
	d3 := c.delta(t)
	current := map[string]string{}
	for n, v := range have {
		current[n] = v
	}
	current[stale] = versionsOf(re)[stale]
	d3.send(&discovery.DeltaDiscoveryRequest{Node: sidecarNode(), TypeUrl: xdsclient.ClusterType, InitialResourceVersions: current})
	empty := d3.recv(xdsclient.ClusterType)
	require.Empty(t, empty.Resources)
	require.Empty(t, empty.RemovedResources)
}

// TestDeltaAndSotWTogether: SotW and Delta streams of one proxy class are
// told apart in the records (their stream IDs never collide) and both get
// pushes.
func TestDeltaAndSotWTogether(t *testing.T) {
	c := startCP(t)
	sc, events := c.client(t, c.dial(t), xdsclient.Options{Node: sidecarNode()})
	initial(t, sc, events)
	d := c.delta(t)
	d.send(&discovery.DeltaDiscoveryRequest{Node: sidecarNode(), TypeUrl: xdsclient.ClusterType})
	d.recv(xdsclient.ClusterType)
	eventually(t, 3*time.Second, func() bool {
		n, delta := 0, 0
		for _, r := range c.syncz(t) {
			if r.ProxyID == "sleep-6d8f.mesh-test" {
				n++
				if r.Delta {
					delta++
				}
			}
		}
		return n == 2 && delta == 1
	}, "syncz lists the SotW and the Delta stream: %+v", c.syncz(t))

	file := filepath.Join(c.dir, "egress.yaml")
	orig, err := os.ReadFile(file)
	require.NoError(t, err)
	writeFile(t, file, string(orig)+apiExampleSE)
	require.Equal(t, []string{"outbound|443||api.example.com"}, resourceNames(d.recv(xdsclient.ClusterType)))
	require.Contains(t, names(t, next(t, events, xdsclient.ClusterType, 5*time.Second).Resources), "outbound|443||api.example.com")
}
