package analyze

import (
	"fmt"
	"sort"
	"strings"

	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/translate"
)

// serviceEntries: one host:port with different protocols (IST0177), one
// address:port claimed with different protocols by different hosts
// (CP0005).
func (a *analyzer) serviceEntries() {
	type def struct {
		se       *inputs.ServiceEntry
		host     string
		protocol string
		portIdx  int
	}
	byHostPort := map[string][]def{}
	byAddrPort := map[string][]def{}
	var hpKeys, apKeys []string
	for _, se := range a.in.ServiceEntries {
		if a.rejected[se.KindName()] {
			continue
		}
		for pi, p := range se.Spec.Ports {
			proto := strings.ToUpper(p.Protocol)
			for _, h := range se.Spec.Hosts {
				k := fmt.Sprintf("%s:%d", strings.ToLower(h), p.Number)
				if len(byHostPort[k]) == 0 {
					hpKeys = append(hpKeys, k)
				}
				byHostPort[k] = append(byHostPort[k], def{se, strings.ToLower(h), proto, pi})
				for _, ad := range se.Spec.Addresses {
					ak := fmt.Sprintf("%s:%d", normalAddress(ad), p.Number)
					if len(byAddrPort[ak]) == 0 {
						apKeys = append(apKeys, ak)
					}
					byAddrPort[ak] = append(byAddrPort[ak], def{se, strings.ToLower(h), proto, pi})
				}
			}
		}
	}
	sort.Strings(hpKeys)
	sort.Strings(apKeys)
	for _, k := range hpKeys {
		defs := byHostPort[k]
		for i, d := range defs {
			var others []string
			for j, o := range defs {
				if i != j && o.se != d.se && o.protocol != d.protocol && seExportOverlap(d.se, o.se) {
					others = append(others, fmt.Sprintf("%s (%s)", o.se.KindName(), protoName(o.protocol)))
				}
			}
			if len(others) == 0 {
				continue
			}
			a.report(ConflictingServiceEntryProtocol, Warning, d.se, "spec.hosts",
				fmt.Sprintf("Sidecars get one listener and one cluster for %s: istiod keeps the oldest definition (a Kubernetes Service first, the client's own namespace first) and ignores the others, so clients speaking the other protocol fail (TLS on a plain HTTP port: curl (35) SSL error; HTTP on an SNI-routed port: connection reset).", k),
				"host %s port %d is %s here and also defined by %s", d.host, d.se.Spec.Ports[d.portIdx].Number, protoName(d.protocol), strings.Join(dedupe(others), ", "))
		}
	}
	for _, k := range apKeys {
		defs := byAddrPort[k]
		for i, d := range defs {
			var others []string
			consequence := ""
			for j, o := range defs {
				if i == j || o.se == d.se || o.host == d.host || !seExportOverlap(d.se, o.se) {
					continue
				}
				dc, oc := protoClass(d.protocol), protoClass(o.protocol)
				switch {
				case dc == "http" && oc != "http":
					consequence = fmt.Sprintf("Sidecars serve HTTP on 0.0.0.0_%[2]s, but connections to %[1]s hit the more specific listener %[3]s, which belongs to %[4]s: requests for %[5]s go to %[4]s's cluster and its HTTP routes never see them.", k, portOf(k), listenerOf(k), o.host, d.host)
				case dc != "http" && oc == "http":
					consequence = fmt.Sprintf("Listener %[1]s sends every connection to %[2]s to this host's cluster, including the HTTP requests meant for %[3]s, whose routes never see them.", listenerOf(k), k, o.host)
				case dc == "tcp" && oc == "tcp":
					consequence = fmt.Sprintf("Listener %s holds one plain TCP chain: istiod keeps one of these hosts, and connections for both go to its cluster.", listenerOf(k))
				default:
					continue
				}
				others = append(others, fmt.Sprintf("%s for %s (%s)", o.se.KindName(), o.host, protoName(o.protocol)))
			}
			if len(others) == 0 {
				continue
			}
			a.report(ServiceEntryAddressConflict, Warning, d.se, fmt.Sprintf("spec.ports[%d]", d.portIdx), consequence,
				"address and port %s (host %s, %s) are also claimed by %s", k, d.host, protoName(d.protocol), strings.Join(dedupe(others), ", "))
		}
	}
}

func listenerOf(addrPort string) string {
	i := strings.LastIndexByte(addrPort, ':')
	return addrPort[:i] + "_" + addrPort[i+1:]
}

func portOf(addrPort string) string { return addrPort[strings.LastIndexByte(addrPort, ':')+1:] }

func protoName(p string) string {
	if p == "" {
		return "no protocol"
	}
	return p
}

// protoClass groups protocols the way an address-bound sidecar listener
// tells them apart: HTTP is served on 0.0.0.0, TLS by SNI, the rest by
// address alone.
func protoClass(p string) string {
	switch {
	case isHTTPProtocol(p):
		return "http"
	case isTLSProtocol(p):
		return "tls"
	}
	return "tcp"
}

func seExportOverlap(a, b *inputs.ServiceEntry) bool {
	return scopesOverlap(exportScope(a.Spec.ExportTo, a.Namespace), exportScope(b.Spec.ExportTo, b.Namespace))
}

