package analyze

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/translate"
)

// vsInfo is a VirtualService with its names resolved.
type vsInfo struct {
	obj      *inputs.VirtualService
	hosts    []string // fully qualified, lower case
	gateways []string // resolved spec.gateways ("mesh" when empty)
	bound    map[string]bool
	rules    []*ruleInfo
}

// ruleInfo is one tls, tcp or http rule: where it applies and where it
// sends traffic.
type ruleInfo struct {
	kind  string // tls, tcp, http
	index int
	// gateways the rule applies to: its matches' gateways, else the
	// VirtualService's, limited to those the VirtualService is bound to.
	gateways map[string]bool
	ports    []uint32 // match ports; empty when some match takes any port
	dests    []destInfo
}

func (r *ruleInfo) field() string { return fmt.Sprintf("spec.%s[%d]", r.kind, r.index) }

func (r *ruleInfo) onPort(n uint32) bool {
	if len(r.ports) == 0 {
		return true
	}
	for _, p := range r.ports {
		if p == n {
			return true
		}
	}
	return false
}

type destInfo struct {
	field  string // up to ".destination"
	host   string
	port   uint32
	subset string
}

func (a *analyzer) newVSInfo(vs *inputs.VirtualService) *vsInfo {
	v := &vsInfo{obj: vs, bound: map[string]bool{}}
	for _, h := range vs.Spec.Hosts {
		v.hosts = append(v.hosts, translate.FQDN(h, vs.Namespace))
	}
	for _, g := range vs.Spec.Gateways {
		v.gateways = append(v.gateways, gatewayKey(g, vs.Namespace))
	}
	if len(v.gateways) == 0 {
		v.gateways = []string{meshGateway}
	}
	for _, g := range v.gateways {
		v.bound[g] = true
	}
	type match struct {
		gateways []string
		port     uint32
	}
	add := func(kind string, i int, ms []match, routes []*networking.RouteDestination, httpRoutes []*networking.HTTPRouteDestination) {
		r := &ruleInfo{kind: kind, index: i, gateways: map[string]bool{}}
		anyPort := len(ms) == 0
		for _, m := range ms {
			gws := m.gateways
			if len(gws) == 0 {
				gws = vs.Spec.Gateways
				if len(gws) == 0 {
					gws = []string{meshGateway}
				}
			}
			for _, g := range gws {
				if k := gatewayKey(g, vs.Namespace); v.bound[k] {
					r.gateways[k] = true
				}
			}
			if m.port == 0 {
				anyPort = true
			} else {
				r.ports = append(r.ports, m.port)
			}
		}
		if len(ms) == 0 {
			for _, g := range v.gateways {
				r.gateways[g] = true
			}
		}
		if anyPort {
			r.ports = nil
		}
		dest := func(j int, d *networking.Destination) {
			if d == nil || d.Host == "" {
				return
			}
			di := destInfo{field: fmt.Sprintf("spec.%s[%d].route[%d].destination", kind, i, j),
				host: translate.FQDN(d.Host, vs.Namespace), subset: d.Subset}
			if d.Port != nil {
				di.port = d.Port.Number
			}
			r.dests = append(r.dests, di)
		}
		for j, rd := range routes {
			dest(j, rd.Destination)
		}
		for j, rd := range httpRoutes {
			dest(j, rd.Destination)
		}
		v.rules = append(v.rules, r)
	}
	for i, r := range vs.Spec.Tls {
		var ms []match
		for _, m := range r.Match {
			ms = append(ms, match{m.Gateways, m.Port})
		}
		add("tls", i, ms, r.Route, nil)
	}
	for i, r := range vs.Spec.Tcp {
		var ms []match
		for _, m := range r.Match {
			ms = append(ms, match{m.Gateways, m.Port})
		}
		add("tcp", i, ms, r.Route, nil)
	}
	for i, r := range vs.Spec.Http {
		var ms []match
		for _, m := range r.Match {
			ms = append(ms, match{m.Gateways, m.Port})
		}
		add("http", i, ms, nil, r.Route)
	}
	return v
}

// meshApplied reports whether sidecars use the VirtualService: one of its
// hosts reaches a registry entry.
func (a *analyzer) meshApplied(v *vsInfo) bool {
	for _, h := range v.hosts {
		if len(a.covering(h)) > 0 {
			return true
		}
	}
	return false
}

