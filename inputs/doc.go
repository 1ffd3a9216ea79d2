// Package inputs defines the one value every producer of configuration (the
// file loader, the Kubernetes informers) builds and every consumer (the
// translator, analyze, trace, serve) reads: the Istio networking objects, the
// Kubernetes objects they refer to and the mesh config, each remembering where
// it came from.
//
// An Inputs value is treated as immutable once built: producers make a new one
// for every change, so readers never lock.
package inputs
