// Package kubernetes holds the tests of the manifests in this directory:
// chokepoint as a read-only shadow control plane next to istiod, and a
// shadow sidecar that asks it for a real pod's config. See README.md.
package kubernetes