func (a *analyzer) virtualServices() {
	for _, v := range a.vss {
		a.vsGateways(v)
		a.vsMatchGateways(v)
		reported := a.vsDestinations(v)
		a.vsHostsInRegistry(v, reported)
		a.vsSNIHosts(v)
		a.vsHTTPOnTLS(v)
		a.vsGatewayHop(v)
	}
	a.meshHostConflicts()
}

// vsGateways: spec.gateways that name no Gateway (IST0101) or a Gateway
// whose servers admit none of the hosts (IST0132).
func (a *analyzer) vsGateways(v *vsInfo) {
	for i, g := range v.obj.Spec.Gateways {
		k := gatewayKey(g, v.obj.Namespace)
		if k == meshGateway {
			continue
		}
		field := fmt.Sprintf("spec.gateways[%d]", i)
		gw := a.gws[k]
		if gw == nil {
			hint := ""
			_, name, _ := strings.Cut(k, "/")
			var elsewhere []string
			for key := range a.gws {
				if strings.HasSuffix(key, "/"+name) {
					elsewhere = append(elsewhere, key)
				}
			}
			sort.Strings(elsewhere)
			if len(elsewhere) > 0 {
				hint = fmt.Sprintf("; a Gateway of that name exists as %s: name it with its namespace", strings.Join(elsewhere, ", "))
			}
			a.report(ReferencedResourceNotFound, Error, v.obj, field,
				"No gateway proxy gets this VirtualService's routes for that gateway: connections sent to the gateway for these hosts are closed (TLS/TCP, curl 000) or answered 404 (HTTP), with no error anywhere.",
				"Referenced gateway not found: %q (Gateway %s)%s", g, k, hint)
			continue
		}
		admitted := false
		for _, s := range gw.Spec.Servers {
			if a.serverHostSet(gw, s, v.obj.Namespace).MatchesAny(v.hosts) {
				admitted = true
				break
			}
		}
		if !admitted {
			var all []string
			for _, s := range gw.Spec.Servers {
				all = append(all, a.serverHostSet(gw, s, v.obj.Namespace).Hosts()...)
			}
			a.report(VirtualServiceHostNotFoundInGateway, Warning, v.obj, field,
				"The gateway ignores this VirtualService: it builds no filter chain or virtual host from it, so TLS connections for these hosts are closed and HTTP requests get 404.",
				"none of the hosts %s is among the hosts of Gateway %s %s", quoteList(v.obj.Spec.Hosts), k, quoteList(dedupe(all)))
		}
	}
}

// vsMatchGateways: match gateways the VirtualService is not bound to.
func (a *analyzer) vsMatchGateways(v *vsInfo) {
	check := func(field string, gws []string) {
		for k, g := range gws {
			if key := gatewayKey(g, v.obj.Namespace); !v.bound[key] {
				a.report(MatchGatewayNotBound, Warning, v.obj, fmt.Sprintf("%s.gateways[%d]", field, k),
					"istiod only reads a VirtualService's matches for the gateways in spec.gateways: this match never applies to "+g+", and traffic there is not routed by this rule.",
					"match gateway %q is not in spec.gateways %s", g, quoteList(v.gatewaysSpec()))
			}
		}
	}
	for i, r := range v.obj.Spec.Tls {
		for j, m := range r.Match {
			check(fmt.Sprintf("spec.tls[%d].match[%d]", i, j), m.Gateways)
		}
	}
	for i, r := range v.obj.Spec.Tcp {
		for j, m := range r.Match {
			check(fmt.Sprintf("spec.tcp[%d].match[%d]", i, j), m.Gateways)
		}
	}
	for i, r := range v.obj.Spec.Http {
		for j, m := range r.Match {
			check(fmt.Sprintf("spec.http[%d].match[%d]", i, j), m.Gateways)
		}
	}
}

func (v *vsInfo) gatewaysSpec() []string {
	if len(v.obj.Spec.Gateways) == 0 {
		return []string{meshGateway + " (default)"}
	}
	return v.obj.Spec.Gateways
}

// ruleOnGateways reports whether the rule applies to an existing Gateway
// (not the mesh).
func (a *analyzer) ruleOnGateways(r *ruleInfo) bool {
	for g := range r.gateways {
		if g != meshGateway && a.gws[g] != nil {
			return true
		}
	}
	return false
}

