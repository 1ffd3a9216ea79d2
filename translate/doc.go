// Package translate turns Istio networking configuration into the Envoy
// resources (CDS, LDS, RDS, EDS) that istiod would send to one proxy: a
// sidecar's outbound path, or a gateway such as the mesh's egress gateway.
//
// It works in two stages. NewIndex resolves the inputs once into a registry
// shared by every proxy: services (one per ServiceEntry host and address,
// one per Kubernetes Service), their endpoints, VirtualServices with their
// hosts and gateways made fully qualified, DestinationRules by host, Gateways
// and Sidecars. Index.Translate then resolves what one proxy should do — the
// services and routes it can see, its outbound traffic policy, the gateway
// servers that select it — and renders Envoy protos from that, with istiod's
// names and topology and only upstream Envoy extensions.
//
// translate must never block, start goroutines, do I/O or keep globals: it is
// a pure function of its inputs, and its output is sorted and deterministic,
// so a change of content is a change of bytes and nothing else is.
package translate
