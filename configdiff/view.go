package configdiff

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// node is the semantic view of a resource or of a part of one: the
// fields that decide what Envoy does, already normalised (defaults filled
// in, sets sorted), and its parts by a key that identifies them
// independently of their order.
type node struct {
	fields []viewField
	kids   map[string]*node
	// order lists the kids' keys in configuration order, for parts whose
	// order is semantic (routes: the first match wins).
	order      []string
	orderLabel string
}

type viewField struct {
	name  string
	value string
	set   []string // for set-valued fields; value is their joined form
	isSet bool
}

func newNode() *node { return &node{kids: map[string]*node{}} }

func (n *node) add(name, value string) {
	n.fields = append(n.fields, viewField{name: name, value: value})
}

func (n *node) addSet(name string, elems []string) {
	s := append([]string(nil), elems...)
	sort.Strings(s)
	s = dedupe(s)
	n.fields = append(n.fields, viewField{name: name, value: strings.Join(s, ", "), set: s, isSet: true})
}

// kid adds a part under key, suffixing #2, #3… to keys seen before (Envoy
// rejects most duplicates; the view keeps them so they are compared too).
func (n *node) kid(key string, k *node) {
	base, i := key, 1
	for n.kids[key] != nil {
		i++
		key = fmt.Sprintf("%s #%d", base, i)
	}
	n.kids[key] = k
	n.order = append(n.order, key)
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, e := range s {
		if i == 0 || e != s[i-1] {
			out = append(out, e)
		}
	}
	return out
}

// Defaults Envoy applies when a field is unset.
const (
	defaultConnectTimeout = 5 * time.Second
	defaultRouteTimeout   = 15 * time.Second
)

func dur(d *durationpb.Duration, def time.Duration) string {
	if d == nil {
		return def.String()
	}
	return d.AsDuration().String()
}

// --- clusters ---

func clusterView(c *clusterv3.Cluster) *node {
	n := newNode()
	typ := c.GetType().String()
	if ct := c.GetClusterType(); ct != nil {
		typ = "custom " + ct.GetName()
	}
	n.add("type", typ)
	lb := c.GetLbPolicy().String()
	if p := c.GetLoadBalancingPolicy(); p != nil {
		var names []string
		for _, pol := range p.GetPolicies() {
			names = append(names, typedName(pol.GetTypedExtensionConfig().GetTypedConfig()))
		}
		lb = "policy " + strings.Join(names, ", ")
	}
	n.add("lb policy", lb)
	n.add("connect timeout", dur(c.GetConnectTimeout(), defaultConnectTimeout))
	if c.GetType() == clusterv3.Cluster_EDS && c.GetClusterType() == nil {
		svc := c.GetEdsClusterConfig().GetServiceName()
		if svc == "" {
			svc = c.GetName() // Envoy asks EDS for the cluster's own name
		}
		n.add("eds service name", svc)
	} else if la := c.GetLoadAssignment(); la != nil {
		n.addSet("endpoints", endpointStrings(la))
	}
	ts := c.GetTransportSocket()
	if ts == nil {
		// Istio's automatic mTLS and HBONE sockets are chosen per endpoint
		// by transport_socket_matches on Istio's own labels; other matches
		// are compared by name.
		var other []string
		for _, m := range c.GetTransportSocketMatches() {
			if !istioSocketMatch(m) {
				other = append(other, m.GetName())
			}
		}
		if len(other) > 0 {
			n.addSet("transport socket matches", other)
		}
	}
	tlsFields(n, ts, false)
	var filters []string
	for _, f := range c.GetFilters() {
		if !ignoredFilter(f.GetName(), f.GetTypedConfig()) {
			filters = append(filters, f.GetName())
		}
	}
	if len(filters) > 0 {
		n.add("upstream filters", strings.Join(filters, ", "))
	}
	return n
}

