package sim

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"

	"github.com/chokepoint-xds/chokepoint/translate"
)

// Protocol of a simulated call.
type Protocol string

const (
	TLS  Protocol = "tls"  // a TLS ClientHello, routed on SNI
	HTTP Protocol = "http" // a plain-text HTTP/1.1 request
	TCP  Protocol = "tcp"  // opaque bytes
)

// Call is one connection (and, for HTTP, one request).
type Call struct {
	Protocol Protocol `json:"protocol"`
	// SNI of the ClientHello (TLS).
	SNI string `json:"sni,omitempty"`
	// Host header and path (HTTP; also the request inside a terminated TLS
	// connection, where Host defaults to the SNI).
	Host    string            `json:"host,omitempty"`
	Path    string            `json:"path,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// Port and Address are the original destination (sidecars) or the port
	// the connection arrives on (gateways). Address defaults to an address no
	// listener binds, as for a name resolved by public DNS.
	Port    uint32 `json:"port"`
	Address string `json:"address,omitempty"`
}

// DefaultAddress is the destination IP used when a call names none.
const DefaultAddress = "203.0.113.10"

// Outcome is how a call ends.
type Outcome string

const (
	// ToCluster: handed to an upstream cluster (see Result.Cluster).
	ToCluster Outcome = "cluster"
	// Blackhole: sent to BlackHoleCluster: the connection is reset (curl 000)
	// or, for HTTP, answered 503.
	Blackhole Outcome = "blackhole"
	// Passthrough: sent to PassthroughCluster, the original destination.
	Passthrough Outcome = "passthrough"
	// DirectResponse: answered by Envoy itself (block_all's 502, a redirect).
	DirectResponse Outcome = "direct_response"
	// NoFilterChain: no filter chain matched: the connection is closed.
	NoFilterChain Outcome = "no_filter_chain"
	// NoRoute: no virtual host or route matched: 404.
	NoRoute Outcome = "no_route"
	// NoListener: nothing listens on the port: connection refused.
	NoListener Outcome = "no_listener"
	// Redirect: an HTTP redirect (including require_tls).
	Redirect Outcome = "redirect"
)

// Result is the path a call took through one proxy's config.
type Result struct {
	Outcome     Outcome `json:"outcome"`
	Listener    string  `json:"listener,omitempty"`
	FilterChain string  `json:"filterChain,omitempty"`
	RouteConfig string  `json:"routeConfig,omitempty"`
	VirtualHost string  `json:"virtualHost,omitempty"`
	Route       string  `json:"route,omitempty"`
	Cluster     string  `json:"cluster,omitempty"`
	// WeightedClusters lists every cluster of a weighted split (Cluster is
	// the heaviest).
	WeightedClusters []string `json:"weightedClusters,omitempty"`
	Status           uint32   `json:"status,omitempty"`
	RedirectTo       string   `json:"redirectTo,omitempty"`
	// Sources are the Istio objects (istio.config metadata) that made the
	// matched chain and route.
	Sources []string `json:"sources,omitempty"`
}

func (r Result) String() string {
	switch r.Outcome {
	case ToCluster, Blackhole, Passthrough:
		return fmt.Sprintf("%s via %s/%s%s", r.Cluster, r.Listener, r.FilterChain, r.routePart())
	case DirectResponse:
		return fmt.Sprintf("direct response %d via %s%s", r.Status, r.Listener, r.routePart())
	}
	return fmt.Sprintf("%s (listener %q chain %q%s)", r.Outcome, r.Listener, r.FilterChain, r.routePart())
}

func (r Result) routePart() string {
	if r.RouteConfig == "" {
		return ""
	}
	return fmt.Sprintf(" route %s/%s/%s", r.RouteConfig, r.VirtualHost, r.Route)
}

// Run simulates call on the resources of one proxy of type t.
func Run(res *translate.Resources, t translate.NodeType, call Call) Result {
	if call.Address == "" {
		call.Address = DefaultAddress
	}
	l := pickListener(res, t, call)
	if l == nil {
		return Result{Outcome: NoListener}
	}
	out := Result{Listener: l.Name}
	fc := matchChain(l, call)
	if fc == nil {
		out.Outcome = NoFilterChain
		return out
	}
	out.FilterChain = chainLabel(l, fc)
	out.Sources = appendSource(out.Sources, fc.Metadata)
	for _, f := range fc.Filters {
		msg, err := f.GetTypedConfig().UnmarshalNew()
		if err != nil {
			continue
		}
		switch x := msg.(type) {
		case *tcp.TcpProxy:
			setCluster(&out, x.GetCluster(), x.GetWeightedClusters().GetClusters())
			return out
		case *hcm.HttpConnectionManager:
			runHTTP(res, x, fc, call, &out)
			return out
		}
	}
	out.Outcome = NoFilterChain
	return out
}

func setCluster(out *Result, single string, weighted []*tcp.TcpProxy_WeightedCluster_ClusterWeight) {
	if single == "" && len(weighted) > 0 {
		best := weighted[0]
		for _, w := range weighted {
			out.WeightedClusters = append(out.WeightedClusters, w.Name)
			if w.Weight > best.Weight {
				best = w
			}
		}
		single = best.Name
	}
	out.Cluster = single
	out.Outcome = clusterOutcome(single)
}

func clusterOutcome(c string) Outcome {
	switch c {
	case translate.BlackHoleCluster:
		return Blackhole
	case translate.PassthroughCluster:
		return Passthrough
	}
	return ToCluster
}

func appendSource(s []string, md *core.Metadata) []string {
	if v := md.GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue(); v != "" {
		return append(s, v)
	}
	return s
}

// pickListener finds the listener a connection lands on. A sidecar's
// traffic is redirected to virtualOutbound, which hands it to the listener
// for its original destination (IP:port, then 0.0.0.0:port) or keeps it.
func pickListener(res *translate.Resources, t translate.NodeType, call Call) *listener.Listener {
	var exact, wildcard, virtual *listener.Listener
	for _, l := range res.Listeners {
		sa := l.GetAddress().GetSocketAddress()
		if l.GetUseOriginalDst().GetValue() {
			virtual = l
			continue
		}
		if sa.GetPortValue() != call.Port {
			continue
		}
		bound := l.BindToPort == nil || l.BindToPort.Value
		if t == translate.Sidecar && bound {
			continue
		}
		switch sa.GetAddress() {
		case call.Address:
			exact = l
		case "0.0.0.0", "::":
			wildcard = l
		}
	}
	switch {
	case exact != nil:
		return exact
	case wildcard != nil:
		return wildcard
	case t == translate.Sidecar:
		return virtual
	}
	return nil
}

func hasListenerFilter(l *listener.Listener, name string) bool {
	for _, f := range l.ListenerFilters {
		if f.Name == name {
			return true
		}
	}
	return false
}

// matchChain follows Envoy's filter chain match order: destination port,
// destination IP (longest prefix), server name (exact, then longest
// wildcard), transport protocol, application protocol; then the default
// chain.
func matchChain(l *listener.Listener, call Call) *listener.FilterChain {
	sni, transport, alpn := "", "raw_buffer", ""
	if call.Protocol == TLS {
		transport = "tls"
	}
	if hasListenerFilter(l, wellknown.TlsInspector) && call.Protocol == TLS {
		sni = call.SNI
	}
	if call.Protocol == HTTP && hasListenerFilter(l, wellknown.HttpInspector) {
		alpn = "http/1.1"
	}
	cands := l.FilterChains
	// destination port
	cands = narrow(cands, func(fc *listener.FilterChain) (bool, int) {
		p := fc.GetFilterChainMatch().GetDestinationPort()
		if p == nil {
			return true, 0
		}
		return p.Value == call.Port, 1
	})
	// destination IP
	ip, _ := netip.ParseAddr(call.Address)
	cands = narrow(cands, func(fc *listener.FilterChain) (bool, int) {
		ranges := fc.GetFilterChainMatch().GetPrefixRanges()
		if len(ranges) == 0 {
			return true, 0
		}
		best := -1
		for _, r := range ranges {
			pfx, err := netip.ParsePrefix(fmt.Sprintf("%s/%d", r.AddressPrefix, r.GetPrefixLen().GetValue()))
			if err == nil && pfx.Contains(ip) && pfx.Bits() > best {
				best = pfx.Bits()
			}
		}
		return best >= 0, best + 1
	})
	// server names
	cands = narrow(cands, func(fc *listener.FilterChain) (bool, int) {
		names := fc.GetFilterChainMatch().GetServerNames()
		if len(names) == 0 {
			return true, 0
		}
		best := -1
		for _, n := range names {
			switch {
			case n == sni && sni != "":
				best = max(best, 1<<20)
			case strings.HasPrefix(n, "*.") && sni != "" && strings.HasSuffix(sni, n[1:]):
				best = max(best, len(n))
			}
		}
		return best >= 0, best + 1
	})
	// transport protocol
	cands = narrow(cands, func(fc *listener.FilterChain) (bool, int) {
		tp := fc.GetFilterChainMatch().GetTransportProtocol()
		if tp == "" {
			return true, 0
		}
		return tp == transport, 1
	})
	// application protocols
	cands = narrow(cands, func(fc *listener.FilterChain) (bool, int) {
		ap := fc.GetFilterChainMatch().GetApplicationProtocols()
		if len(ap) == 0 {
			return true, 0
		}
		for _, a := range ap {
			if a == alpn && alpn != "" {
				return true, 1
			}
		}
		return false, 0
	})
	if len(cands) > 0 {
		return cands[0]
	}
	return l.DefaultFilterChain
}

// narrow keeps the candidates that match with the highest specificity.
func narrow(cands []*listener.FilterChain, f func(*listener.FilterChain) (bool, int)) []*listener.FilterChain {
	best := -1
	var out []*listener.FilterChain
	for _, fc := range cands {
		ok, spec := f(fc)
		if !ok {
			continue
		}
		switch {
		case spec > best:
			best, out = spec, []*listener.FilterChain{fc}
		case spec == best:
			out = append(out, fc)
		}
	}
	return out
}

// ChainLabel names a filter chain as Result.FilterChain does: its name, or
// its match ("sni=httpbin.org"), or its position.
func ChainLabel(l *listener.Listener, fc *listener.FilterChain) string { return chainLabel(l, fc) }

func chainLabel(l *listener.Listener, fc *listener.FilterChain) string {
	if fc.Name != "" {
		return fc.Name
	}
	m := fc.GetFilterChainMatch()
	var parts []string
	if len(m.GetServerNames()) > 0 {
		parts = append(parts, "sni="+strings.Join(m.GetServerNames(), ","))
	}
	for _, r := range m.GetPrefixRanges() {
		parts = append(parts, fmt.Sprintf("ip=%s/%d", r.AddressPrefix, r.GetPrefixLen().GetValue()))
	}
	if len(m.GetApplicationProtocols()) > 0 {
		parts = append(parts, "alpn="+strings.Join(m.GetApplicationProtocols(), ","))
	}
	if m.GetTransportProtocol() != "" {
		parts = append(parts, "transport="+m.GetTransportProtocol())
	}
	if len(parts) == 0 {
		for i, c := range l.FilterChains {
			if c == fc {
				return fmt.Sprintf("#%d", i)
			}
		}
		return "default"
	}
	return strings.Join(parts, " ")
}

func runHTTP(res *translate.Resources, m *hcm.HttpConnectionManager, fc *listener.FilterChain, call Call, out *Result) {
	rcName := m.GetRds().GetRouteConfigName()
	out.RouteConfig = rcName
	var rc *route.RouteConfiguration
	if inline := m.GetRouteConfig(); inline != nil {
		rc = inline
	}
	for _, r := range res.Routes {
		if r.Name == rcName {
			rc = r
		}
	}
	if rc == nil {
		out.Outcome = NoRoute
		return
	}
	host := call.Host
	if host == "" {
		host = call.SNI
	}
	if i := strings.LastIndex(host, ":"); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i] // ignore_port_in_host_matching
	}
	vh := matchVirtualHost(rc.VirtualHosts, strings.ToLower(host))
	if vh == nil {
		out.Outcome = NoRoute
		return
	}
	out.VirtualHost = vh.Name
	secure := fc.TransportSocket != nil
	if vh.RequireTls == route.VirtualHost_ALL && !secure {
		out.Outcome, out.Status, out.RedirectTo = Redirect, 301, "https://"+host+call.Path
		return
	}
	path := call.Path
	if path == "" {
		path = "/"
	}
	for _, r := range vh.Routes {
		if !routeMatches(r.Match, path, call.Headers, host) {
			continue
		}
		out.Route = r.Name
		out.Sources = appendSource(out.Sources, r.Metadata)
		switch a := r.Action.(type) {
		case *route.Route_Route:
			var ws []*tcp.TcpProxy_WeightedCluster_ClusterWeight
			for _, w := range a.Route.GetWeightedClusters().GetClusters() {
				ws = append(ws, &tcp.TcpProxy_WeightedCluster_ClusterWeight{Name: w.Name, Weight: w.GetWeight().GetValue()})
			}
			setCluster(out, a.Route.GetCluster(), ws)
		case *route.Route_DirectResponse:
			out.Outcome, out.Status = DirectResponse, a.DirectResponse.Status
		case *route.Route_Redirect:
			out.Outcome, out.Status = Redirect, RedirectStatus(a.Redirect)
			out.RedirectTo = a.Redirect.GetHostRedirect() + a.Redirect.GetPathRedirect()
		default:
			out.Outcome = NoRoute
		}
		return
	}
	out.Outcome = NoRoute
}

// RedirectStatus is the HTTP status Envoy answers a redirect with.
func RedirectStatus(r *route.RedirectAction) uint32 {
	switch r.ResponseCode {
	case route.RedirectAction_FOUND:
		return 302
	case route.RedirectAction_SEE_OTHER:
		return 303
	case route.RedirectAction_TEMPORARY_REDIRECT:
		return 307
	case route.RedirectAction_PERMANENT_REDIRECT:
		return 308
	}
	return 301
}

// matchVirtualHost follows Envoy's domain search order: exact, longest
// suffix wildcard, longest prefix wildcard, then "*".
func matchVirtualHost(vhs []*route.VirtualHost, host string) *route.VirtualHost {
	type cand struct {
		vh    *route.VirtualHost
		class int // 3 exact, 2 suffix, 1 prefix, 0 any
		n     int
	}
	var all []cand
	for _, vh := range vhs {
		for _, d := range vh.Domains {
			d = strings.ToLower(d)
			switch {
			case d == host:
				all = append(all, cand{vh, 3, len(d)})
			case d == "*":
				all = append(all, cand{vh, 0, 0})
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(host) > len(d)-1:
				all = append(all, cand{vh, 2, len(d)})
			case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]) && len(host) > len(d)-1:
				all = append(all, cand{vh, 1, len(d)})
			}
		}
	}
	if len(all) == 0 {
		return nil
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].class != all[j].class {
			return all[i].class > all[j].class
		}
		return all[i].n > all[j].n
	})
	return all[0].vh
}

func routeMatches(m *route.RouteMatch, path string, headers map[string]string, host string) bool {
	if m == nil {
		return false
	}
	p := path
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	cs := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	cmp := func(a string) string {
		if !cs {
			return strings.ToLower(a)
		}
		return a
	}
	switch s := m.PathSpecifier.(type) {
	case *route.RouteMatch_Prefix:
		if !strings.HasPrefix(cmp(p), cmp(s.Prefix)) {
			return false
		}
	case *route.RouteMatch_Path:
		if cmp(p) != cmp(s.Path) {
			return false
		}
	case *route.RouteMatch_SafeRegex:
		re, err := regexp.Compile("^(?:" + s.SafeRegex.Regex + ")$")
		if err != nil || !re.MatchString(p) {
			return false
		}
	case *route.RouteMatch_PathSeparatedPrefix:
		if p != s.PathSeparatedPrefix && !strings.HasPrefix(p, s.PathSeparatedPrefix+"/") {
			return false
		}
	}
	for _, h := range m.Headers {
		v, present := headerValue(h.Name, headers, host)
		if headerMatches(h, v, present) == h.InvertMatch {
			return false
		}
	}
	return true
}

func headerValue(name string, headers map[string]string, host string) (string, bool) {
	switch strings.ToLower(name) {
	case ":authority", "host":
		return host, true
	case ":method":
		if v, ok := headers[":method"]; ok {
			return v, true
		}
		return "GET", true
	}
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

func headerMatches(h *route.HeaderMatcher, v string, present bool) bool {
	switch s := h.HeaderMatchSpecifier.(type) {
	case *route.HeaderMatcher_PresentMatch:
		return present == s.PresentMatch
	case *route.HeaderMatcher_StringMatch:
		return present && stringMatches(s.StringMatch, v)
	}
	return present
}

func stringMatches(m *matcher.StringMatcher, v string) bool {
	if m.IgnoreCase {
		v = strings.ToLower(v)
	}
	lc := func(s string) string {
		if m.IgnoreCase {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := m.MatchPattern.(type) {
	case *matcher.StringMatcher_Exact:
		return v == lc(p.Exact)
	case *matcher.StringMatcher_Prefix:
		return strings.HasPrefix(v, lc(p.Prefix))
	case *matcher.StringMatcher_Suffix:
		return strings.HasSuffix(v, lc(p.Suffix))
	case *matcher.StringMatcher_Contains:
		return strings.Contains(v, lc(p.Contains))
	case *matcher.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.Regex + ")$")
		return err == nil && re.MatchString(v)
	}
	return false
}
