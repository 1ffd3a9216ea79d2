package snapshot

import (
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// deltaSnapshot is a class's snapshot as the snapshot cache serves it to
// Delta streams. go-control-plane's Snapshot.GetResources copies the type's
// resources into a new map on every call, and the cache calls it for every
// delta watch it answers or opens: once per stream per type on each
// snapshot, and again on each ACK. The map is built once here; the cache
// only reads it.
type deltaSnapshot struct {
	*cachev3.Snapshot
	resources map[string]map[string]types.Resource // type URL -> name -> resource
}

func newDeltaSnapshot(s *cachev3.Snapshot) *deltaSnapshot {
	d := &deltaSnapshot{Snapshot: s, resources: map[string]map[string]types.Resource{}}
	for _, url := range typeURLs {
		d.resources[url] = s.GetResources(url)
	}
	return d
}

// GetResources returns the shared, read-only map of the type's resources.
func (d *deltaSnapshot) GetResources(typeURL string) map[string]types.Resource {
	if r, ok := d.resources[typeURL]; ok {
		return r
	}
	return d.Snapshot.GetResources(typeURL)
}
