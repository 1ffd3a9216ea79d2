// Package server runs the xDS gRPC server (ADS in State-of-the-World and
// Delta, plus the per-type services) and the admin HTTP server.
//
// server knows nothing about Istio: it serves whatever cache and admin
// handlers it is given, and must never parse Istio YAML.
package server
