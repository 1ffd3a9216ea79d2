package translate

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

// gwServer is one Gateway server placed on the port the gateway workload
// actually listens on.
type gwServer struct {
	gw     *gwEntry
	index  int
	s      *networking.Server
	port   uint32 // resolved (targetPort)
	routes string // RDS name for HTTP and terminated HTTPS servers
}

func (g *gwServer) field(f string) string { return fmt.Sprintf("spec.servers[%d]%s", g.index, f) }

type gwPort struct {
	port      uint32
	plainHTTP bool
	servers   []*gwServer
	tlsHosts  map[string]string // SNI host -> server, for duplicates
}

// gatewaysFor lists the Gateways whose selector matches the proxy, oldest first.
func (x *Index) gatewaysFor(p *Proxy) []*gwEntry {
	var out []*gwEntry
	for _, gw := range x.gateways {
		if labelsMatch(gw.spec.Selector, p.Labels) {
			out = append(out, gw)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return inputs.Older(out[i].obj, out[j].obj) })
	return out
}

// gatewayServices are the Services that select the gateway workload (its
// namespace, selector matching its labels): they map server ports to the
// ports the workload listens on.
func (x *Index) gatewayServices(p *Proxy) []*service {
	var out []*service
	for _, s := range x.services {
		if s.kube && s.namespace == p.Namespace && len(s.selector) > 0 && labelsMatch(s.selector, p.Labels) {
			out = append(out, s)
		}
	}
	return out
}

// resolvePort maps a Gateway server port to the workload port as istiod
// does: a Service port with that number means its targetPort (443 -> 8443);
// otherwise the number is taken as the workload port itself.
func resolvePort(n uint32, svcs []*service) uint32 {
	for _, s := range svcs {
		if p := s.port(n); p != nil && p.targetPort != 0 {
			return p.targetPort
		}
	}
	return n
}

func (t *translation) gwWarn(g *gwServer, field, format string, args ...any) {
	t.problems = append(t.problems, inputs.ProblemFor(inputs.SeverityWarning, g.gw.obj, g.field(field), format, args...))
}

func gatewayRouteName(s *networking.Server, port uint32, gw *gwEntry) string {
	p := parseProtocol(s.Port.Protocol)
	switch {
	case p.isHTTP():
		return "http." + strconv.FormatUint(uint64(port), 10)
	case p == protoHTTPS && s.Tls != nil && s.Tls.Mode != networking.ServerTLSSettings_PASSTHROUGH && s.Tls.Mode != networking.ServerTLSSettings_AUTO_PASSTHROUGH:
		return "https." + strconv.FormatUint(uint64(s.Port.Number), 10) + "." + s.Port.Name + "." + gw.obj.Name + "." + gw.obj.Namespace
	}
	return ""
}

// isTLSServer is istiod's gateway.IsTLSServer: a server with TLS settings
// whose protocol is not plain HTTP (an HTTP server's tls block only holds
// httpsRedirect).
func isTLSServer(s *networking.Server) bool {
	return s.Tls != nil && !parseProtocol(s.Port.Protocol).isHTTP()
}