func istioSocketMatch(m *clusterv3.Cluster_TransportSocketMatch) bool {
	switch m.GetName() {
	case "tlsMode-istio", "tlsMode-disabled", "hbone", "internal_upstream":
		return true
	}
	for k := range m.GetMatch().GetFields() {
		if k == "tlsMode" || strings.HasPrefix(k, "security.istio.io/") {
			return true
		}
	}
	return false
}

// tlsFields adds the TLS settings of a transport socket: "tls" (on/off)
// and, when on, the SNI, trust, SANs, certificate and ALPN.
func tlsFields(n *node, ts *corev3.TransportSocket, downstream bool) {
	if ts == nil || ts.GetName() == "envoy.transport_sockets.raw_buffer" || ts.GetName() == "raw_buffer" {
		n.add("tls", "off")
		return
	}
	cfg := ts.GetTypedConfig()
	var common *tlsv3.CommonTlsContext
	var sni, requireClient string
	switch {
	case downstream && cfg.MessageIs(&tlsv3.DownstreamTlsContext{}):
		var d tlsv3.DownstreamTlsContext
		if err := cfg.UnmarshalTo(&d); err != nil {
			n.add("tls", "unreadable: "+err.Error())
			return
		}
		common = d.GetCommonTlsContext()
		requireClient = strconv.FormatBool(d.GetRequireClientCertificate().GetValue())
	case !downstream && cfg.MessageIs(&tlsv3.UpstreamTlsContext{}):
		var u tlsv3.UpstreamTlsContext
		if err := cfg.UnmarshalTo(&u); err != nil {
			n.add("tls", "unreadable: "+err.Error())
			return
		}
		common = u.GetCommonTlsContext()
		sni = u.GetSni()
	default:
		n.add("tls", "transport socket "+ts.GetName()+" ("+typedName(cfg)+")")
		return
	}
	n.add("tls", "on")
	if !downstream {
		n.add("tls sni", sni)
	}
	ca, sans := validation(common)
	n.add("tls trust", ca)
	if len(sans) > 0 {
		n.addSet("tls subject alt names", sans)
	}
	var certs []string
	for _, c := range common.GetTlsCertificates() {
		certs = append(certs, "file "+dataSource(c.GetCertificateChain())+" key "+dataSource(c.GetPrivateKey()))
	}
	for _, s := range common.GetTlsCertificateSdsSecretConfigs() {
		certs = append(certs, secretName(s.GetName()))
	}
	if len(certs) > 0 || downstream {
		n.addSet("tls certificates", certs)
	}
	if downstream {
		n.add("tls require client certificate", requireClient)
	}
	var alpn []string
	for _, p := range common.GetAlpnProtocols() {
		if p != "istio" && !strings.HasPrefix(p, "istio-") { // Istio's peer-exchange ALPNs
			alpn = append(alpn, p)
		}
	}
	if len(alpn) > 0 {
		n.add("tls alpn", strings.Join(alpn, ", "))
	}
}

// validation describes how a TLS context verifies its peer: where the CA
// comes from (a file, inline, SDS) and which SANs it accepts. istio-agent's
// SDS names for files (file-root:PATH) mean the file itself.
func validation(c *tlsv3.CommonTlsContext) (string, []string) {
	var vc *tlsv3.CertificateValidationContext
	var sds string
	switch {
	case c.GetValidationContext() != nil:
		vc = c.GetValidationContext()
	case c.GetCombinedValidationContext() != nil:
		vc = c.GetCombinedValidationContext().GetDefaultValidationContext()
		sds = c.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName()
	case c.GetValidationContextSdsSecretConfig() != nil:
		sds = c.GetValidationContextSdsSecretConfig().GetName()
	}
	var ca []string
	switch tc := vc.GetTrustedCa(); {
	case tc == nil:
	case tc.GetFilename() == systemBundle:
		ca = append(ca, "system roots")
	case tc.GetFilename() != "":
		ca = append(ca, "file "+tc.GetFilename())
	default:
		ca = append(ca, dataSource(tc))
	}
	if vc.GetSystemRootCerts() != nil {
		ca = append(ca, "system roots")
	}
	if sds != "" {
		ca = append(ca, secretName(sds))
	}
	if vc.GetTrustChainVerification() == tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED {
		ca = append(ca, "accept untrusted")
	}
	trust := "none"
	if len(ca) > 0 {
		trust = strings.Join(ca, ", ")
	}
	var sans []string
	for _, m := range vc.GetMatchSubjectAltNames() {
		sans = append(sans, stringMatch(m))
	}
	for _, m := range vc.GetMatchTypedSubjectAltNames() {
		sans = append(sans, strings.ToLower(m.GetSanType().String())+" "+stringMatch(m.GetMatcher()))
	}
	return trust, sans
}

