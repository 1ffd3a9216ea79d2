package snapshot

import (
	"context"
	"errors"
	"sort"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// typeResponse is one resource type of a class's snapshot, ready to send:
// the Anys are built once and shared, read-only, by every stream of the
// class, so a push costs each stream a shallow response and the write to
// its connection.
type typeResponse struct {
	version string
	sorted  []string     // resource names, sorted
	all     []*anypb.Any // every resource, in sorted's order
	// wires are the resources by name, for requests by name and Delta.
	wires map[string]*wire

	// names is what every full SotW response returns (name -> version),
	// built on first use; shared and never modified.
	namesOnce sync.Once
	names     map[string]string

	// The resources as a response's resources field, encoded once for
	// every stream of the class (see withEncoded).
	sotwOnce, deltaOnce sync.Once
	sotwEnc, deltaEnc   []byte

	// diffOld → diff is the last Delta difference computed (see diffFrom).
	diffMu  sync.Mutex
	diffOld *typeResponse
	diff    *deltaDiff
}

func newTypeResponse(version string, wires map[string]*wire) *typeResponse {
	names := make([]string, 0, len(wires))
	for n := range wires {
		names = append(names, n)
	}
	sort.Strings(names)
	t := &typeResponse{version: version, sorted: names, all: make([]*anypb.Any, 0, len(names)), wires: wires}
	for _, n := range names {
		t.all = append(t.all, wires[n].any)
	}
	return t
}

// returned is the name → version map of a full response.
func (t *typeResponse) returned() map[string]string {
	t.namesOnce.Do(func() {
		t.names = make(map[string]string, len(t.sorted))
		for _, n := range t.sorted {
			t.names[n] = t.version
		}
	})
	return t.names
}

// sotwEncoded is every resource as DiscoveryResponse.resources entries.
func (t *typeResponse) sotwEncoded() []byte {
	t.sotwOnce.Do(func() {
		t.sotwEnc = encodeResources(len(t.sorted), func(i int) proto.Message { return t.all[i] })
	})
	return t.sotwEnc
}

// deltaEncoded is every resource as DeltaDiscoveryResponse.resources
// entries.
func (t *typeResponse) deltaEncoded() []byte {
	t.deltaOnce.Do(func() {
		t.deltaEnc = encodeResources(len(t.sorted), func(i int) proto.Message { return t.wires[t.sorted[i]].delta })
	})
	return t.deltaEnc
}

// versionOf is a resource's own version (its content hash), "" when t does
// not have it.
func (t *typeResponse) versionOf(n string) string {
	if w, ok := t.wires[n]; ok {
		return w.delta.Version
	}
	return ""
}

// sotwCache serves State-of-the-World watches (ADS and per-type) from the
// classes' prebuilt responses, and keeps the Delta streams of each class
// (served by DeltaServer from the same responses).
type sotwCache struct {
	mu      sync.Mutex
	classes map[string]*sotwClass
	nextID  int64
}

type sotwClass struct {
	types   map[string]*typeResponse
	watches map[int64]*sotwWatch
	deltas  map[*deltaWatch]struct{}
}

type sotwWatch struct {
	req *discovery.DiscoveryRequest
	sub cachev3.Subscription
	out chan cachev3.Response
}

func newSotwCache() *sotwCache {
	return &sotwCache{classes: map[string]*sotwClass{}}
}

func (c *sotwCache) class(key string) *sotwClass {
	cl, ok := c.classes[key]
	if !ok {
		cl = &sotwClass{types: map[string]*typeResponse{}, watches: map[int64]*sotwWatch{}, deltas: map[*deltaWatch]struct{}{}}
		c.classes[key] = cl
	}
	return cl
}

// set installs a class's responses and answers its open watches whose
// version is now stale, in xDS order (CDS, EDS, LDS, RDS).
func (c *sotwCache) set(key string, types map[string]*typeResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.class(key)
	cl.types = types
	ids := make([]int64, 0, len(cl.watches))
	for id := range cl.watches {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := cl.watches[ids[i]], cl.watches[ids[j]]
		if oa, ob := typeOrder(a.req.GetTypeUrl()), typeOrder(b.req.GetTypeUrl()); oa != ob {
			return oa < ob
		}
		return ids[i] < ids[j]
	})
	for _, id := range ids {
		w := cl.watches[id]
		if c.tryRespond(cl, w) {
			delete(cl.watches, id)
		}
	}
	for w := range cl.deltas {
		w.notify()
	}
}

