// Package watch turns configuration sources into inputs.Inputs values.
//
// The file source reads files and directories of multi-document YAML (or
// JSON) exactly as a user would `kubectl apply` them, decodes every document
// into the istio.io/client-go or k8s.io/api type of its kind, and remembers
// the file and document each object came from. A document that cannot be
// read becomes an inputs.Problem naming the file, document, object and field;
// it never stops the rest of the input from loading.
//
// The Kubernetes source (KubeSource) reads the same kinds from an API server
// through client-go informers, remembering each object's resourceVersion. It
// produces nothing until every informer has synced, and nothing while the
// API server is away, so a proxy is never given a config built from part of
// the cluster.
//
// watch must never translate, and the Kubernetes source must never write to
// the cluster: it only lists and watches.
package watch