// systemBundle is the system CA bundle of the Envoy and istio-proxy
// images: what istio-agent serves as file-root:system (the first of the
// paths it tries) and what chokepoint trusts for TLS origination without
// caCertificates.
const systemBundle = "/etc/ssl/certs/ca-certificates.crt"

// secretName names an SDS secret; istio-agent serves file-root:PATH and
// file-cert:CERT~KEY from those files, so they read as the files, and
// file-root:system as the system's CA bundle.
func secretName(s string) string {
	switch {
	case s == "file-root:system" || s == "file-root:"+systemBundle:
		return "system roots"
	case strings.HasPrefix(s, "file-root:"):
		return "file " + strings.TrimPrefix(s, "file-root:")
	case strings.HasPrefix(s, "file-cert:"):
		cert, key, _ := strings.Cut(strings.TrimPrefix(s, "file-cert:"), "~")
		return "file " + cert + " key " + key
	}
	return "sds " + s
}

func dataSource(d *corev3.DataSource) string {
	switch {
	case d.GetFilename() != "":
		return d.GetFilename()
	case d.GetInlineString() != "":
		return "inline " + shortHash([]byte(d.GetInlineString()))
	case len(d.GetInlineBytes()) > 0:
		return "inline " + shortHash(d.GetInlineBytes())
	case d.GetEnvironmentVariable() != "":
		return "env " + d.GetEnvironmentVariable()
	}
	return ""
}

func shortHash(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:6])
}

func stringMatch(m *matcherv3.StringMatcher) string {
	var s string
	switch {
	case m.GetSafeRegex() != nil:
		s = "regex " + strconv.Quote(m.GetSafeRegex().GetRegex())
	case m.GetPrefix() != "":
		s = "prefix " + strconv.Quote(m.GetPrefix())
	case m.GetSuffix() != "":
		s = "suffix " + strconv.Quote(m.GetSuffix())
	case m.GetContains() != "":
		s = "contains " + strconv.Quote(m.GetContains())
	case m.GetCustom() != nil:
		s = "custom " + m.GetCustom().GetName()
	default:
		s = "exact " + strconv.Quote(m.GetExact())
	}
	if m.GetIgnoreCase() {
		s += " ignore case"
	}
	return s
}

// --- endpoints ---

func endpointStrings(la *endpointv3.ClusterLoadAssignment) []string {
	var out []string
	for _, group := range la.GetEndpoints() {
		for _, e := range group.GetLbEndpoints() {
			s := addressString(e.GetEndpoint().GetAddress())
			if e.GetEndpointName() != "" {
				s = "endpoint " + e.GetEndpointName()
			}
			if w := e.GetLoadBalancingWeight(); w != nil && w.GetValue() != 1 {
				s += fmt.Sprintf(" weight %d", w.GetValue())
			}
			if p := group.GetPriority(); p != 0 {
				s += fmt.Sprintf(" priority %d", p)
			}
			out = append(out, s)
		}
	}
	return out
}

func endpointsView(la *endpointv3.ClusterLoadAssignment) *node {
	n := newNode()
	n.addSet("endpoints", endpointStrings(la))
	return n
}