// destPort is the port the destination's cluster is named with, when it can
// be told.
func (a *analyzer) destPort(d destInfo, r *ruleInfo) uint32 {
	if d.port != 0 {
		return d.port
	}
	if svcs := a.byHost[d.host]; len(svcs) > 0 && len(svcs[0].ports) == 1 {
		return svcs[0].ports[0].number
	}
	if len(r.ports) == 1 {
		return r.ports[0]
	}
	return 0
}

// vsDestinations checks every route destination: host in the registry
// (IST0101, level by outbound policy for mesh routes the sidecar never
// applies), its port, its subset. It returns the hosts whose absence it
// reported in the outbound policy's terms.
func (a *analyzer) vsDestinations(v *vsInfo) map[string]bool {
	reported := map[string]bool{}
	applied := a.meshApplied(v)
	pol := a.policyFor(v.obj.Namespace)
	port80 := a.httpPort80()
	for _, r := range v.rules {
		// istiod also makes port 80 virtual hosts for VirtualService hosts
		// that name no service, so http rules apply there.
		ruleApplied := applied || (r.kind == "http" && port80 && r.onPort(80))
		for _, d := range r.dests {
			port := a.destPort(d, r)
			if port == 0 && !applied && ruleApplied {
				port = 80
			}
			cluster := clusterName(port, d.subset, d.host)
			if !a.registered(d.host) {
				msg := fmt.Sprintf("destination host %s is not in the registry (no ServiceEntry or Service)", d.host)
				if ws := a.wildcardFor(d.host); len(ws) > 0 {
					msg += fmt.Sprintf("; %s defines the wildcard %s, but a route destination needs a ServiceEntry host of its own (clusters are named by exact host)", ws[0].obj.KindName(), ws[0].host)
				}
				switch {
				case a.ruleOnGateways(r):
					a.report(ReferencedResourceNotFound, Error, v.obj, d.field+".host",
						fmt.Sprintf("The gateway has no cluster %s: connections it routes there are closed (TLS/TCP, curl 000) or answered 503 (HTTP), whatever the outbound traffic policy.", cluster),
						"%s", msg)
				case !r.gateways[meshGateway]:
				case ruleApplied:
					a.report(ReferencedResourceNotFound, Error, v.obj, d.field+".host",
						fmt.Sprintf("Sidecars route matching traffic to cluster %s, which does not exist: connections are reset (curl 000) or answered 503, whatever the outbound traffic policy.", cluster),
						"%s", msg)
				case pol.registryOnly:
					reported[d.host] = true
					a.report(ReferencedResourceNotFound, Error, v.obj, d.field+".host",
						fmt.Sprintf("No sidecar listener applies this rule (nothing registers %[2]s), and under %[1]s calls to %[2]s are blackholed: TLS connections are reset (curl 000), plain HTTP gets 502.", pol, d.host),
						"%s", msg)
				default:
					reported[d.host] = true
					a.report(ReferencedResourceNotFound, Warning, v.obj, d.field+".host",
						fmt.Sprintf("No sidecar listener applies this rule (nothing registers %[2]s); under %[1]s calls to %[2]s leave directly through PassthroughCluster: they work, but the rule is never applied and the traffic bypasses any egress gateway.", pol, d.host),
						"%s", msg)
				}
				continue
			}
			svcs := a.byHost[d.host]
			if d.port != 0 && !anyHasPort(svcs, d.port) {
				a.report(ReferencedResourceNotFound, Error, v.obj, d.field+".port.number",
					fmt.Sprintf("Cluster %s does not exist: connections routed there are reset (curl 000) or answered 503.", cluster),
					"Referenced host:port not found: %s has no port %d (ports: %s)", d.host, d.port, svcs[0].portList())
			}
			if d.subset != "" {
				if ok, have := a.subsetDefined(d.host, d.subset); !ok {
					hint := ""
					if len(have) > 0 {
						hint = "; defined subsets: " + strings.Join(have, ", ")
					}
					a.report(ReferencedResourceNotFound, Error, v.obj, d.field+".subset",
						fmt.Sprintf("Cluster %s does not exist: connections routed there are reset (curl 000) or answered 503, so the traffic never reaches %s.", cluster, d.host),
						"Referenced host+subset in destinationrule not found: %s+%s%s", d.host, d.subset, hint)
				}
			}
		}
	}
	return reported
}

