// Package configdiff compares two Envoy configurations semantically: what
// chokepoint serves a proxy ("ours") against what istiod serves it
// ("theirs", from the proxy's admin /config_dump or `istioctl
// proxy-config all -o json`). It is the engine of `chokepoint diff`.
//
// Resources are matched by name and reduced to the fields that decide
// where traffic goes — listener addresses and filter chain matches (as
// sets), the network filters of each chain, route matches and actions,
// cluster discovery, load balancing, timeouts, TLS and endpoints — with
// Envoy's defaults filled in. Ordering, versions, timestamps, stat
// prefixes, access logs, tracing, metadata and istio-proxy's own
// extensions are not compared; typed configs of unknown types are kept
// opaque.
//
// It must never need the Go types of istio-proxy's extensions nor fail on
// them, and never report what only differs by encoding (snake_case or
// camelCase keys, "3s" or "3.000s", an unset field or its default).
package configdiff