// clear forgets a class that has no streams left.
func (c *sotwCache) clear(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.classes[key]; ok && len(cl.watches) == 0 && len(cl.deltas) == 0 {
		delete(c.classes, key)
	}
}

func typeOrder(typeURL string) int {
	switch shortType(typeURL) {
	case "cds":
		return 0
	case "eds":
		return 1
	case "lds":
		return 2
	case "rds":
		return 3
	}
	return 4
}

// tryRespond answers w if the class has something new for it: a version
// other than the one the request holds, or a requested name it was not
// sent yet. Requests by name wait until every name exists (ADS
// consistency).
func (c *sotwCache) tryRespond(cl *sotwClass, w *sotwWatch) bool {
	t, ok := cl.types[w.req.GetTypeUrl()]
	if !ok {
		return false
	}
	var resources []*anypb.Any
	var encoded []byte
	returned := t.returned()
	if w.sub.IsWildcard() {
		if w.req.GetVersionInfo() == t.version && !newNames(returned, w.sub.ReturnedResources()) {
			return false
		}
		resources, encoded = t.all, t.sotwEncoded()
	} else {
		subscribed := w.sub.SubscribedResources()
		fresh := w.req.GetVersionInfo() != t.version
		names := make([]string, 0, len(subscribed))
		for n := range subscribed {
			if _, ok := t.wires[n]; !ok {
				return false // not all there yet
			}
			if _, known := w.sub.ReturnedResources()[n]; !known {
				fresh = true
			}
			names = append(names, n)
		}
		if !fresh {
			return false
		}
		sort.Strings(names)
		returned = make(map[string]string, len(names))
		for _, n := range names {
			resources = append(resources, t.wires[n].any)
			returned[n] = t.version
		}
	}
	select {
	case w.out <- &sotwResponse{req: w.req, version: t.version, resources: resources, encoded: encoded, returned: returned}:
		return true
	default:
		// The stream's channel is full: it is behind; it re-requests after
		// reading, and gets the newest version then.
		return false
	}
}

func newNames(all, known map[string]string) bool {
	if len(known) < len(all) {
		return true
	}
	for n := range all {
		if _, ok := known[n]; !ok {
			return true
		}
	}
	return false
}

// CreateWatch answers at once when it can, else keeps the watch until the
// class's next snapshot.
func (c *sotwCache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, out chan cachev3.Response) (func(), error) {
	key := classHash{}.ID(req.GetNode())
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.class(key)
	w := &sotwWatch{req: req, sub: sub, out: out}
	if c.tryRespond(cl, w) {
		return func() {}, nil
	}
	c.nextID++
	id := c.nextID
	cl.watches[id] = w
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if cl, ok := c.classes[key]; ok {
			delete(cl.watches, id)
		}
	}, nil
}

// CreateDeltaWatch is not used: DeltaServer serves Delta streams.
func (c *sotwCache) CreateDeltaWatch(*cachev3.DeltaRequest, cachev3.Subscription, chan cachev3.DeltaResponse) (func(), error) {
	return nil, errors.New("delta watches are served by snapshot.DeltaServer")
}

// Fetch (REST xDS) is not served.
func (c *sotwCache) Fetch(context.Context, *cachev3.Request) (cachev3.Response, error) {
	return nil, errors.New("REST xDS is not served: use ADS over gRPC")
}

// sotwResponse shares its resources; each stream gets its own
// DiscoveryResponse (the server sets the nonce on it).
type sotwResponse struct {
	req       *discovery.DiscoveryRequest
	version   string
	resources []*anypb.Any
	// encoded, when set, is resources already in wire form: see
	// withEncoded.
	encoded  []byte
	returned map[string]string
}

func (r *sotwResponse) GetDiscoveryResponse() (*discovery.DiscoveryResponse, error) {
	if r.encoded != nil {
		resp := &discovery.DiscoveryResponse{VersionInfo: r.version, TypeUrl: r.req.GetTypeUrl()}
		withEncoded(resp, r.encoded)
		return resp, nil
	}
	return &discovery.DiscoveryResponse{VersionInfo: r.version, Resources: r.resources, TypeUrl: r.req.GetTypeUrl()}, nil
}
func (r *sotwResponse) GetRequest() *discovery.DiscoveryRequest { return r.req }
func (r *sotwResponse) GetVersion() (string, error)             { return r.version, nil }
func (r *sotwResponse) GetResponseVersion() string              { return r.version }
func (r *sotwResponse) GetReturnedResources() map[string]string { return r.returned }
func (r *sotwResponse) GetContext() context.Context             { return context.Background() }