func anyHasPort(svcs []*service, n uint32) bool {
	for _, s := range svcs {
		if s.port(n) != nil {
			return true
		}
	}
	return false
}

// subsetDefined looks for the subset in the DestinationRules for host
// (exact, or a wildcard covering it); it also returns the subsets that are
// defined.
func (a *analyzer) subsetDefined(host, subset string) (bool, []string) {
	var have []string
	drs := a.drByHost[host]
	for _, dr := range a.drWild {
		if translate.HostSubsetOf(host, translate.FQDN(dr.Spec.Host, dr.Namespace)) {
			drs = append(drs[:len(drs):len(drs)], dr)
		}
	}
	for _, dr := range drs {
		for _, s := range dr.Spec.Subsets {
			if s.Name == subset {
				return true, nil
			}
			have = append(have, s.Name)
		}
	}
	sort.Strings(have)
	return false, dedupe(have)
}

// vsHostsInRegistry: a mesh VirtualService whose hosts reach no registry
// entry does nothing on sidecars (apart from plain HTTP on port 80, where
// istiod makes virtual hosts for such names).
func (a *analyzer) vsHostsInRegistry(v *vsInfo, reported map[string]bool) {
	if !v.bound[meshGateway] || a.meshApplied(v) {
		return
	}
	hasL4 := len(v.obj.Spec.Tls) > 0 || len(v.obj.Spec.Tcp) > 0
	if !hasL4 && a.httpPort80() {
		return
	}
	pol := a.policyFor(v.obj.Namespace)
	for i, h := range v.hosts {
		if reported[h] {
			continue
		}
		if pol.registryOnly {
			a.report(VirtualServiceHostNotInRegistry, Error, v.obj, fmt.Sprintf("spec.hosts[%d]", i),
				fmt.Sprintf("Nothing registers %[2]s, so sidecars do not apply this VirtualService to it, and under %[1]s calls to %[2]s are blackholed: TLS connections are reset (curl 000), plain HTTP gets 502.", pol, h),
				"host %s matches no ServiceEntry or Service", h)
			continue
		}
		a.report(VirtualServiceHostNotInRegistry, Warning, v.obj, fmt.Sprintf("spec.hosts[%d]", i),
			fmt.Sprintf("Nothing registers %[2]s, so sidecars do not apply this VirtualService to it; under %[1]s calls to %[2]s leave directly through PassthroughCluster: they work, but bypass this VirtualService and any egress gateway it routes to.", pol, h),
			"host %s matches no ServiceEntry or Service", h)
	}
}

// httpPort80 reports whether sidecars have an HTTP route config for port 80.
func (a *analyzer) httpPort80() bool {
	if a.port80 == nil {
		found := false
		for _, s := range a.services {
			if p := s.port(80); p != nil && (isHTTPProtocol(p.protocol) || sniffed(p.protocol)) {
				found = true
				break
			}
		}
		a.port80 = &found
	}
	return *a.port80
}

// vsSNIHosts: sniHosts outside the VirtualService's hosts (Istio's
// validation rejects those) or outside the hosts of the PASSTHROUGH server
// the rule binds to.
func (a *analyzer) vsSNIHosts(v *vsInfo) {
	for i, r := range v.obj.Spec.Tls {
		rule := v.rules[i]
		for j, m := range r.Match {
			for k, sni := range m.SniHosts {
				field := fmt.Sprintf("spec.tls[%d].match[%d].sniHosts[%d]", i, j, k)
				inVS := false
				for _, h := range v.obj.Spec.Hosts {
					if translate.HostSubsetOf(strings.ToLower(sni), strings.ToLower(h)) {
						inVS = true
						break
					}
				}
				if !inVS {
					a.report(SNIHostNotInVirtualService, Error, v.obj, field,
						fmt.Sprintf("Istio's validation rejects this VirtualService (kubectl apply fails: SNI host %q is not a compatible subset of any of the virtual service hosts), so none of its routes exist in a real mesh; chokepoint translates it anyway.", sni),
						"SNI host %s is not one of the VirtualService's hosts %s", sni, quoteList(v.obj.Spec.Hosts))
					continue
				}
				gws := m.Gateways
				if len(gws) == 0 {
					gws = v.obj.Spec.Gateways
				}
				for _, g := range gws {
					key := gatewayKey(g, v.obj.Namespace)
					gw := a.gws[key]
					if gw == nil || !rule.gateways[key] {
						continue
					}
					// The SNI is fine if any PASSTHROUGH server on the port
					// that takes this VirtualService admits it.
					var bound []translate.HostSet
					var ports []string
					admitted := false
					for _, s := range gw.Spec.Servers {
						if !isPassthrough(s) || (m.Port != 0 && m.Port != s.GetPort().GetNumber()) {
							continue
						}
						hs := a.serverHostSet(gw, s, v.obj.Namespace)
						if !hs.MatchesAny(v.hosts) {
							continue
						}
						bound = append(bound, hs)
						ports = append(ports, fmt.Sprint(s.GetPort().GetNumber()))
						if hs.Admits(strings.ToLower(sni)) {
							admitted = true
						}
					}
					if len(bound) > 0 && !admitted {
						var hosts []string
						for _, hs := range bound {
							hosts = append(hosts, hs.Hosts()...)
						}
						a.report(SNIHostNotInGatewayServer, Warning, v.obj, field,
							fmt.Sprintf("istiod does not filter passthrough SNI by the server's hosts: the gateway still opens a filter chain for %s and forwards it, so the Gateway's host list is not the allow-list it looks like.", sni),
							"SNI host %s is not among the hosts %s of the PASSTHROUGH servers of Gateway %s (port %s)", sni, quoteList(dedupe(hosts)), key, strings.Join(dedupe(ports), ", "))
					}
				}
			}
		}
	}
}