func addressString(a *corev3.Address) string {
	switch {
	case a.GetSocketAddress() != nil:
		sa := a.GetSocketAddress()
		port := strconv.FormatUint(uint64(sa.GetPortValue()), 10)
		if sa.GetNamedPort() != "" {
			port = sa.GetNamedPort()
		}
		return sa.GetAddress() + ":" + port
	case a.GetPipe() != nil:
		return "pipe " + a.GetPipe().GetPath()
	case a.GetEnvoyInternalAddress() != nil:
		ia := a.GetEnvoyInternalAddress()
		return "internal " + ia.GetServerListenerName() + " " + ia.GetEndpointId()
	}
	return ""
}

// --- listeners ---

func listenerView(l *listenerv3.Listener) *node {
	n := newNode()
	n.add("address", addressString(l.GetAddress()))
	bind := true
	if b := l.GetBindToPort(); b != nil {
		bind = b.GetValue()
	}
	n.add("bind to port", strconv.FormatBool(bind))
	n.add("use original dst", strconv.FormatBool(l.GetUseOriginalDst().GetValue()))
	var lf []string
	for _, f := range l.GetListenerFilters() {
		if !ignoredFilter(f.GetName(), f.GetTypedConfig()) {
			lf = append(lf, canonicalName(f.GetName()))
		}
	}
	n.addSet("listener filters", lf)
	byName := l.GetFilterChainMatcher() != nil
	if byName {
		// The xDS matcher picks chains by name; it is not compared.
		n.add("filter chain matcher", "set")
	}
	for _, fc := range l.GetFilterChains() {
		key := "filter chain " + chainMatch(fc.GetFilterChainMatch())
		if byName {
			key = "filter chain " + fc.GetName()
		}
		n.kid(key, chainView(fc))
	}
	if dc := l.GetDefaultFilterChain(); dc != nil {
		n.kid("default filter chain", chainView(dc))
	}
	return n
}

// chainMatch renders a filter chain match with every list as a sorted set,
// so two chains that match the same connections get the same key.
func chainMatch(m *listenerv3.FilterChainMatch) string {
	var parts []string
	list := func(name string, s []string) {
		if len(s) > 0 {
			s = append([]string(nil), s...)
			sort.Strings(s)
			parts = append(parts, name+"=["+strings.Join(dedupe(s), ",")+"]")
		}
	}
	cidrs := func(rs []*corev3.CidrRange) []string {
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s/%d", r.GetAddressPrefix(), r.GetPrefixLen().GetValue()))
		}
		return out
	}
	if p := m.GetDestinationPort(); p != nil {
		parts = append(parts, fmt.Sprintf("destination_port=%d", p.GetValue()))
	}
	list("prefix_ranges", cidrs(m.GetPrefixRanges()))
	list("direct_source_prefix_ranges", cidrs(m.GetDirectSourcePrefixRanges()))
	if m.GetSourceType() != listenerv3.FilterChainMatch_ANY {
		parts = append(parts, "source_type="+m.GetSourceType().String())
	}
	list("source_prefix_ranges", cidrs(m.GetSourcePrefixRanges()))
	var ports []string
	for _, p := range m.GetSourcePorts() {
		ports = append(ports, strconv.FormatUint(uint64(p), 10))
	}
	list("source_ports", ports)
	list("server_names", m.GetServerNames())
	if m.GetTransportProtocol() != "" {
		parts = append(parts, "transport_protocol="+m.GetTransportProtocol())
	}
	list("application_protocols", m.GetApplicationProtocols())
	if len(parts) == 0 {
		return "(match all)"
	}
	return strings.Join(parts, " ")
}

