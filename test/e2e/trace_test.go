package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/test/xdsclient"
	"github.com/chokepoint-xds/chokepoint/trace"
)

func (c *cp) get(t *testing.T, path string) (int, string, string) {
	t.Helper()
	resp, err := http.Get("http://" + c.AdminAddr() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// /debug/trace and /debug/graph answer for connected proxies, from the
// config each was served.
func TestDebugTraceAndGraph(t *testing.T) {
	c := startCP(t)
	conn := c.dial(t)
	sc, sEvents := c.client(t, conn, xdsclient.Options{Node: sidecarNode()})
	initial(t, sc, sEvents)

	code, ctype, body := c.get(t, "/debug/trace?proxyID=sleep-6d8f.mesh-test&sni=httpbin.org&port=443")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "application/json", ctype)
	var tr trace.Trace
	require.NoError(t, json.Unmarshal([]byte(body), &tr))
	require.Len(t, tr.Hops, 2)
	require.Equal(t, sidecarID, tr.Hops[0].Proxy.Node, "the connected proxy's own identity")
	require.Equal(t, hop1Cluster, tr.Hops[0].Cluster)
	require.Equal(t, uint32(8443), tr.Hops[1].Call.Port)
	require.Equal(t, trace.External, tr.Outcome.Kind)
	require.Equal(t, "httpbin.org:443", tr.Outcome.Destination)

	code, _, body = c.get(t, "/debug/trace?proxyID=sleep-6d8f.mesh-test&sni=example.com&port=443&o=text")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "outcome: blackhole")
	code, _, body = c.get(t, "/debug/trace?proxyID=sleep-6d8f.mesh-test&host=example.com&port=80&o=mermaid")
	require.Equal(t, http.StatusOK, code, body)
	require.True(t, strings.HasPrefix(body, "flowchart LR\n"))
	require.Contains(t, body, "direct_response 502")

	// The gateway connects too: the trace's second hop is its class.
	gc, gEvents := c.client(t, conn, xdsclient.Options{Node: gatewayNode()})
	initial(t, gc, gEvents)
	code, _, body = c.get(t, "/debug/trace?proxyID=istio-egressgateway-7c9d.istio-system&sni=httpbin.org&port=8443")
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &tr))
	require.Len(t, tr.Hops, 1)
	require.Equal(t, "10.244.1.20", tr.Hops[0].Call.Address)
	require.Equal(t, trace.External, tr.Outcome.Kind)

	for _, bad := range []struct {
		path string
		code int
	}{
		{"/debug/trace?sni=httpbin.org&port=443", http.StatusBadRequest},
		{"/debug/trace?proxyID=nobody.nowhere&sni=httpbin.org&port=443", http.StatusNotFound},
		{"/debug/trace?proxyID=sleep-6d8f.mesh-test&sni=httpbin.org", http.StatusBadRequest},
		{"/debug/trace?proxyID=sleep-6d8f.mesh-test&sni=httpbin.org&port=x", http.StatusBadRequest},
		{"/debug/trace?proxyID=sleep-6d8f.mesh-test&sni=httpbin.org&port=443&o=xml", http.StatusBadRequest},
		{"/debug/graph", http.StatusBadRequest},
		{"/debug/graph?proxyID=nobody.nowhere", http.StatusNotFound},
		{"/debug/graph?proxyID=sleep-6d8f.mesh-test&sni=httpbin.org", http.StatusBadRequest},
	} {
		code, _, body := c.get(t, bad.path)
		require.Equal(t, bad.code, code, "%s: %s", bad.path, body)
	}

	code, ctype, body = c.get(t, "/debug/graph?proxyID=sleep-6d8f.mesh-test")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "text/html; charset=utf-8", ctype)
	require.Contains(t, body, "<svg")
	require.Contains(t, body, "listener 0.0.0.0_8443", "the picture goes on through the gateway hop")
	require.Contains(t, body, "→ httpbin.org:443")
	require.Contains(t, body, "BlackHoleCluster")
	require.Contains(t, body, "made by VirtualService mesh-test/direct-httpbin-through-egress")
	require.NotContains(t, body, "<script")
	require.NotContains(t, body, `stroke="#c2185b"`, "no path marked without a call")

	code, _, body = c.get(t, "/debug/graph?proxyID=sleep-6d8f.mesh-test&sni=httpbin.org&port=443")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `stroke="#c2185b"`, "the call's path is marked")
	require.Contains(t, body, "external httpbin.org:443")
}
