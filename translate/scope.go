package translate

import (
	"fmt"
	"sort"
	"strings"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

// scope is what one proxy can see, as istiod's SidecarScope: the services
// and VirtualServices visible from its namespace (narrowed by a Sidecar's
// egress hosts), its outbound traffic policy, and the DestinationRule for
// each host.
type scope struct {
	x     *Index
	proxy *Proxy

	// services holds the chosen service entries for each visible hostname
	// (several entries when a ServiceEntry lists several addresses), sorted
	// by hostname.
	services  []*service
	svcByHost map[string]*service
	// meshVS are the VirtualServices bound to the mesh gateway (sidecars).
	meshVS []*vsEntry
	// vsExact and vsWild index meshVS by exact host and list those with
	// wildcard hosts.
	vsExact map[string][]int
	vsWild  []int

	sidecar      *inputs.Sidecar
	registryOnly bool
	policySource string // what decided the outbound traffic policy

	drCache  map[string]*drEntry
	problems []inputs.Problem
}

type egressHost struct{ ns, host string }

func (sc *scope) warn(obj inputs.Object, field, format string, args ...any) {
	sc.problems = append(sc.problems, inputs.ProblemFor(inputs.SeverityWarning, obj, field, format, args...))
}

func (x *Index) newScope(p *Proxy) *scope {
	sc := &scope{x: x, proxy: p, svcByHost: map[string]*service{}, drCache: map[string]*drEntry{}}
	sc.sidecar = x.sidecarFor(p)
	sc.registryOnly = x.mesh.GetOutboundTrafficPolicy().GetMode() == meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY
	sc.policySource = "mesh config"
	var egress []egressHost
	if sc.sidecar != nil {
		if otp := sc.sidecar.Spec.OutboundTrafficPolicy; otp != nil {
			sc.registryOnly = otp.Mode == networking.OutboundTrafficPolicy_REGISTRY_ONLY
			sc.policySource = sc.sidecar.KindName()
			if otp.EgressProxy != nil {
				sc.warn(sc.sidecar, "spec.outboundTrafficPolicy.egressProxy", "egressProxy is not supported: unknown destinations follow the mode alone")
			}
		}
		for i, l := range sc.sidecar.Spec.Egress {
			if l.Port != nil || l.Bind != "" || l.CaptureMode != networking.CaptureMode_DEFAULT {
				sc.warn(sc.sidecar, fmt.Sprintf("spec.egress[%d]", i), "port, bind and captureMode of egress listeners are not supported: only the hosts are used")
			}
			for _, h := range l.Hosts {
				ns, host := splitNamespacedHost(h, sc.sidecar.Namespace)
				if ns == "~" {
					continue
				}
				egress = append(egress, egressHost{ns: ns, host: strings.ToLower(host)})
			}
		}
	}
	egressAllows := func(ns, host string) bool {
		if sc.sidecar == nil || len(sc.sidecar.Spec.Egress) == 0 {
			return true
		}
		for _, e := range egress {
			if e.ns != "*" && e.ns != ns {
				continue
			}
			if e.host == "*" || hostMatches(e.host, host) {
				return true
			}
		}
		return false
	}

	svcExport := x.mesh.GetDefaultServiceExportTo()
	for _, svc := range x.services {
		if !visibleTo(svc.exportTo, svcExport, svc.namespace, p.Namespace) || !egressAllows(svc.namespace, svc.hostname) {
			continue
		}
		chosen, ok := sc.svcByHost[svc.hostname]
		switch {
		case !ok:
			sc.svcByHost[svc.hostname] = svc
		case chosen.namespace != p.Namespace && svc.namespace == p.Namespace:
			// The proxy's own namespace wins over older services elsewhere.
			sc.svcByHost[svc.hostname] = svc
		}
	}
	for _, svc := range x.services {
		if chosen := sc.svcByHost[svc.hostname]; chosen != nil && chosen.source == svc.source {
			sc.services = append(sc.services, svc)
		}
	}

	vsExport := x.mesh.GetDefaultVirtualServiceExportTo()
	for _, vs := range x.virtualServices {
		if !vs.gateways[meshGateway] || !visibleTo(vs.exportTo, vsExport, vs.obj.Namespace, p.Namespace) {
			continue
		}
		if sc.sidecar != nil && len(sc.sidecar.Spec.Egress) > 0 {
			ok := false
			for _, h := range vs.hosts {
				if egressAllows(vs.obj.Namespace, h) {
					ok = true
					break
				}
			}
			if !ok {
				continue
			}
		}
		sc.meshVS = append(sc.meshVS, vs)
	}
	return sc
}

// sidecarFor picks the Sidecar that applies to a proxy: one in its namespace
// whose workloadSelector matches, else the namespace's default (no
// selector), else the root namespace's default.
func (x *Index) sidecarFor(p *Proxy) *inputs.Sidecar {
	var nsDefault, rootDefault *inputs.Sidecar
	for _, s := range x.sidecars {
		sel := s.Spec.WorkloadSelector
		switch {
		case s.Namespace == p.Namespace && sel != nil && len(sel.Labels) > 0:
			if labelsMatch(sel.Labels, p.Labels) {
				return s
			}
		case s.Namespace == p.Namespace && nsDefault == nil:
			nsDefault = s
		case s.Namespace == x.mesh.GetRootNamespace() && (sel == nil || len(sel.Labels) == 0) && rootDefault == nil:
			rootDefault = s
		}
	}
	if nsDefault != nil {
		return nsDefault
	}
	return rootDefault
}

// vsForHost lists the mesh VirtualServices with a host matching hostname,
// in the order of meshVS. Exact hosts are looked up in a map so a fleet of
// one VirtualService per host stays linear.
func (sc *scope) vsForHost(hostname string) []*vsEntry {
	if sc.vsExact == nil {
		sc.indexMeshVS()
	}
	var idx []int
	if isWildcard(hostname) {
		for i, vs := range sc.meshVS {
			for _, h := range vs.hosts {
				if hostMatches(h, hostname) {
					idx = append(idx, i)
					break
				}
			}
		}
	} else {
		idx = append(idx, sc.vsExact[hostname]...)
		for _, i := range sc.vsWild {
			for _, h := range sc.meshVS[i].hosts {
				if isWildcard(h) && hostMatches(h, hostname) {
					idx = append(idx, i)
					break
				}
			}
		}
		sort.Ints(idx)
	}
	out := make([]*vsEntry, 0, len(idx))
	last := -1
	for _, i := range idx {
		if i != last {
			out = append(out, sc.meshVS[i])
		}
		last = i
	}
	return out
}

func (sc *scope) indexMeshVS() {
	sc.vsExact = map[string][]int{}
	for i, vs := range sc.meshVS {
		wild := false
		for _, h := range vs.hosts {
			if isWildcard(h) {
				wild = true
				continue
			}
			if l := sc.vsExact[h]; len(l) == 0 || l[len(l)-1] != i {
				sc.vsExact[h] = append(l, i)
			}
		}
		if wild {
			sc.vsWild = append(sc.vsWild, i)
		}
	}
}

// destinationRule returns the DestinationRule in effect for hostname, as
// istiod picks it: visible to the proxy, the proxy's namespace first, then
// the service's, then the root namespace; the most specific host wins.
func (sc *scope) destinationRule(hostname string) *drEntry {
	if dr, ok := sc.drCache[hostname]; ok {
		return dr
	}
	x := sc.x
	cands := append([]*drEntry(nil), x.drByHost[hostname]...)
	for _, dr := range x.drWildcard {
		if hostSubsetOf(hostname, dr.host) {
			cands = append(cands, dr)
		}
	}
	svcNS := ""
	if s := sc.svcByHost[hostname]; s != nil {
		svcNS = s.namespace
	}
	rank := func(dr *drEntry) int {
		switch dr.obj.Namespace {
		case sc.proxy.Namespace:
			return 0
		case svcNS:
			return 1
		case x.mesh.GetRootNamespace():
			return 2
		}
		return 3
	}
	drExport := x.mesh.GetDefaultDestinationRuleExportTo()
	var best *drEntry
	for _, dr := range cands {
		if !visibleTo(dr.exportTo, drExport, dr.obj.Namespace, sc.proxy.Namespace) {
			continue
		}
		if dr.spec.WorkloadSelector != nil && !labelsMatch(dr.spec.WorkloadSelector.MatchLabels, sc.proxy.Labels) {
			continue
		}
		if best == nil {
			best = dr
			continue
		}
		rb, rd := rank(best), rank(dr)
		switch {
		case rd < rb:
			best = dr
		case rd == rb && moreSpecific(dr.host, best.host):
			best = dr
		case rd == rb && dr.host == best.host && inputs.Older(dr.obj, best.obj):
			best = dr
		}
	}
	sc.drCache[hostname] = best
	return best
}

func moreSpecific(a, b string) bool {
	if isWildcard(a) != isWildcard(b) {
		return !isWildcard(a)
	}
	return len(a) > len(b)
}
