// Package watch turns configuration sources into inputs.Inputs values.
//
// The file source reads files and directories of multi-document YAML (or
// JSON) exactly as a user would `kubectl apply` them, decodes every document
// into the istio.io/client-go or k8s.io/api type of its kind, and remembers
// the file and document each object came from. A document that cannot be
// read becomes an inputs.Problem naming the file, document, object and field;
// it never stops the rest of the input from loading.
//
// watch must never translate: it only produces inputs.
package watch
