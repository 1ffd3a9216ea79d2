// Package kubeint holds the integration tests of `serve --kube` against a
// real kube-apiserver and etcd (test/kubeenv): the seed scenarios applied to
// the API server and served over ADS, changes arriving as new versions, an
// API server outage that pushes nothing, and the shipped RBAC, missing
// permissions and a missing CRD as the real server reports them.
//
// The fake clientsets of the unit and end-to-end tests cannot show what the
// real server does: watch-list streaming, server-side defaulting and clusterIP
// allocation, RBAC's Forbidden errors, a CRD that is not served, a server that
// goes away and comes back. The tests skip when etcd or kube-apiserver is
// missing (`make kube-tools`, `apt-get install etcd-server`).
package kubeint