func chainView(fc *listenerv3.FilterChain) *node {
	n := newNode()
	var names []string
	for _, f := range fc.GetFilters() {
		if ignoredFilter(f.GetName(), f.GetTypedConfig()) {
			continue
		}
		name := canonicalName(f.GetName())
		names = append(names, name)
		cfg := f.GetTypedConfig()
		switch {
		case cfg.MessageIs(&tcpv3.TcpProxy{}):
			var tp tcpv3.TcpProxy
			if err := cfg.UnmarshalTo(&tp); err != nil {
				n.add("tcp_proxy", "unreadable: "+err.Error())
				continue
			}
			if wc := tp.GetWeightedClusters(); wc != nil {
				var ws []string
				for _, c := range wc.GetClusters() {
					ws = append(ws, fmt.Sprintf("%s weight %d", c.GetName(), c.GetWeight()))
				}
				n.addSet("tcp_proxy weighted clusters", ws)
			} else {
				n.add("tcp_proxy cluster", tp.GetCluster())
			}
		case cfg.MessageIs(&hcmv3.HttpConnectionManager{}):
			var hcm hcmv3.HttpConnectionManager
			if err := cfg.UnmarshalTo(&hcm); err != nil {
				n.add("http_connection_manager", "unreadable: "+err.Error())
				continue
			}
			hcmFields(n, &hcm)
		}
	}
	n.add("filters", strings.Join(names, ", "))
	tlsFields(n, fc.GetTransportSocket(), true)
	return n
}

func hcmFields(n *node, hcm *hcmv3.HttpConnectionManager) {
	switch {
	case hcm.GetRds() != nil:
		n.add("http route config", hcm.GetRds().GetRouteConfigName())
	case hcm.GetRouteConfig() != nil:
		n.add("http route config", "inline "+hcm.GetRouteConfig().GetName())
		rc := routeConfigView(hcm.GetRouteConfig())
		for _, key := range rc.order {
			n.kid("inline route "+key, rc.kids[key])
		}
	case hcm.GetScopedRoutes() != nil:
		n.add("http route config", "scoped routes")
	}
	var filters []string
	for _, f := range hcm.GetHttpFilters() {
		if f.GetDisabled() || ignoredFilter(f.GetName(), f.GetTypedConfig()) {
			continue
		}
		filters = append(filters, canonicalName(f.GetName()))
	}
	n.add("http filters", strings.Join(filters, ", "))
}

// --- routes ---

func routeConfigView(rc *routev3.RouteConfiguration) *node {
	n := newNode()
	for _, vh := range rc.GetVirtualHosts() {
		n.kid("virtual host "+vh.GetName(), virtualHostView(vh))
	}
	return n
}

func virtualHostView(vh *routev3.VirtualHost) *node {
	n := newNode()
	n.addSet("domains", vh.GetDomains())
	if vh.GetRequireTls() != routev3.VirtualHost_NONE {
		n.add("require tls", vh.GetRequireTls().String())
	}
	n.orderLabel = "route order"
	for _, r := range vh.GetRoutes() {
		n.kid("route "+routeMatch(r.GetMatch()), routeView(r))
	}
	return n
}

func routeMatch(m *routev3.RouteMatch) string {
	var s string
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Path:
		s = "path " + strconv.Quote(p.Path)
	case *routev3.RouteMatch_SafeRegex:
		s = "regex " + strconv.Quote(p.SafeRegex.GetRegex())
	case *routev3.RouteMatch_PathSeparatedPrefix:
		s = "path_separated_prefix " + strconv.Quote(p.PathSeparatedPrefix)
	case *routev3.RouteMatch_ConnectMatcher_:
		s = "CONNECT"
	case *routev3.RouteMatch_PathMatchPolicy:
		s = "path policy " + typedName(p.PathMatchPolicy.GetTypedConfig())
	default:
		s = "prefix " + strconv.Quote(m.GetPrefix())
	}
	if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		s += " ignore case"
	}
	var hs []string
	for _, h := range m.GetHeaders() {
		hs = append(hs, "header "+h.GetName()+" "+headerMatch(h))
	}
	for _, q := range m.GetQueryParameters() {
		qs := "present"
		if q.GetStringMatch() != nil {
			qs = stringMatch(q.GetStringMatch())
		}
		hs = append(hs, "query "+q.GetName()+" "+qs)
	}
	if m.GetGrpc() != nil {
		hs = append(hs, "grpc")
	}
	sort.Strings(hs)
	for _, h := range hs {
		s += ", " + h
	}
	return s
}

