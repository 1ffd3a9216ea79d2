package translate

import (
	"fmt"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

type listenerClass int

const (
	classTCP listenerClass = iota
	classHTTP
	classAuto
)

// outboundListener is one sidecar per-port listener being assembled, as
// istiod's outboundListenerEntry.
type outboundListener struct {
	bind  string
	port  uint32
	class listenerClass
	set   chainSet
	http  bool // has the HTTP chain
	rds   string
}

// buildSidecarListeners renders virtualOutbound and one listener per
// (address, port) of the visible services.
func (t *translation) buildSidecarListeners() {
	entries := map[string]*outboundListener{}
	for _, svc := range t.sc.services {
		for _, p := range svc.ports {
			t.addOutbound(entries, svc, p)
		}
	}
	fallback := t.fallbackCluster()
	for _, e := range entries {
		t.out.Listeners = append(t.out.Listeners, t.renderOutbound(e, fallback))
	}
	t.out.Listeners = append(t.out.Listeners, t.virtualOutbound(fallback))
}

// fallbackCluster is where traffic to unknown destinations goes.
func (t *translation) fallbackCluster() string {
	if t.sc.registryOnly {
		return BlackHoleCluster
	}
	return PassthroughCluster
}

func (t *translation) virtualOutbound(fallback string) *listener.Listener {
	port := uint32(t.x.mesh.GetProxyListenPort())
	if port == 0 {
		port = 15001
	}
	return &listener.Listener{
		Name:             VirtualOutbound,
		Address:          socketAddress(unspecifiedIP, port),
		UseOriginalDst:   wrapperspb.Bool(true),
		TrafficDirection: core.TrafficDirection_OUTBOUND,
		FilterChains: []*listener.FilterChain{
			{
				Name: voBlackholeChain,
				// Connections addressed to 15001 itself would loop.
				FilterChainMatch: &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port)},
				Filters:          []*listener.Filter{tcpProxyFilter(BlackHoleCluster, BlackHoleCluster, nil, nil)},
			},
			{
				Name:    voCatchAllChain,
				Filters: []*listener.Filter{t.tcpProxy(fallback, fallback, nil)},
			},
		},
	}
}

func classOf(p protocol) (listenerClass, bool) {
	switch {
	case p == protoUDP:
		return 0, false
	case p.isHTTP():
		return classHTTP, true
	case p.isTCP():
		return classTCP, true
	}
	return classAuto, true
}

func (t *translation) addOutbound(entries map[string]*outboundListener, svc *service, p *svcPort) {
	class, ok := classOf(p.protocol)
	if !ok {
		return
	}
	bind := unspecifiedIP
	var cidrs []string
	if class != classHTTP {
		if strings.Contains(svc.address, "/") {
			cidrs = []string{svc.address}
		} else {
			bind = svc.address
		}
	}
	key := bind + ":" + strconv.FormatUint(uint64(p.number), 10)
	cur := entries[key]
	origin := svc.kind
	newEntry := func() *outboundListener {
		e := &outboundListener{bind: bind, port: p.number, class: class}
		entries[key] = e
		return e
	}
	switch class {
	case classHTTP:
		if cur != nil {
			if cur.class != classTCP {
				return // the port's HTTP chain is shared through RDS
			}
			cur.class = classAuto
			t.addHTTPChain(cur, svc)
			return
		}
		t.addHTTPChain(newEntry(), svc)
	case classTCP:
		chains := t.tcpChains(svc, p, bind, cidrs)
		if cur == nil {
			cur = newEntry()
		} else if cur.class == classHTTP {
			cur.class = classAuto
		}
		t.mergeChains(cur, chains, origin)
	case classAuto:
		chains := t.tcpChains(svc, p, bind, cidrs)
		if cur == nil {
			cur = newEntry()
		} else if cur.class != classAuto {
			cur.class = classAuto
		}
		t.mergeChains(cur, chains, origin)
		if !cur.http {
			t.addHTTPChain(cur, svc)
		}
	}
}

func (t *translation) mergeChains(e *outboundListener, chains []*chain, origin string) {
	for _, c := range chains {
		if collided := e.set.add(c); len(collided) > 0 {
			t.problems = append(t.problems, inputs.Problem{
				Severity: inputs.SeverityWarning, Object: c.origin,
				Message: fmt.Sprintf("listener %s: filter chain match (SNI %v, CIDR %v) is already taken by %s; istiod keeps the first and ignores the rest",
					listenerName(e.bind, e.port), c.sniHosts, c.cidrs, strings.Join(collided, ", ")),
			})
		}
	}
}

// addHTTPChain adds the HCM chain that hands the port's HTTP traffic to RDS.
func (t *translation) addHTTPChain(e *outboundListener, svc *service) {
	rds := strconv.FormatUint(uint64(e.port), 10)
	if e.bind != unspecifiedIP {
		// A sniffed service on its own address gets a route config of its own.
		rds = svc.hostname + ":" + rds
	}
	e.http, e.rds = true, rds
	// Matched on the ALPNs the http_inspector sets for plain HTTP, also on
	// a service's own address: a sniffed port there has a TCP chain too.
	c := &chain{
		filters:   []*listener.Filter{hcmFilter("outbound_"+listenerName(e.bind, e.port), rds, t.log(), false)},
		origin:    svc.kind,
		alpn:      plaintextHTTPALPNs,
		transport: rawBufferTransport,
	}
	e.set.add(c)
	t.httpRoutes = append(t.httpRoutes, rds)
}