// buildGateway renders the listeners and routes of a gateway proxy.
func (t *translation) buildGateway() {
	gws := t.x.gatewaysFor(t.proxy)
	svcs := t.x.gatewayServices(t.proxy)
	ports := map[uint32]*gwPort{}
	var order []uint32
	for _, gw := range gws {
		for i, s := range gw.spec.Servers {
			g := &gwServer{gw: gw, index: i, s: s, port: resolvePort(s.Port.Number, svcs)}
			g.routes = gatewayRouteName(s, g.port, gw)
			p := parseProtocol(s.Port.Protocol)
			gp := ports[g.port]
			if gp == nil {
				gp = &gwPort{port: g.port, tlsHosts: map[string]string{}}
				ports[g.port] = gp
				order = append(order, g.port)
			}
			// A plain-text server is one that istiod's gateway.IsTLSServer
			// rejects: no tls block, or an HTTP protocol whose tls block only
			// carries httpsRedirect (pkg/config/gateway/gateway.go). Such an
			// HTTP server is still served in clear text (the redirect is
			// require_tls on its virtual hosts); its tls block must not be
			// read as a PASSTHROUGH mode, the zero value of tls.mode.
			plain := !isTLSServer(s)
			if s.Tls != nil {
				var dups []string
				for _, h := range s.Hosts {
					if _, ok := gp.tlsHosts[h]; ok {
						dups = append(dups, h)
					}
				}
				if len(dups) > 0 {
					t.gwWarn(g, ".hosts", "duplicate host names %v on port %d (already on %s): istiod skips this server", dups, g.port, gp.tlsHosts[dups[0]])
					continue
				}
				for _, h := range s.Hosts {
					gp.tlsHosts[h] = g.gw.obj.KindName()
				}
			}
			if len(gp.servers) > 0 {
				first := gp.servers[0]
				firstPlain := !isTLSServer(first.s)
				switch {
				case plain && firstPlain && gp.plainHTTP && p.isHTTP():
				case !plain && !firstPlain:
				default:
					t.gwWarn(g, ".port", "port %d (workload port %d) already has a %s server from %s that this %s server cannot share: istiod skips it",
						s.Port.Number, g.port, first.s.Port.Protocol, first.gw.obj.KindName(), s.Port.Protocol)
					continue
				}
			} else {
				gp.plainHTTP = plain && p.isHTTP()
			}
			if !plain {
				switch s.Tls.Mode {
				case networking.ServerTLSSettings_AUTO_PASSTHROUGH:
					t.gwWarn(g, ".tls.mode", "AUTO_PASSTHROUGH routes on istiod's outbound_.PORT_._.HOST SNI names between meshes and is not supported: server skipped")
					continue
				case networking.ServerTLSSettings_ISTIO_MUTUAL, networking.ServerTLSSettings_OPTIONAL_MUTUAL:
					t.gwWarn(g, ".tls.mode", "%s needs istio-proxy's certificates and is not supported on a stock Envoy: server skipped", s.Tls.Mode)
					continue
				}
			}
			gp.servers = append(gp.servers, g)
		}
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	var routeNames []string
	routeServers := map[string][]*gwServer{}
	for _, port := range order {
		gp := ports[port]
		if len(gp.servers) == 0 {
			continue
		}
		l := t.gatewayListener(gp)
		if l == nil {
			continue
		}
		t.out.Listeners = append(t.out.Listeners, l)
		for _, g := range gp.servers {
			if g.routes == "" || (g.s.Tls != nil && !parseProtocol(g.s.Port.Protocol).isHTTP() && parseProtocol(g.s.Port.Protocol) != protoHTTPS) {
				continue
			}
			if _, ok := routeServers[g.routes]; !ok {
				routeNames = append(routeNames, g.routes)
			}
			routeServers[g.routes] = append(routeServers[g.routes], g)
		}
	}
	for _, name := range routeNames {
		t.out.Routes = append(t.out.Routes, t.gatewayRouteConfig(name, routeServers[name]))
	}
}

func (t *translation) gatewayListener(gp *gwPort) *listener.Listener {
	var chains []*chain
	if gp.plainHTTP {
		chains = append(chains, &chain{filters: []*listener.Filter{hcmFilter("outbound_"+listenerName(unspecifiedIP, gp.port), gp.servers[0].routes, t.log(), true)}})
	} else {
		sniTaken := map[string]string{}
		for _, g := range gp.servers {
			chains = append(chains, t.gatewayServerChains(g, sniTaken)...)
		}
	}
	if len(chains) == 0 {
		t.gwWarn(gp.servers[0], "", "no VirtualService route binds to this server: gateway listener %s is not built (istiod omits it too)", listenerName(unspecifiedIP, gp.port))
		return nil
	}
	l := &listener.Listener{
		Name:             listenerName(unspecifiedIP, gp.port),
		Address:          socketAddress(unspecifiedIP, gp.port),
		TrafficDirection: core.TrafficDirection_OUTBOUND,
	}
	var set chainSet
	for _, c := range chains {
		if collided := set.add(c); len(collided) > 0 {
			t.problems = append(t.problems, inputs.Problem{Severity: inputs.SeverityWarning, Object: c.origin,
				Message: fmt.Sprintf("listener %s: filter chain match (SNI %v) is already taken by %s: dropped", l.Name, c.sniHosts, strings.Join(collided, ", "))})
		}
	}
	for _, c := range set.chains {
		if len(c.sniHosts) > 0 && !contains(c.sniHosts, "*") && len(l.ListenerFilters) == 0 {
			l.ListenerFilters = append(l.ListenerFilters, tlsInspector())
		}
		l.FilterChains = append(l.FilterChains, c.render())
	}
	if t.accessLog != "" {
		l.AccessLog = append(l.AccessLog, noRouteAccessLog(t.accessLog))
	}
	return l
}

// vsForGateway lists the VirtualServices bound to a gateway and visible to
// the gateway proxy's namespace.
func (t *translation) vsForGateway(key string) []*vsEntry {
	var out []*vsEntry
	export := t.x.mesh.GetDefaultVirtualServiceExportTo()
	for _, vs := range t.x.virtualServices {
		if vs.gateways[key] && visibleTo(vs.exportTo, export, vs.obj.Namespace, t.proxy.Namespace) {
			out = append(out, vs)
		}
	}
	return out
}

// serverHostsFor returns the server hosts that apply to a VirtualService in
// namespace ns ("ns/host" entries only apply to that namespace).
func serverHostsFor(hosts []string, gwNamespace, ns string) []string {
	var out []string
	for _, h := range hosts {
		hns, name := "*", h
		if ns, n, ok := strings.Cut(h, "/"); ok {
			hns, name = ns, n
			if hns == "." { // the Gateway's own namespace
				hns = gwNamespace
			}
		}
		if hns != "*" && hns != ns {
			continue
		}
		out = append(out, strings.ToLower(name))
	}
	return out
}

// hostSet is a server's hosts as seen from one namespace, indexed for
// intersection with VirtualService hosts.
type hostSet struct {
	exact map[string]bool
	wild  []string
	list  []string
}

func newHostSet(hosts []string) *hostSet {
	hs := &hostSet{exact: map[string]bool{}, list: hosts}
	for _, h := range hosts {
		if isWildcard(h) {
			hs.wild = append(hs.wild, h)
		} else {
			hs.exact[h] = true
		}
	}
	return hs
}

// intersect is the set of names both the server and the VirtualService
// admit, each the more specific of a matching pair.
func (hs *hostSet) intersect(vs []string) []string {
	var out []string
	for _, v := range vs {
		if !isWildcard(v) {
			if hs.exact[v] {
				out = append(out, v)
				continue
			}
			for _, w := range hs.wild {
				if hostMatches(w, v) {
					out = append(out, v)
					break
				}
			}
			continue
		}
		for _, s := range hs.list {
			if !hostMatches(s, v) {
				continue
			}
			if hostSubsetOf(v, s) {
				out = append(out, v)
			} else {
				out = append(out, s)
			}
		}
	}
	return dedupe(out)
}

type serverNS struct {
	g  *gwServer
	ns string
}

// serverHosts returns g's hosts that apply to VirtualServices in ns.
func (t *translation) serverHosts(g *gwServer, ns string) *hostSet {
	k := serverNS{g, ns}
	if hs, ok := t.hostSets[k]; ok {
		return hs
	}
	if t.hostSets == nil {
		t.hostSets = map[serverNS]*hostSet{}
	}
	hs := newHostSet(serverHostsFor(g.s.Hosts, g.gw.obj.Namespace, ns))
	t.hostSets[k] = hs
	return hs
}

func (t *translation) gatewayServerChains(g *gwServer, sniTaken map[string]string) []*chain {
	s := g.s
	key := g.gw.key
	bound := map[string]bool{key: true}
	p := parseProtocol(s.Port.Protocol)
	var out []*chain
	switch {
	case s.Tls == nil:
		// Plain TCP server: the first matching tcp route.
		if c := t.gatewayTCPChain(g, bound, nil); c != nil {
			return []*chain{c}
		}
		t.gwWarn(g, "", "no VirtualService tcp route for %s server on port %d", s.Port.Protocol, s.Port.Number)
	case s.Tls.Mode == networking.ServerTLSSettings_PASSTHROUGH:
		for _, vs := range t.vsForGateway(key) {
			if len(t.serverHosts(g, vs.obj.Namespace).intersect(vs.hosts)) == 0 {
				continue
			}
			for ri := range vs.tls {
				r := &vs.tls[ri]
				if len(r.dests) == 0 {
					continue
				}
				for mi := range r.matches {
					m := &r.matches[mi]
					if !t.gatewayL4Match(m, s, bound) {
						continue
					}
					var dups []string
					for _, h := range m.sni {
						if _, ok := sniTaken[h]; ok {
							dups = append(dups, h)
						}
					}
					if len(dups) > 0 {
						t.problems = append(t.problems, inputs.ProblemFor(inputs.SeverityWarning, vs.obj, fmt.Sprintf("spec.tls[%d]", r.index),
							"duplicate SNI host names %v on gateway port %d (already routed by %s): istiod skips this rule", dups, g.port, sniTaken[dups[0]]))
						continue
					}
					for _, h := range m.sni {
						sniTaken[h] = vs.kind
					}
					out = append(out, &chain{sniHosts: m.sni, filters: t.routeFilters(r.dests, s.Port.Number, vs),
						metadata: vs.meta, origin: vs.kind})
				}
			}
		}
	case p == protoHTTPS || p.isHTTP():
		// TLS terminated here, then HTTP routing.
		out = append(out, &chain{
			sniHosts: sniHosts(s.Hosts),
			tls:      t.downstreamTLS(g, true),
			filters:  []*listener.Filter{hcmFilter("outbound_"+listenerName(unspecifiedIP, g.port), g.routes, t.log(), true)},
			origin:   g.gw.obj.KindName(),
		})
	default:
		// TLS terminated here, then a tcp route.
		if c := t.gatewayTCPChain(g, bound, t.downstreamTLS(g, false)); c != nil {
			c.sniHosts = sniHosts(s.Hosts)
			return []*chain{c}
		}
		t.gwWarn(g, "", "no VirtualService tcp route for TLS server on port %d", s.Port.Number)
	}
	return out
}

// gatewayTCPChain is the chain of the first tcp route bound to the server.
func (t *translation) gatewayTCPChain(g *gwServer, bound map[string]bool, tls *tlsv3.DownstreamTlsContext) *chain {
	for _, vs := range t.vsForGateway(g.gw.key) {
		if len(t.serverHosts(g, vs.obj.Namespace).intersect(vs.hosts)) == 0 {
			continue
		}
		for ri := range vs.tcp {
			r := &vs.tcp[ri]
			if len(r.dests) == 0 {
				continue
			}
			ok := len(r.matches) == 0
			for mi := range r.matches {
				if t.gatewayL4Match(&r.matches[mi], g.s, bound) {
					ok = true
					break
				}
			}
			if ok {
				return &chain{tls: tls, filters: t.routeFilters(r.dests, g.s.Port.Number, vs), metadata: vs.meta, origin: vs.kind}
			}
		}
	}
	return nil
}

// gatewayL4Match is istiod's l4SingleMatch: port and gateways only.
func (t *translation) gatewayL4Match(m *l4Match, s *networking.Server, bound map[string]bool) bool {
	if m.port != 0 && m.port != s.Port.Number {
		return false
	}
	if len(m.gateways) == 0 {
		return true
	}
	for _, g := range m.gateways {
		if bound[g] {
			return true
		}
	}
	return false
}

// sniHosts are a server's hosts without namespaces, as SNI names.
func sniHosts(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		_, name := splitNamespacedHost(h, "")
		out = append(out, strings.ToLower(name))
	}
	sort.Strings(out)
	return dedupe(out)
}