func headerMatch(h *routev3.HeaderMatcher) string {
	var s string
	switch {
	case h.GetStringMatch() != nil:
		s = stringMatch(h.GetStringMatch())
	case h.GetExactMatch() != "":
		s = "exact " + strconv.Quote(h.GetExactMatch())
	case h.GetSafeRegexMatch() != nil:
		s = "regex " + strconv.Quote(h.GetSafeRegexMatch().GetRegex())
	case h.GetPrefixMatch() != "":
		s = "prefix " + strconv.Quote(h.GetPrefixMatch())
	case h.GetSuffixMatch() != "":
		s = "suffix " + strconv.Quote(h.GetSuffixMatch())
	case h.GetContainsMatch() != "":
		s = "contains " + strconv.Quote(h.GetContainsMatch())
	case h.GetRangeMatch() != nil:
		s = fmt.Sprintf("range [%d,%d)", h.GetRangeMatch().GetStart(), h.GetRangeMatch().GetEnd())
	case h.GetPresentMatch():
		s = "present"
	default:
		s = "present" // no specifier: Envoy matches on presence
	}
	if h.GetInvertMatch() {
		s = "not " + s
	}
	return s
}

func routeView(r *routev3.Route) *node {
	n := newNode()
	switch {
	case r.GetRoute() != nil:
		routeActionFields(n, r.GetRoute())
	case r.GetRedirect() != nil:
		n.add("redirect", redirect(r.GetRedirect()))
	case r.GetDirectResponse() != nil:
		dr := r.GetDirectResponse()
		n.add("direct response status", strconv.FormatUint(uint64(dr.GetStatus()), 10))
		if b := dataSource(dr.GetBody()); b != "" {
			n.add("direct response body", b)
		}
	case r.GetFilterAction() != nil:
		n.add("action", "filter action")
	case r.GetNonForwardingAction() != nil:
		n.add("action", "non-forwarding")
	}
	headerFields(n, "request", r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove())
	headerFields(n, "response", r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove())
	var pf []string
	for name, cfg := range r.GetTypedPerFilterConfig() {
		if !istioOwned(name, cfg) {
			pf = append(pf, name)
		}
	}
	if len(pf) > 0 {
		n.addSet("per-filter config", pf)
	}
	return n
}

func routeActionFields(n *node, a *routev3.RouteAction) {
	switch {
	case a.GetWeightedClusters() != nil:
		var ws []string
		for _, c := range a.GetWeightedClusters().GetClusters() {
			w := uint32(0)
			if c.GetWeight() != nil {
				w = c.GetWeight().GetValue()
			}
			ws = append(ws, fmt.Sprintf("%s weight %d", c.GetName(), w))
		}
		n.addSet("weighted clusters", ws)
	case a.GetClusterHeader() != "":
		n.add("cluster header", a.GetClusterHeader())
	case a.GetClusterSpecifierPlugin() != "":
		n.add("cluster specifier plugin", a.GetClusterSpecifierPlugin())
	default:
		n.add("cluster", a.GetCluster())
	}
	n.add("timeout", dur(a.GetTimeout(), defaultRouteTimeout))
	if p := a.GetPrefixRewrite(); p != "" {
		n.add("prefix rewrite", p)
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		n.add("regex rewrite", strconv.Quote(rr.GetPattern().GetRegex())+" -> "+strconv.Quote(rr.GetSubstitution()))
	}
	switch {
	case a.GetHostRewriteLiteral() != "":
		n.add("host rewrite", a.GetHostRewriteLiteral())
	case a.GetAutoHostRewrite().GetValue():
		n.add("host rewrite", "auto")
	}
	n.add("retries", retries(a.GetRetryPolicy()))
	var mirrors []string
	for _, m := range a.GetRequestMirrorPolicies() {
		mirrors = append(mirrors, m.GetCluster())
	}
	if len(mirrors) > 0 {
		n.addSet("mirror", mirrors)
	}
}

