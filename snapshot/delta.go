package snapshot

import (
	"context"
	"errors"
	"io"
	"sort"
	"strconv"
	"sync/atomic"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	xdsstream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Delta (incremental) xDS is served here rather than by go-control-plane's
// delta cache. That cache keeps a name→version map per stream and type and
// rebuilds and compares it against the snapshot on every push and on every
// ACK, which costs O(resources) per stream: with 5,000 clusters and a
// thousand proxies, a one-cluster edit compares five million entries.
//
// Here a stream remembers which of its class's prebuilt type responses the
// proxy holds (base). A push computes the difference between two versions
// of a class's type once (typeResponse.diffFrom, cached), and every stream
// of the class that held the old version sends that same list of changed
// resources; an ACK costs nothing. A stream falls back to a per-name
// comparison only when its state is not a class version (the first
// request, a reconnect with initial_resource_versions, a change of
// subscription).

// deltaIDBase keeps Delta stream IDs apart from the SotW server's, which
// count from 1 in the same Status records.
const deltaIDBase = 1 << 40

// deltaDiff is what changed between two versions of a class's type.
type deltaDiff struct {
	changed []*discovery.Resource // sorted by name
	removed []string
}

// diffFrom returns the change from old to t, computed once per pair.
func (t *typeResponse) diffFrom(old *typeResponse) *deltaDiff {
	t.diffMu.Lock()
	defer t.diffMu.Unlock()
	if t.diffOld == old && t.diff != nil {
		return t.diff
	}
	d := &deltaDiff{}
	for _, n := range t.sorted {
		if w := t.wires[n]; old.versionOf(n) != w.delta.Version {
			d.changed = append(d.changed, w.delta)
		}
	}
	for n := range old.wires {
		if _, ok := t.wires[n]; !ok {
			d.removed = append(d.removed, n)
		}
	}
	sort.Strings(d.removed)
	t.diffOld, t.diff = old, d
	return d
}

// DeltaServer serves Delta ADS and the per-type Delta services from the
// classes' prebuilt responses, with the same callbacks as the SotW server.
type DeltaServer struct {
	ctx   context.Context
	c     *sotwCache
	cb    serverv3.Callbacks
	count atomic.Int64
}

// DeltaServer returns the Delta handler for this manager's classes.
func (m *Manager) DeltaServer(ctx context.Context, cb serverv3.Callbacks) *DeltaServer {
	return &DeltaServer{ctx: ctx, c: m.sotw, cb: cb}
}

// deltaSub is one type's subscription on a stream and what the proxy holds.
type deltaSub struct {
	// wildcard: every resource of the type. A first request that names
	// nothing is a wildcard that later names do not end (xDS's legacy
	// wildcard); only unsubscribing "*" does.
	wildcard bool
	names    map[string]struct{}
	// base is the class version the proxy holds (restricted to the
	// subscription); when nil, known says what it holds, name → version.
	base  *typeResponse
	known map[string]string
	// added are names subscribed since the last response, to send even
	// when base is current.
	added []string
	// first is set until the type's first response: it is sent even when
	// empty, so the proxy finishes initialising.
	first bool
}

func (s *deltaSub) wants(n string) bool {
	if s.wildcard {
		return true
	}
	_, ok := s.names[n]
	return ok
}

// update applies a request's subscribe and unsubscribe lists.
func (s *deltaSub) update(sub, unsub []string) {
	for _, n := range sub {
		if n == "*" {
			if !s.wildcard {
				s.wildcard = true
				s.materialise()
			}
			continue
		}
		if _, ok := s.names[n]; !ok {
			s.names[n] = struct{}{}
			s.added = append(s.added, n)
		}
	}
	for _, n := range unsub {
		if n == "*" {
			s.wildcard = false
			continue
		}
		delete(s.names, n)
		if s.known != nil && !s.wildcard {
			delete(s.known, n)
		}
	}
}

// materialise turns base into an explicit known map, for the rare changes
// that base cannot express.
func (s *deltaSub) materialise() {
	if s.base == nil {
		if s.known == nil {
			s.known = map[string]string{}
		}
		return
	}
	s.known = map[string]string{}
	for n, w := range s.base.wires {
		if _, ok := s.names[n]; ok {
			s.known[n] = w.delta.Version
		}
	}
	s.base = nil
}

// respond works out what to send for t: the resources the proxy does not
// hold at t's version and the names it holds that t no longer has, or all
// of t. It leaves the subscription holding t.
func (s *deltaSub) respond(t *typeResponse) (changed []*discovery.Resource, removed []string, all bool) {
	switch {
	case s.base == t:
	case s.base != nil:
		d := t.diffFrom(s.base)
		if s.wildcard {
			changed, removed = d.changed, d.removed
		} else {
			for _, r := range d.changed {
				if s.wants(r.Name) {
					changed = append(changed, r)
				}
			}
			for _, n := range d.removed {
				if s.wants(n) {
					removed = append(removed, n)
				}
			}
		}
	case len(s.known) == 0 && s.wildcard:
		// Everything, as every new wildcard stream of the class gets it:
		// the caller sends t's shared encoding (see encoded.go).
		s.added = nil
		s.base, s.known = t, nil
		return nil, nil, true
	default:
		known := s.known
		for _, n := range t.sorted {
			if w := t.wires[n]; s.wants(n) && known[n] != w.delta.Version {
				changed = append(changed, w.delta)
			}
		}
		for n, v := range known {
			if _, ok := t.wires[n]; !ok && v != "" && (s.wants(n) || s.wildcard) {
				removed = append(removed, n)
			}
		}
		sort.Strings(removed)
	}
	if len(s.added) > 0 && s.base != nil {
		// Names subscribed since: the proxy does not hold them yet. (With no
		// base the comparison above has covered them.)
		seen := make(map[string]bool, len(changed))
		for _, r := range changed {
			seen[r.Name] = true
		}
		extra := false
		for _, n := range s.added {
			if w, ok := t.wires[n]; ok && !seen[n] && !s.wildcard {
				r := w.delta
				if !extra {
					changed = append([]*discovery.Resource(nil), changed...)
					extra = true
				}
				changed = append(changed, r)
				seen[n] = true
			}
		}
	}
	s.added = nil
	s.base, s.known = t, nil
	return changed, removed, false
}

// DeltaStreamHandler serves one Delta stream; typeURL is resource.AnyType
// for ADS.
func (d *DeltaServer) DeltaStreamHandler(str xdsstream.DeltaStream, typeURL string) error {
	id := deltaIDBase + d.count.Add(1)
	node := &core.Node{}
	if err := d.cb.OnDeltaStreamOpen(str.Context(), id, typeURL); err != nil {
		return err
	}
	defer func() { d.cb.OnDeltaStreamClosed(id, node) }()

	reqs := make(chan *discovery.DeltaDiscoveryRequest)
	recvErr := make(chan error, 1)
	go func() {
		defer close(reqs)
		for {
			req, err := str.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-str.Context().Done():
				return
			case <-d.ctx.Done():
				return
			}
		}
	}()

	var (
		nonce int64
		subs  = map[string]*deltaSub{}
		// reqOf keeps each type's last request for the callbacks.
		reqOf = map[string]*discovery.DeltaDiscoveryRequest{}
		cl    *sotwClass
		w     = &deltaWatch{wake: make(chan struct{}, 1)}
	)
	defer func() {
		if cl != nil {
			d.c.mu.Lock()
			delete(cl.deltas, w)
			d.c.mu.Unlock()
		}
	}()

	push := func(typ string) error {
		s := subs[typ]
		if s == nil {
			return nil
		}
		d.c.mu.Lock()
		t := cl.types[typ]
		d.c.mu.Unlock()
		if t == nil {
			return nil // no snapshot yet: the class's first set wakes us
		}
		if s.base == t && len(s.added) == 0 && !s.first {
			return nil
		}
		changed, removed, all := s.respond(t)
		if all {
			all = len(t.sorted) > 0
		} else if len(changed) == 0 && len(removed) == 0 && !s.first {
			return nil
		}
		s.first = false
		nonce++
		resp := &discovery.DeltaDiscoveryResponse{
			SystemVersionInfo: t.version,
			Resources:         changed,
			RemovedResources:  removed,
			TypeUrl:           typ,
			Nonce:             strconv.FormatInt(nonce, 10),
		}
		if all {
			withEncoded(resp, t.deltaEncoded())
		}
		d.cb.OnStreamDeltaResponse(id, reqOf[typ], resp)
		return str.Send(resp)
	}
	pushAll := func() error {
		for _, typ := range pushOrder {
			if err := push(typ); err != nil {
				return err
			}
		}
		return nil
	}

	for {
		select {
		case <-d.ctx.Done():
			return nil
		case <-w.wake:
			if err := pushAll(); err != nil {
				return err
			}
		case req, ok := <-reqs:
			if !ok {
				select {
				case err := <-recvErr:
					if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
						return nil
					}
					return err
				default:
					return nil
				}
			}
			if req.GetNode() != nil {
				node = req.GetNode()
			} else {
				req.Node = node
			}
			if typeURL == resource.AnyType {
				if req.GetTypeUrl() == "" {
					return status.Errorf(codes.InvalidArgument, "type URL is required for ADS")
				}
			} else if req.GetTypeUrl() == "" {
				req.TypeUrl = typeURL
			}
			if err := d.cb.OnStreamDeltaRequest(id, req); err != nil {
				return err
			}
			typ := req.GetTypeUrl()
			reqOf[typ] = req
			if cl == nil {
				d.c.mu.Lock()
				cl = d.c.class(classHash{}.ID(node))
				cl.deltas[w] = struct{}{}
				d.c.mu.Unlock()
			}
			s, ok := subs[typ]
			if !ok {
				s = &deltaSub{names: map[string]struct{}{}, first: true}
				if init := req.GetInitialResourceVersions(); len(init) > 0 {
					s.known = make(map[string]string, len(init))
					for n, v := range init {
						s.known[n] = v
					}
				}
				if len(req.GetResourceNamesSubscribe()) == 0 {
					s.wildcard = true
				}
				s.update(req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
				subs[typ] = s
			} else {
				s.update(req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
			}
			// An ACK or NACK changes nothing; a new subscription or a
			// change of names is answered now.
			if err := push(typ); err != nil {
				return err
			}
		}
	}
}

// pushOrder is xDS's make-before-break order.
var pushOrder = []string{
	resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType,
}

// deltaWatch is a Delta stream registered with its class; wake is signalled
// when the class gets a new snapshot.
type deltaWatch struct {
	wake chan struct{}
}

func (w *deltaWatch) notify() {
	select {
	case w.wake <- struct{}{}:
	default: // already pending: the stream reads the newest version anyway
	}
}
