// Package lab holds the tests of the network-namespace lab in this directory:
// two stock Envoys (the sleep pod's sidecar and the egress gateway) fed by
// chokepoint serve, proving the two hops of the httpbin-passthrough example.
// See README.md.
package lab