// vsHTTPOnTLS: http rules for traffic that is TLS where it is routed: a
// TLS/HTTPS registry port on sidecars (CP0007), a PASSTHROUGH server on a
// gateway (CP0008).
func (a *analyzer) vsHTTPOnTLS(v *vsInfo) {
	for _, r := range v.rules {
		if r.kind != "http" {
			continue
		}
		if r.gateways[meshGateway] {
			a.httpRuleOnSidecar(v, r)
		}
		for g := range r.gateways {
			if gw := a.gws[g]; gw != nil {
				a.httpRuleOnGateway(v, r, g, gw)
			}
		}
	}
}

func (a *analyzer) httpRuleOnSidecar(v *vsInfo, r *ruleInfo) {
	var tlsPorts []string
	httpOK := false
	var example *service
	for _, h := range v.hosts {
		for _, s := range a.covering(h) {
			for _, p := range s.ports {
				if !r.onPort(p.number) {
					continue
				}
				if isTLSProtocol(p.protocol) {
					tlsPorts = append(tlsPorts, fmt.Sprintf("%s:%d (%s)", s.host, p.number, p.protocol))
					if example == nil {
						example = s
					}
				} else if isHTTPProtocol(p.protocol) || sniffed(p.protocol) {
					httpOK = true
				}
			}
		}
	}
	if httpOK || len(tlsPorts) == 0 {
		return
	}
	tlsPorts = dedupe(tlsPorts)
	a.report(HTTPRuleForTLSPort, Warning, v.obj, r.field(),
		"Sidecars route TLS ports by SNI only and never apply this rule: the app's TLS connection goes straight to the host's own cluster (or to the outbound policy's fallback), bypassing what the rule says, such as the hop to an egress gateway.",
		"http rule for %s, declared by %s: sidecars treat the port as TLS and http rules cannot see inside TLS; use a tls rule with sniHosts",
		strings.Join(tlsPorts, ", "), example.obj.KindName())
}

func (a *analyzer) httpRuleOnGateway(v *vsInfo, r *ruleInfo, key string, gw *inputs.Gateway) {
	var passthrough []int
	for si, s := range gw.Spec.Servers {
		if !a.serverHostSet(gw, s, v.obj.Namespace).MatchesAny(v.hosts) || !r.onPort(s.GetPort().GetNumber()) {
			continue
		}
		if !isPassthrough(s) {
			return // a server where the rule does apply
		}
		passthrough = append(passthrough, si)
	}
	if len(passthrough) == 0 {
		return
	}
	for _, tr := range v.rules {
		if tr.kind == "tls" && tr.gateways[key] {
			return // routed by its tls rules; this http rule is only unused there
		}
	}
	s := gw.Spec.Servers[passthrough[0]]
	a.report(HTTPRuleForPassthroughServer, Error, v.obj, r.field(),
		"The gateway builds no filter chain from this VirtualService: every TLS connection on that server is closed (curl 000), with no error anywhere.",
		"http rule bound to Gateway %s, whose server spec.servers[%d] (port %d) is TLS PASSTHROUGH: only tls rules with sniHosts route passthrough traffic",
		key, passthrough[0], s.GetPort().GetNumber())
}