// tcpChains builds the TLS (SNI) or TCP chains of one service port: from
// the VirtualService tls/tcp routes that match it, else straight to its
// own cluster.
func (t *translation) tcpChains(svc *service, p *svcPort, bind string, cidrs []string) []*chain {
	vss := t.sc.vsForHost(svc.hostname)
	mesh := map[string]bool{meshGateway: true}
	var out []*chain
	if p.protocol.isTLS() {
		var handled []string // a handful of matches per host: a slice beats a map
		for _, vs := range vss {
			for ri := range vs.tls {
				r := &vs.tls[ri]
				if len(r.dests) == 0 {
					continue
				}
				for mi := range r.matches {
					m := &r.matches[mi]
					if !t.matchL4(m, p.number, mesh) || contains(handled, m.key) {
						continue
					}
					handled = append(handled, m.key)
					cc := cidrs
					if len(m.subnets) > 0 {
						cc = m.subnets
					}
					out = append(out, &chain{sniHosts: m.sni, cidrs: cc, filters: t.routeFilters(r.dests, p.number, vs),
						metadata: vs.meta, origin: vs.kind})
				}
			}
		}
		if len(out) > 0 {
			return out
		}
		var sni []string
		if len(cidrs) > 0 || svc.address == unspecifiedIP {
			sni = []string{svc.hostname}
		}
		name := clusterName(p.number, "", svc.hostname)
		return []*chain{{sniHosts: sni, cidrs: cidrs, filters: []*listener.Filter{t.tcpProxy(name, name, t.idleTimeout(svc.hostname))}, origin: svc.kind}}
	}
	for _, vs := range vss {
		for ri := range vs.tcp {
			r := &vs.tcp[ri]
			if len(r.dests) == 0 {
				continue
			}
			if len(r.matches) == 0 {
				return append(out, &chain{cidrs: cidrs, filters: t.routeFilters(r.dests, p.number, vs), metadata: vs.meta, origin: vs.kind})
			}
			var subnets []string
			for mi := range r.matches {
				m := &r.matches[mi]
				if !t.matchL4(m, p.number, mesh) {
					continue
				}
				if len(m.subnets) == 0 {
					return append(out, &chain{cidrs: cidrs, filters: t.routeFilters(r.dests, p.number, vs), metadata: vs.meta, origin: vs.kind})
				}
				subnets = append(subnets, m.subnets...)
			}
			if len(subnets) > 0 {
				out = append(out, &chain{cidrs: subnets, filters: t.routeFilters(r.dests, p.number, vs), metadata: vs.meta, origin: vs.kind})
				if joinSorted(subnets) == joinSorted(cidrs) {
					return out
				}
			}
		}
	}
	name := clusterName(p.number, "", svc.hostname)
	return append(out, &chain{cidrs: cidrs, filters: []*listener.Filter{t.tcpProxy(name, name, t.idleTimeout(svc.hostname))}, origin: svc.kind})
}

// matchL4 is istiod's matchTLS/matchTCP: the match's gateways, source
// labels, source namespace and port all apply to this proxy.
func (t *translation) matchL4(m *l4Match, port uint32, bound map[string]bool) bool {
	if len(m.gateways) > 0 {
		ok := false
		for _, g := range m.gateways {
			if bound[g] {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if !labelsMatch(m.labels, t.proxy.Labels) {
		return false
	}
	if m.ns != "" && m.ns != t.proxy.Namespace {
		return false
	}
	return m.port == 0 || m.port == port
}

func (t *translation) renderOutbound(e *outboundListener, fallback string) *listener.Listener {
	l := &listener.Listener{
		Name:                             listenerName(e.bind, e.port),
		Address:                          socketAddress(e.bind, e.port),
		BindToPort:                       wrapperspb.Bool(false),
		TrafficDirection:                 core.TrafficDirection_OUTBOUND,
		ContinueOnListenerFiltersTimeout: true,
		ListenerFiltersTimeout:           zeroDuration,
	}
	needTLS, needHTTP := false, false
	var matchAll *chain
	for _, c := range e.set.chains {
		if len(c.sniHosts) > 0 {
			needTLS = true
		}
		if len(c.alpn) > 0 {
			needHTTP = true
		}
		if c.matchAll() {
			matchAll = c
			continue
		}
		l.FilterChains = append(l.FilterChains, c.render())
	}
	if needTLS {
		l.ListenerFilters = append(l.ListenerFilters, tlsInspector())
	}
	if needHTTP {
		l.ListenerFilters = append(l.ListenerFilters, httpInspector())
	}
	switch {
	case matchAll != nil && len(l.FilterChains) == 0:
		l.FilterChains = []*listener.FilterChain{matchAll.render()}
	case matchAll != nil:
		l.DefaultFilterChain = matchAll.render()
	default:
		l.DefaultFilterChain = &listener.FilterChain{
			Name:             passthroughChain,
			FilterChainMatch: &listener.FilterChainMatch{},
			Filters:          []*listener.Filter{t.tcpProxy(fallback, fallback, nil)},
		}
	}
	return l
}
