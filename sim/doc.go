// Package sim walks generated Envoy config the way Envoy matches a
// connection or request: listener, filter chain, network filter, route
// config, virtual host, route, cluster. It is what behaviour tests assert
// with ("a TLS call with SNI httpbin.org on 443 from this sidecar reaches
// cluster X") and the engine of `chokepoint trace`.
//
// It reads only Envoy resources, never Istio objects: what it reports is
// what the config does, not what the translator meant.
package sim
