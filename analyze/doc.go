// Package analyze diagnoses Istio egress configuration without running it:
// it reads the same Inputs the translator reads and reports, for each
// pitfall an egress operator meets (a Gateway that selects no gateway pod, a
// server port the gateway Service does not forward, a route to a host that
// is not in the registry, an egress gateway that ALLOW_ANY lets traffic
// bypass, http rules for TLS traffic, ...), which object and field is at
// fault and what the operator will see: usually no error at all, just
// traffic that does not flow or does not go where it should.
//
// Messages reuse istioctl analyze's IST codes where one means the same
// thing and use CP codes otherwise (see Codes). The problems the loader and
// the translator's index report are included, so nothing is hidden.
//
// analyze is pure and never fails: it reads Inputs, never files or the
// network, and its output is sorted.
package analyze