// vsGatewayHop: a mesh route to a gateway Service port whose targetPort no
// Gateway server of that workload listens on.
func (a *analyzer) vsGatewayHop(v *vsInfo) {
	for _, r := range v.rules {
		if !r.gateways[meshGateway] {
			continue
		}
		for _, d := range r.dests {
			for _, s := range a.byHost[d.host] {
				if s.kube == nil || !containsSvc(a.gwServices, s) {
					continue
				}
				gws := a.gatewaysOn(s)
				if len(gws) == 0 {
					continue
				}
				portN := a.destPort(d, r)
				p := s.port(portN)
				if p == nil || p.workloadPort() == 0 {
					continue // reported as host:port, or unknowable
				}
				target := p.workloadPort()
				svcs := a.gatewayWorkloadsAll(s)
				var listening []string
				served := false
				for _, gw := range gws {
					for _, srv := range gw.Spec.Servers {
						rp := resolvePort(srv.GetPort().GetNumber(), svcs)
						listening = append(listening, fmt.Sprintf("%d", rp))
						if rp == target {
							served = true
						}
					}
				}
				if served {
					continue
				}
				listening = dedupe(listening)
				a.report(GatewayPortNotServed, Error, v.obj, d.field+".port.number",
					fmt.Sprintf("The sidecar sends this traffic to the gateway pod's port %d, where nothing listens: connections are refused (curl 000, or 503 UF for HTTP).", target),
					"route to %s port %d (targetPort %d), but no Gateway server of that workload listens on %d (the Gateways selecting it listen on %s)",
					s.host, portN, target, target, strings.Join(listening, ", "))
			}
		}
	}
}

// gatewayWorkloadsAll lists the gateway Services in front of the same
// workload as s (same namespace, same selector).
func (a *analyzer) gatewayWorkloadsAll(s *service) []*service {
	var out []*service
	for _, o := range a.gwServices {
		if o.namespace == s.namespace && translate.FormatLabels(o.kube.Spec.Selector) == translate.FormatLabels(s.kube.Spec.Selector) {
			out = append(out, o)
		}
	}
	return out
}

func containsSvc(list []*service, s *service) bool {
	for _, o := range list {
		if o == s {
			return true
		}
	}
	return false
}

// meshHostConflicts: two mesh VirtualServices with the same host visible in
// a common namespace (IST0109).
func (a *analyzer) meshHostConflicts() {
	byHost := map[string][]*vsInfo{}
	var hosts []string
	for _, v := range a.vss {
		if !v.bound[meshGateway] {
			continue
		}
		for _, h := range dedupe(append([]string(nil), v.hosts...)) {
			if len(byHost[h]) == 0 {
				hosts = append(hosts, h)
			}
			byHost[h] = append(byHost[h], v)
		}
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		vs := byHost[h]
		for i, v := range vs {
			var others []string
			for j, o := range vs {
				if i != j && exportOverlap(v.obj, o.obj) {
					others = append(others, o.obj.KindName())
				}
			}
			if len(others) == 0 {
				continue
			}
			field := ""
			for k, vh := range v.hosts {
				if vh == h {
					field = fmt.Sprintf("spec.hosts[%d]", k)
					break
				}
			}
			a.report(ConflictingMeshGatewayVirtualServiceHosts, Error, v.obj, field,
				"Sidecars use one VirtualService per host (the oldest): the rules of the others are silently ignored for "+h+".",
				"host %s is also defined by %s, bound to the mesh too", h, strings.Join(others, ", "))
		}
	}
}

// exportOverlap reports whether two objects' exportTo lists leave a
// namespace that sees both.
func exportOverlap(a, b *inputs.VirtualService) bool {
	return scopesOverlap(exportScope(a.Spec.ExportTo, a.Namespace), exportScope(b.Spec.ExportTo, b.Namespace))
}

// exportScope is the set of namespaces an exportTo list reaches; nil means
// every namespace.
func exportScope(exportTo []string, ns string) map[string]bool {
	if len(exportTo) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, e := range exportTo {
		switch e {
		case "*":
			return nil
		case ".":
			out[ns] = true
		case "~":
		default:
			out[e] = true
		}
	}
	return out
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