func (t *translation) downstreamTLS(g *gwServer, http bool) *tlsv3.DownstreamTlsContext {
	st := g.s.Tls
	common := &tlsv3.CommonTlsContext{}
	if http {
		common.AlpnProtocols = []string{"h2", "http/1.1"}
	}
	if st.CredentialName != "" || len(st.CredentialNames) > 0 {
		names := st.CredentialNames
		if len(names) == 0 {
			names = []string{st.CredentialName}
		}
		for _, n := range names {
			common.TlsCertificateSdsSecretConfigs = append(common.TlsCertificateSdsSecretConfigs, sdsSecret("kubernetes://"+n))
		}
		if st.Mode == networking.ServerTLSSettings_MUTUAL {
			common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sdsSecret("kubernetes://" + names[0] + "-cacert"),
			}
		}
		t.gwWarn(g, ".tls.credentialName", "credentialName is served by SDS, which chokepoint does not serve yet: the listener waits for the secret (use serverCertificate/privateKey files)")
	} else {
		common.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: fileSource(st.ServerCertificate),
			PrivateKey:       fileSource(st.PrivateKey),
		}}
		if st.Mode == networking.ServerTLSSettings_MUTUAL {
			vc := &tlsv3.CertificateValidationContext{TrustedCa: fileSource(st.CaCertificates)}
			for _, san := range st.SubjectAltNames {
				vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
					SanType: tlsv3.SubjectAltNameMatcher_DNS,
					Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: san}},
				})
			}
			common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
	}
	if st.MinProtocolVersion != networking.ServerTLSSettings_TLS_AUTO || st.MaxProtocolVersion != networking.ServerTLSSettings_TLS_AUTO {
		common.TlsParams = &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: tlsVersion(st.MinProtocolVersion),
			TlsMaximumProtocolVersion: tlsVersion(st.MaxProtocolVersion),
			CipherSuites:              st.CipherSuites,
		}
	}
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: common}
	if st.Mode == networking.ServerTLSSettings_MUTUAL {
		ctx.RequireClientCertificate = wrapperspb.Bool(true)
	}
	return ctx
}

