package translate

import "strings"

// Host names follow Istio's rules: "*" matches everything, "*.example.com"
// matches any name ending in ".example.com", other names match exactly.

func isWildcard(h string) bool { return strings.HasPrefix(h, "*") }

// hostMatches reports whether a and b can name the same host (either may be a
// wildcard), as istio's host.Name.Matches.
func hostMatches(a, b string) bool {
	if a == b {
		return true
	}
	aw, bw := isWildcard(a), isWildcard(b)
	switch {
	case aw && bw:
		if len(a) < len(b) {
			return strings.HasSuffix(b[1:], a[1:])
		}
		return strings.HasSuffix(a[1:], b[1:])
	case aw:
		return strings.HasSuffix(b, a[1:])
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return false
}

// hostSubsetOf reports whether every name a matches is matched by b, as
// istio's host.Name.SubsetOf.
func hostSubsetOf(a, b string) bool {
	if a == b {
		return true
	}
	if !isWildcard(b) {
		return false
	}
	if isWildcard(a) {
		return strings.HasSuffix(a[1:], b[1:])
	}
	return strings.HasSuffix(a, b[1:])
}

// fqdn resolves a short host name relative to the namespace of the object
// that names it, as istiod does: "reviews" in namespace default becomes
// "reviews.default.svc.cluster.local". Names with a dot and wildcards are
// taken as they are.
func fqdn(h, namespace, domainSuffix string) string {
	h = strings.ToLower(h)
	if h == "*" || strings.Contains(h, ".") || h == "" {
		return h
	}
	return h + "." + namespace + ".svc." + domainSuffix
}

// splitNamespacedHost splits "ns/host" into its parts; a host without a
// namespace gets def.
func splitNamespacedHost(h, def string) (string, string) {
	if ns, name, ok := strings.Cut(h, "/"); ok {
		if ns == "." {
			ns = def
		}
		return ns, name
	}
	return def, h
}

// altHosts are the short forms of a Kubernetes service name that resolve
// from a proxy's namespace: for reviews.default.svc.cluster.local seen from
// default.svc.cluster.local, "reviews", "reviews.default" and
// "reviews.default.svc"; from another namespace, only the last two.
func altHosts(hostname, proxyDomain string) []string {
	cd := clusterDomain(proxyDomain)
	if !strings.HasSuffix(hostname, ".svc."+cd) {
		return nil
	}
	parts := strings.Split(strings.TrimSuffix(hostname, ".svc."+cd), ".")
	if len(parts) != 2 {
		return nil
	}
	name, ns := parts[0], parts[1]
	var out []string
	if proxyDomain == ns+".svc."+cd {
		out = append(out, name)
	}
	return append(out, name+"."+ns, name+"."+ns+".svc")
}

func clusterDomain(proxyDomain string) string {
	if i := strings.Index(proxyDomain, ".svc."); i >= 0 {
		return proxyDomain[i+len(".svc."):]
	}
	return "cluster.local"
}