func retries(p *routev3.RetryPolicy) string {
	if p == nil {
		return "none"
	}
	num := uint32(1) // Envoy's default once a policy is set
	if p.GetNumRetries() != nil {
		num = p.GetNumRetries().GetValue()
	}
	on := strings.Split(p.GetRetryOn(), ",")
	for i := range on {
		on[i] = strings.TrimSpace(on[i])
	}
	sort.Strings(on)
	s := fmt.Sprintf("%d on %s", num, strings.Join(on, ","))
	if p.GetPerTryTimeout() != nil {
		s += " per try " + p.GetPerTryTimeout().AsDuration().String()
	}
	if codes := p.GetRetriableStatusCodes(); len(codes) > 0 {
		s += fmt.Sprintf(" codes %v", codes)
	}
	return s
}

func redirect(r *routev3.RedirectAction) string {
	var parts []string
	switch {
	case r.GetHttpsRedirect():
		parts = append(parts, "scheme https")
	case r.GetSchemeRedirect() != "":
		parts = append(parts, "scheme "+r.GetSchemeRedirect())
	}
	if r.GetHostRedirect() != "" {
		parts = append(parts, "host "+r.GetHostRedirect())
	}
	if r.GetPortRedirect() != 0 {
		parts = append(parts, fmt.Sprintf("port %d", r.GetPortRedirect()))
	}
	if r.GetPathRedirect() != "" {
		parts = append(parts, "path "+r.GetPathRedirect())
	}
	if r.GetPrefixRewrite() != "" {
		parts = append(parts, "prefix "+r.GetPrefixRewrite())
	}
	if rr := r.GetRegexRewrite(); rr != nil {
		parts = append(parts, "regex "+strconv.Quote(rr.GetPattern().GetRegex())+" -> "+strconv.Quote(rr.GetSubstitution()))
	}
	if r.GetStripQuery() {
		parts = append(parts, "strip query")
	}
	parts = append(parts, "code "+r.GetResponseCode().String())
	return strings.Join(parts, ", ")
}

func headerFields(n *node, which string, add []*corev3.HeaderValueOption, remove []string) {
	var hs []string
	for _, h := range add {
		// The deprecated append flag and append_action say the same thing
		// two ways.
		action := "append"
		switch {
		case h.GetAppend() != nil:
			if !h.GetAppend().GetValue() {
				action = "set"
			}
		case h.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			action = "set"
		case h.GetAppendAction() == corev3.HeaderValueOption_ADD_IF_ABSENT:
			action = "add if absent"
		case h.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			action = "overwrite if exists"
		}
		hs = append(hs, action+" "+h.GetHeader().GetKey()+": "+h.GetHeader().GetValue())
	}
	for _, r := range remove {
		hs = append(hs, "remove "+r)
	}
	if len(hs) > 0 {
		n.addSet(which+" headers", hs)
	}
}

// --- filters ---

// legacyNames maps Envoy's deprecated filter names to the current ones.
var legacyNames = map[string]string{
	"envoy.tcp_proxy":               "envoy.filters.network.tcp_proxy",
	"envoy.http_connection_manager": "envoy.filters.network.http_connection_manager",
	"envoy.router":                  "envoy.filters.http.router",
	"envoy.cors":                    "envoy.filters.http.cors",
	"envoy.fault":                   "envoy.filters.http.fault",
	"envoy.listener.tls_inspector":  "envoy.filters.listener.tls_inspector",
	"envoy.listener.http_inspector": "envoy.filters.listener.http_inspector",
	"envoy.listener.original_dst":   "envoy.filters.listener.original_dst",
}

