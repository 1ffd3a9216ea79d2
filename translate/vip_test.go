package translate_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

// A Service read from an API server has a clusterIP, so its ports get
// VIP_PORT listeners. A port whose protocol is sniffed (no name prefix, as
// the egress gateway's status-port) needs both an HTTP chain (matched on
// the plaintext HTTP ALPNs the http_inspector sets) and a TCP one; with two
// match-all chains the HTTP one was dropped while its route config was
// still generated, and the sidecar's snapshot was inconsistent.
func TestSniffedPortOnServiceVIP(t *testing.T) {
	in := watch.Parse([]byte(`
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  clusterIP: 10.96.0.60
  selector: {istio: egressgateway}
  ports:
  - {name: status-port, port: 15021, targetPort: 15021}
  - {name: https, port: 443, targetPort: 8443}
`), "svc.yaml")
	require.Empty(t, in.Problems)
	p, err := translate.ParseNodeID("sidecar~10.244.2.7~sleep-6d8f.mesh-test~mesh-test.svc.cluster.local")
	require.NoError(t, err)
	res := translate.NewIndex(in).Translate(p)
	require.NoError(t, res.Validate())
	require.Empty(t, res.Consistency())

	const host = "istio-egressgateway.istio-system.svc.cluster.local"
	got := sim.Run(res, translate.Sidecar, sim.Call{Protocol: sim.HTTP, Host: host, Path: "/healthz/ready", Port: 15021, Address: "10.96.0.60"})
	require.Equal(t, sim.ToCluster, got.Outcome, got.String())
	require.Equal(t, "10.96.0.60_15021", got.Listener, got.String())
	require.Equal(t, host+":15021", got.RouteConfig, got.String())
	require.Equal(t, "outbound|15021||"+host, got.Cluster, got.String())

	got = sim.Run(res, translate.Sidecar, sim.Call{Protocol: sim.TCP, Port: 15021, Address: "10.96.0.60"})
	require.Equal(t, sim.ToCluster, got.Outcome, got.String())
	require.Empty(t, got.RouteConfig, got.String())
	require.Equal(t, "outbound|15021||"+host, got.Cluster, got.String())
}
