package translate

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// chain is the resolved form of one filter chain before rendering: what it
// matches, what it does, and the Istio object that made it.
type chain struct {
	sniHosts  []string
	cidrs     []string
	alpn      []string
	transport string
	filters   []*listener.Filter
	tls       *tlsv3.DownstreamTlsContext
	metadata  *core.Metadata
	// origin names the object for conflict warnings.
	origin string
}

func (c *chain) matchAll() bool {
	return (len(c.sniHosts) == 0 || contains(c.sniHosts, "*")) && len(c.alpn) == 0 && c.transport == "" && len(c.cidrs) == 0
}

// leaves expands a chain into Envoy's matching leaves: Envoy rejects a
// listener where two chains share one (same SNI, prefix, transport, ALPN).
func (c *chain) leaves() []string {
	snis := c.sniHosts
	if len(snis) == 0 || contains(snis, "*") {
		snis = []string{""}
	}
	if len(c.cidrs) == 0 && len(c.alpn) == 0 && c.transport == "" {
		// SNI alone (the common case): the names are the keys. They cannot
		// collide with the composite keys below, which all contain "|".
		return snis
	}
	cidrs := make([]string, 0, len(c.cidrs))
	for _, s := range c.cidrs {
		if m := maskedCIDR(s); m != "" {
			cidrs = append(cidrs, m)
		}
	}
	if len(cidrs) == 0 {
		cidrs = []string{""}
	}
	alpn := c.alpn
	if len(alpn) == 0 {
		alpn = []string{""}
	}
	out := make([]string, 0, len(snis)*len(cidrs)*len(alpn))
	for _, s := range snis {
		for _, p := range cidrs {
			for _, a := range alpn {
				out = append(out, c.transport+"|"+s+"|"+p+"|"+a)
			}
		}
	}
	return out
}

func maskedCIDR(s string) string {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		if pfx.Addr().IsUnspecified() {
			return ""
		}
		return pfx.Masked().String()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.IsUnspecified() {
			return ""
		}
		return netip.PrefixFrom(a, a.BitLen()).String()
	}
	return s
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func (c *chain) toMatch() *listener.FilterChainMatch {
	if c.matchAll() {
		return nil
	}
	m := &listener.FilterChainMatch{ApplicationProtocols: c.alpn, TransportProtocol: c.transport}
	if len(c.sniHosts) > 0 && !contains(c.sniHosts, "*") {
		m.ServerNames = append([]string(nil), c.sniHosts...)
		sort.Strings(m.ServerNames)
	}
	cidrs := append([]string(nil), c.cidrs...)
	sort.Strings(cidrs)
	for _, s := range cidrs {
		if cr := cidrRange(s); cr != nil {
			m.PrefixRanges = append(m.PrefixRanges, cr)
		}
	}
	return m
}

func cidrRange(s string) *core.CidrRange {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		if pfx.Addr().IsUnspecified() {
			return nil
		}
		return &core.CidrRange{AddressPrefix: pfx.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(pfx.Bits()))}
	}
	if a, err := netip.ParseAddr(s); err == nil && !a.IsUnspecified() {
		return &core.CidrRange{AddressPrefix: a.String(), PrefixLen: wrapperspb.UInt32(uint32(a.BitLen()))}
	}
	return nil
}

func (c *chain) render() *listener.FilterChain {
	fc := &listener.FilterChain{FilterChainMatch: c.toMatch(), Filters: c.filters, Metadata: c.metadata}
	if c.tls != nil {
		fc.TransportSocket = &core.TransportSocket{Name: wellknown.TransportSocketTLS, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(c.tls)}}
		fc.TransportSocketConnectTimeout = durationpb.New(15e9)
	}
	return fc
}

// chainSet holds a listener's chains and refuses overlapping matches.
type chainSet struct {
	chains []*chain
	taken  map[string]string // leaf -> origin
}

// add appends c unless it overlaps; an overlap on some SNI names only drops
// those names. It returns the origins c collided with.
func (s *chainSet) add(c *chain) (collided []string) {
	if s.taken == nil {
		s.taken = map[string]string{}
	}
	leaves := c.leaves()
	clash := false
	for _, l := range leaves {
		if o, ok := s.taken[l]; ok {
			clash = true
			collided = append(collided, o)
		}
	}
	if clash {
		// Keep the SNI names nobody else matches, if any.
		if len(c.sniHosts) <= 1 || contains(c.sniHosts, "*") {
			return dedupe(collided)
		}
		var keep []string
		for _, sni := range c.sniHosts {
			one := *c
			one.sniHosts = []string{sni}
			free := true
			for _, l := range one.leaves() {
				if _, ok := s.taken[l]; ok {
					free = false
					break
				}
			}
			if free {
				keep = append(keep, sni)
			}
		}
		if len(keep) == 0 {
			return dedupe(collided)
		}
		trimmed := *c
		trimmed.sniHosts = keep
		c = &trimmed
		leaves = c.leaves()
	}
	for _, l := range leaves {
		s.taken[l] = c.origin
	}
	s.chains = append(s.chains, c)
	return dedupe(collided)
}

// routeFilters builds the tcp_proxy for a tcp/tls route: one cluster, or a
// weighted split.
func (t *translation) routeFilters(dests []destRef, port uint32, vs *vsEntry) []*listener.Filter {
	if len(dests) == 1 {
		name := t.destinationCluster(dests[0], port)
		return []*listener.Filter{t.tcpProxy(name, name, t.idleTimeout(dests[0].host))}
	}
	var ws []weightedCluster
	host := ""
	for _, d := range dests {
		if d.weight <= 0 {
			continue
		}
		if host == "" {
			host = d.host
		}
		ws = append(ws, weightedCluster{t.destinationCluster(d, port), uint32(d.weight)})
	}
	if len(ws) == 0 {
		name := t.destinationCluster(dests[0], port)
		return []*listener.Filter{t.tcpProxy(name, name, t.idleTimeout(dests[0].host))}
	}
	if len(ws) == 1 {
		return []*listener.Filter{t.tcpProxy(ws[0].name, ws[0].name, t.idleTimeout(host))}
	}
	return []*listener.Filter{tcpProxyWeighted(vs.obj.Name+"."+vs.obj.Namespace, ws, t.log(), t.idleTimeout(host))}
}

func (t *translation) idleTimeout(host string) *durationpb.Duration {
	if dr := t.sc.destinationRule(host); dr != nil {
		return dr.spec.GetTrafficPolicy().GetConnectionPool().GetTcp().GetIdleTimeout()
	}
	return nil
}

// destinationCluster names the cluster a route destination goes to, as
// istiod: the destination's port, else the service's only port, else the
// port the traffic arrived on.
func (t *translation) destinationCluster(d destRef, listenerPort uint32) string {
	port := listenerPort
	if d.port != 0 {
		port = d.port
	} else if svc := t.sc.svcByHost[d.host]; svc != nil && len(svc.ports) == 1 {
		port = svc.ports[0].number
	}
	return clusterName(port, d.subset, d.host)
}

func listenerName(bind string, port uint32) string {
	return bind + "_" + strconv.FormatUint(uint64(port), 10)
}

func matchGateways(gws []string, bound map[string]bool) bool {
	if len(gws) == 0 {
		return true
	}
	for _, g := range gws {
		if bound[g] {
			return true
		}
	}
	return false
}

func joinSorted(l []string) string {
	switch len(l) {
	case 0:
		return ""
	case 1:
		return l[0]
	}
	c := append([]string(nil), l...)
	sort.Strings(c)
	return strings.Join(c, ",")
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
