// Package snapshot turns translated resources into go-control-plane
// snapshots and keeps the record of what each connected proxy was sent and
// acknowledged.
//
// Proxies with the same effective inputs (type, namespace, labels, DNS
// domain) form a proxy class and share one snapshot: the cache's NodeHash
// maps a node to its class. A snapshot is versioned per resource type by
// content hash, so a type whose content did not change is not pushed again,
// and every snapshot passes go-control-plane's consistency rule (see
// consistent) and ValidateAll() before it is set;
// a class whose new build fails keeps serving its last good snapshot.
//
// snapshot must never parse Istio YAML (that is watch) nor speak gRPC (that
// is server).
package snapshot
