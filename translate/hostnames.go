package translate

// Exported forms of the host name rules the translator applies, for
// packages (analyze, trace) that must reason about hosts the same way.

// HostMatches reports whether two Istio host names can name the same host
// (either may be a wildcard such as *.example.com).
func HostMatches(a, b string) bool { return hostMatches(a, b) }

// HostSubsetOf reports whether every name a matches is matched by b.
func HostSubsetOf(a, b string) bool { return hostSubsetOf(a, b) }

// FQDN resolves a short host name ("reviews") relative to the namespace of
// the object that names it, as istiod does; names with a dot and wildcards
// are returned lower-cased and otherwise unchanged.
func FQDN(host, namespace string) string { return fqdn(host, namespace, "cluster.local") }

// HostSet is a list of host names (wildcards included) indexed for
// matching, as the translator binds VirtualService hosts to gateway servers.
type HostSet struct{ hs *hostSet }

// NewHostSet indexes hosts.
func NewHostSet(hosts []string) HostSet { return HostSet{newHostSet(hosts)} }

// MatchesAny reports whether some host of the set can name the same host as
// one of hosts.
func (s HostSet) MatchesAny(hosts []string) bool { return len(s.hs.intersect(hosts)) > 0 }

// Admits reports whether the set covers every name host matches.
func (s HostSet) Admits(host string) bool {
	if s.hs.exact[host] {
		return true
	}
	for _, w := range s.hs.wild {
		if hostSubsetOf(host, w) {
			return true
		}
	}
	return false
}

// Hosts are the set's hosts, as given.
func (s HostSet) Hosts() []string { return s.hs.list }

// ServerHosts are a Gateway server's hosts that apply to a VirtualService in
// namespace ns ("ns/host" entries apply to that namespace only, "./host" to
// the Gateway's), lower-cased.
func ServerHosts(hosts []string, gwNamespace, ns string) []string {
	return serverHostsFor(hosts, gwNamespace, ns)
}
