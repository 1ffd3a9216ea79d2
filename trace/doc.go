// Package trace follows one call through the generated config of every
// proxy it crosses: the sidecar's listener, filter chain, route and
// cluster, and, when that cluster is the Service of a gateway (hop 1 to
// the egress gateway), on through the gateway's own config, until the call
// leaves the mesh, is blackholed, answered, refused or closed.
//
// Each proxy is walked with sim, so a trace reports what the Envoy config
// does, not what the Istio objects meant; the Istio objects are named from
// the istio.config metadata on what they produced. The gateway a hop reaches
// is synthesised from the inputs: a router in the Service's namespace whose
// labels are the Service selector and the selectors of the Gateways that
// agree with it.
//
// The package never does I/O beyond the writer it is given; it is what
// `chokepoint trace`, /debug/trace and /debug/graph render.
package trace