func tlsVersion(v networking.ServerTLSSettings_TLSProtocol) tlsv3.TlsParameters_TlsProtocol {
	switch v {
	case networking.ServerTLSSettings_TLSV1_0:
		return tlsv3.TlsParameters_TLSv1_0
	case networking.ServerTLSSettings_TLSV1_1:
		return tlsv3.TlsParameters_TLSv1_1
	case networking.ServerTLSSettings_TLSV1_2:
		return tlsv3.TlsParameters_TLSv1_2
	case networking.ServerTLSSettings_TLSV1_3:
		return tlsv3.TlsParameters_TLSv1_3
	}
	return tlsv3.TlsParameters_TLS_AUTO
}

// gatewayRouteConfig is istiod's buildGatewayHTTPRouteConfig: a virtual
// host per host both the server and a bound VirtualService admit, named
// with the server's own port; 404 for anything else.
func (t *translation) gatewayRouteConfig(name string, servers []*gwServer) *route.RouteConfiguration {
	vhosts := map[string]*route.VirtualHost{}
	var order []string
	for _, g := range servers {
		port := g.s.Port.Number
		bound := map[string]bool{g.gw.key: true}
		redirect := g.s.Tls != nil && g.s.Tls.HttpsRedirect
		for _, vs := range t.vsForGateway(g.gw.key) {
			hosts := t.serverHosts(g, vs.obj.Namespace).intersect(vs.hosts)
			if len(hosts) == 0 || len(vs.spec.Http) == 0 {
				continue
			}
			routes := t.httpRoutes_(vs, port, bound)
			for _, h := range hosts {
				vh, ok := vhosts[h]
				if !ok {
					vh = &route.VirtualHost{Name: h + ":" + strconv.FormatUint(uint64(port), 10), Domains: []string{h}}
					vhosts[h] = vh
					order = append(order, h)
				}
				vh.Routes = append(vh.Routes, routes...)
				if redirect {
					vh.RequireTls = route.VirtualHost_ALL
				}
			}
		}
		if redirect {
			for _, h := range serverHostsFor(g.s.Hosts, g.gw.obj.Namespace, "*") {
				if vh, ok := vhosts[h]; ok {
					vh.RequireTls = route.VirtualHost_ALL
					continue
				}
				vhosts[h] = &route.VirtualHost{Name: h + ":" + strconv.FormatUint(uint64(port), 10), Domains: []string{h}, RequireTls: route.VirtualHost_ALL}
				order = append(order, h)
			}
		}
	}
	rc := &route.RouteConfiguration{
		Name:                           name,
		ValidateClusters:               wrapperspb.Bool(false),
		MaxDirectResponseBodySizeBytes: wrapperspb.UInt32(maxDirectResponseBody),
		IgnorePortInHostMatching:       true,
	}
	if len(order) == 0 {
		rc.VirtualHosts = []*route.VirtualHost{{Name: "blackhole:" + strconv.FormatUint(uint64(servers[0].s.Port.Number), 10), Domains: []string{"*"}}}
		return rc
	}
	sort.Strings(order)
	for _, h := range order {
		rc.VirtualHosts = append(rc.VirtualHosts, vhosts[h])
	}
	return rc
}