func canonicalName(name string) string {
	if c, ok := legacyNames[name]; ok {
		return c
	}
	return name
}

// ignoredFilter reports whether a filter is istio-proxy's own or has no
// effect on where traffic goes, so that its presence on one side only is
// not a difference:
//
//   - istio-proxy extensions (names istio.*: istio.metadata_exchange,
//     istio.stats, istio.alpn; the waypoint peer-metadata filters; Wasm
//     filters running Istio's stats or metadata exchange);
//   - envoy.filters.http.grpc_stats, which only counts;
//   - envoy.filters.http.fault, cors and stateful_session with an empty
//     config, which act only through per-route config (compared on the
//     route as "per-filter config").
func ignoredFilter(name string, cfg *anypb.Any) bool {
	if istioOwned(name, cfg) {
		return true
	}
	switch canonicalName(name) {
	case "envoy.filters.http.grpc_stats":
		return true
	case "envoy.filters.http.fault", "envoy.filters.http.cors", "envoy.filters.http.stateful_session":
		return cfg == nil || emptyConfig(cfg)
	}
	return false
}

// istioOwned reports an istio-proxy extension, by name or by config type.
func istioOwned(name string, cfg *anypb.Any) bool {
	name = canonicalName(name)
	switch {
	case strings.HasPrefix(name, "istio.") || strings.HasPrefix(name, "istio_"):
		return true
	case name == "waypoint_downstream_peer_metadata" || name == "waypoint_upstream_peer_metadata":
		return true
	case name == "envoy.filters.http.wasm" || name == "envoy.filters.network.wasm":
		return istioWasm(cfg)
	}
	t := typedName(cfg)
	return strings.HasPrefix(t, "io.istio.") || strings.HasPrefix(t, "istio.") || t == "stats.PluginConfig" ||
		strings.HasPrefix(t, "envoy.tcp.metadataexchange.")
}

// typedName is the message type of a typed config: for an opaque one
// (kept as a Struct) or a TypedStruct, the type it stands for.
func typedName(a *anypb.Any) string {
	if a == nil {
		return ""
	}
	if a.GetTypeUrl() == structURL {
		var s structpb.Struct
		if a.UnmarshalTo(&s) == nil {
			t := s.GetFields()["@type"].GetStringValue()
			if strings.HasSuffix(t, "TypedStruct") {
				if u := s.GetFields()["type_url"].GetStringValue(); u != "" {
					t = u
				} else if u := s.GetFields()["typeUrl"].GetStringValue(); u != "" {
					t = u
				}
			}
			return t[strings.LastIndex(t, "/")+1:]
		}
	}
	t := a.GetTypeUrl()
	if strings.HasSuffix(t, "TypedStruct") {
		if m, err := a.UnmarshalNew(); err == nil {
			if f := m.ProtoReflect().Descriptor().Fields().ByName("type_url"); f != nil {
				t = m.ProtoReflect().Get(f).String()
			}
		}
	}
	return t[strings.LastIndex(t, "/")+1:]
}

func emptyConfig(a *anypb.Any) bool {
	if a.GetTypeUrl() == structURL {
		var s structpb.Struct
		if a.UnmarshalTo(&s) != nil {
			return false
		}
		return len(s.GetFields()) == 1 // only its "@type"
	}
	return len(a.GetValue()) == 0
}

// istioWasm recognises istio-proxy's built-in Wasm plugins (the null VM
// running envoy.wasm.stats or envoy.wasm.metadata_exchange).
func istioWasm(a *anypb.Any) bool {
	if a == nil {
		return false
	}
	var text string
	if m, err := a.UnmarshalNew(); err == nil {
		text = fmt.Sprint(m)
	}
	return strings.Contains(text, "envoy.wasm.stats") || strings.Contains(text, "envoy.wasm.metadata_exchange") ||
		strings.Contains(text, "istio.stats") || strings.Contains(text, "istio.metadata_exchange")
}
