package trace_test

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/trace"
	"github.com/chokepoint-xds/chokepoint/translate"
)

const (
	sleepKey = "sidecar|mesh-test|mesh-test.svc.cluster.local|app=sleep"
	gwKey    = "router|istio-system|istio-system.svc.cluster.local|app=istio-egressgateway|istio=egressgateway"
)

func TestGraphSeed(t *testing.T) {
	idx := seedIndex(t, "")
	tr := trace.Run(idx, sleep(t), sim.Call{Protocol: sim.TLS, SNI: "httpbin.org", Port: 443}, trace.Options{})
	g := trace.BuildGraph(idx, sleep(t), trace.Options{}, tr)

	node := func(id string) *trace.GraphNode {
		n := g.Node(id)
		require.NotNil(t, n, "no node %s", id)
		return n
	}
	type want struct {
		id     string
		kind   trace.NodeKind
		onPath bool
		sub    string
	}
	for _, w := range []want{
		{"proxy:" + sleepKey, trace.KindProxy, true, "app=sleep"},
		{sleepKey + "/listener/virtualOutbound", trace.KindListener, true, ""},
		{sleepKey + "/listener/0.0.0.0_443", trace.KindListener, true, ""},
		{sleepKey + "/chain/0.0.0.0_443/sni=httpbin.org", trace.KindChain, true, ""},
		{sleepKey + "/cluster/" + hop1, trace.KindCluster, true, "gateway hop"},
		{"proxy:" + gwKey, trace.KindProxy, true, "app=istio-egressgateway,istio=egressgateway"},
		{gwKey + "/listener/0.0.0.0_8443", trace.KindListener, true, ""},
		{gwKey + "/chain/0.0.0.0_8443/sni=httpbin.org", trace.KindChain, true, ""},
		{gwKey + "/cluster/outbound|443||httpbin.org", trace.KindExternal, true, "→ httpbin.org:443"},
		{gwKey + "/closed/0.0.0.0_8443", trace.KindClosed, false, "connection closed"},
		{sleepKey + "/cluster/BlackHoleCluster", trace.KindBlackhole, false, "reset (curl 000) / 503"},
		{sleepKey + "/response/502", trace.KindResponse, false, "block_all"},
		// The sidecar's HTTP port 80 reaches the gateway's 8080, where no
		// Gateway server listens.
		{gwKey + "/refused/8080", trace.KindClosed, false, "connection refused"},
	} {
		n := node(w.id)
		require.Equal(t, w.kind, n.Kind, w.id)
		require.Equal(t, w.onPath, n.OnPath, w.id)
		if w.sub != "" {
			require.Equal(t, w.sub, n.Sub, w.id)
		}
	}
	require.Contains(t, node(sleepKey+"/chain/0.0.0.0_443/sni=httpbin.org").Detail, "made by VirtualService mesh-test/direct-httpbin-through-egress")
	require.Contains(t, node(gwKey+"/cluster/outbound|443||httpbin.org").Detail, "ServiceEntry mesh-test/httpbin-ext")
	require.Contains(t, node("proxy:"+gwKey).Detail, "Gateway mesh-test/istio-egressgateway")

	onPath := 0
	for _, e := range g.Edges {
		if e.OnPath {
			onPath++
		}
	}
	require.Equal(t, 8, onPath, "proxy→virtualOutbound→443→chain→cluster→gateway→8443→chain→cluster")

	var page strings.Builder
	require.NoError(t, g.HTML(&page, "external httpbin.org:443"))
	html := page.String()
	bare := strings.ReplaceAll(html, `xmlns="http://www.w3.org/2000/svg"`, "")
	for _, s := range []string{"<script", "<link", "http://", "https://", "src="} {
		require.False(t, strings.Contains(bare, s), "the page must need nothing from the network: found %q", s)
	}
	require.Contains(t, html, "<title>filter chain sni=httpbin.org of 0.0.0.0_443\nmade by VirtualService mesh-test/direct-httpbin-through-egress</title>")
	for _, legend := range []string{"blackhole", "passthrough", "leaves the mesh", "direct response", "closed / refused"} {
		require.Contains(t, html, ">"+legend+"</text>")
	}
	// The SVG is well-formed XML.
	start, end := strings.Index(html, "<svg"), strings.Index(html, "</svg>")
	dec := xml.NewDecoder(strings.NewReader(html[start : end+len("</svg>")]))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
}

func TestGraphPassthroughAndWithoutTrace(t *testing.T) {
	sc, idx := loadScenario(t, "allow-any-tls-passthrough")
	p := sc.Proxy(t, "sleep")
	g := trace.BuildGraph(idx, p, trace.Options{}, nil)
	n := g.Node(p.ClassKey() + "/cluster/" + translate.PassthroughCluster)
	require.NotNil(t, n)
	require.Equal(t, trace.KindPassthrough, n.Kind)
	require.Contains(t, n.Detail, "ALLOW_ANY set by mesh config")
	for _, x := range g.Nodes {
		require.False(t, x.OnPath)
	}
	var b strings.Builder
	require.NoError(t, g.SVG(&b))
	require.Contains(t, b.String(), "PassthroughCluster")
}

// A listener whose chain has no match takes every connection: nothing is
// drawn as closed there. The HTTP path runs through route config and
// virtual host to a cluster originating TLS.
func TestGraphHTTPThroughGateway(t *testing.T) {
	sc, idx := loadScenario(t, "tls-origination-egress-gateway")
	p := sc.Proxy(t, "sleep")
	tr := trace.Run(idx, p, sim.Call{Protocol: sim.HTTP, Host: "edition.cnn.com", Path: "/politics", Port: 80}, trace.Options{})
	g := trace.BuildGraph(idx, p, trace.Options{}, tr)
	require.Nil(t, g.Node(gwKey+"/closed/0.0.0.0_8080"))
	for _, id := range []string{
		p.ClassKey() + "/routeconfig/80",
		p.ClassKey() + "/routeconfig/80/edition.cnn.com:80",
		gwKey + "/routeconfig/http.8080",
		gwKey + "/routeconfig/http.8080/edition.cnn.com:80",
		gwKey + "/cluster/outbound|443||edition.cnn.com",
	} {
		n := g.Node(id)
		require.NotNil(t, n, id)
		require.True(t, n.OnPath, id)
	}
	require.Equal(t, "→ edition.cnn.com:443 (TLS origination)", g.Node(gwKey+"/cluster/outbound|443||edition.cnn.com").Sub)
}
