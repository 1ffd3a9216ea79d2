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