// scopesOverlap reports whether some namespace is in both export scopes
// (nil is every namespace).
func scopesOverlap(a, b map[string]bool) bool {
	switch {
	case a == nil && b == nil:
		return true
	case a == nil:
		return len(b) > 0
	case b == nil:
		return len(a) > 0
	}
	for ns := range a {
		if b[ns] {
			return true
		}
	}
	return false
}

// destinationRules: a DestinationRule host that matches no registry entry
// (IST0174).
func (a *analyzer) destinationRules() {
	for _, dr := range a.in.DestinationRules {
		if a.rejected[dr.KindName()] || dr.Spec.Host == "" {
			continue
		}
		h := translate.FQDN(dr.Spec.Host, dr.Namespace)
		if len(a.covering(h)) > 0 {
			continue
		}
		a.report(UnknownDestinationRuleHost, Warning, dr, "spec.host",
			"Its traffic policy (TLS origination, connection limits, load balancing) and subsets apply to nothing: clusters exist only for registry hosts, so traffic to this host, if any, goes out unchanged.",
			"The host %s defined in the DestinationRule does not match any ServiceEntry or Service", h)
	}
}

// sidecars: egress hosts that hide a route destination (CP0010), and mesh
// routes to an egress gateway under ALLOW_ANY (CP0006).
func (a *analyzer) sidecars() {
	for _, sc := range a.in.Sidecars {
		if a.rejected[sc.KindName()] || len(sc.Spec.Egress) == 0 {
			continue
		}
		a.sidecarHides(sc)
	}
	for _, v := range a.vss {
		a.egressBypass(v)
	}
}

type egressHost struct {
	ns, host string
	listener int
}

func (a *analyzer) sidecarHides(sc *inputs.Sidecar) {
	var egress []egressHost
	for i, l := range sc.Spec.Egress {
		for _, h := range l.Hosts {
			ns, host := sc.Namespace, h
			if n, name, ok := strings.Cut(h, "/"); ok {
				ns, host = n, name
				if ns == "." {
					ns = sc.Namespace
				}
			}
			if ns != "~" {
				egress = append(egress, egressHost{ns, strings.ToLower(host), i})
			}
		}
	}
	allows := func(ns, host string) bool {
		for _, e := range egress {
			if (e.ns == "*" || e.ns == ns) && (e.host == "*" || translate.HostMatches(e.host, host)) {
				return true
			}
		}
		return false
	}
	field := "spec.egress[0].hosts"
	done := map[string]bool{}
	for _, v := range a.vss {
		if !v.bound[meshGateway] || !visible(v.obj.Spec.ExportTo, v.obj.Namespace, sc.Namespace) {
			continue
		}
		seen := false
		for _, h := range v.hosts {
			if allows(v.obj.Namespace, h) {
				seen = true
				break
			}
		}
		if !seen {
			continue
		}
		for _, r := range v.rules {
			if !r.gateways[meshGateway] {
				continue
			}
			for _, d := range r.dests {
				svcs := a.byHost[d.host]
				if len(svcs) == 0 || done[d.host] {
					continue
				}
				hidden := true
				for _, s := range svcs {
					if allows(s.namespace, s.host) {
						hidden = false
						break
					}
				}
				if !hidden {
					continue
				}
				done[d.host] = true
				a.report(SidecarHidesDestination, Error, sc, field,
					fmt.Sprintf("Workloads under this Sidecar have no cluster for %s: the route points at a missing cluster and their connections are reset (curl 000) or answered 503.", d.host),
					"egress hosts %s hide %s (%s), the destination of %s %s; add %s/* or %s/%s",
					quoteList(egressList(sc)), d.host, svcs[0].obj.KindName(), v.obj.KindName(), d.field, svcs[0].namespace, svcs[0].namespace, d.host)
			}
		}
	}
}

func egressList(sc *inputs.Sidecar) []string {
	var out []string
	for _, l := range sc.Spec.Egress {
		out = append(out, l.Hosts...)
	}
	return out
}

// visible applies exportTo (empty: every namespace).
func visible(exportTo []string, objNS, ns string) bool {
	s := exportScope(exportTo, objNS)
	return s == nil || s[ns]
}

func (a *analyzer) egressBypass(v *vsInfo) {
	pol := a.policyFor(v.obj.Namespace)
	if pol.registryOnly {
		return
	}
	for _, r := range v.rules {
		if !r.gateways[meshGateway] {
			continue
		}
		for _, d := range r.dests {
			for _, s := range a.byHost[d.host] {
				if s.kube == nil || !containsSvc(a.gwServices, s) || len(a.gatewaysOn(s)) == 0 {
					continue
				}
				a.report(EgressGatewayBypassable, Info, v.obj, d.field+".host",
					"Nothing forces traffic through the gateway: any call this VirtualService does not match (another host or port, an IP address) leaves the sidecar directly through PassthroughCluster. Set REGISTRY_ONLY (mesh config or a Sidecar) to make the gateway the only way out.",
					"routes mesh traffic to the gateway behind %s while the outbound traffic policy of namespace %s is %s", s.obj.KindName(), v.obj.Namespace, pol)
				return
			}
		}
	}
}
