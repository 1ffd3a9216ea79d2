package snapshot

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/zap"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chokepoint-xds/chokepoint/translate"
)

// Status is the per-proxy record of what was sent, acknowledged and
// rejected (istiod's SyncStatus), and the xDS server callbacks that keep
// it. It attaches each stream's proxy to its class in the Manager.
type Status struct {
	m   *Manager
	log *zap.Logger
	// tokens bounds the streams with responses in flight (sent, not yet
	// ACKed or NACKed), as istiod's push throttle: a push to a thousand
	// proxies is written a bounded number of streams at a time, so the
	// memory held in send buffers stays bounded.
	tokens chan struct{}
	// bytes bounds the same by size: with 5,000 clusters a proxy's first
	// CDS response is megabytes, and a hundred of them in flight is the
	// largest part of the server's memory.
	bytes *budget

	mu      sync.Mutex
	streams map[int64]*stream
}

type stream struct {
	id     int64
	delta  bool
	opened time.Time
	node   string
	proxy  translate.Proxy
	class  string
	// attached is set once the stream's node is known and accepted.
	attached bool
	types    map[string]*typeStatus
	// token is held while responses are in flight (nonces in inflight).
	token    bool
	tokenGen int
	held     int64 // bytes of the budget the token holds
	inflight map[string]bool
}

type typeStatus struct {
	sent, acked string
	nonce       string
	sentAt      time.Time
	pending     map[string]string // nonce -> version, for NACK records
	nacks       int
	lastNack    *Nack
}

// Nack is the last rejection of a type by a proxy, with Envoy's detail.
type Nack struct {
	Version string    `json:"version"`
	Nonce   string    `json:"nonce"`
	Error   string    `json:"error"`
	Time    time.Time `json:"time"`
}

// DefaultMaxInflight is how many streams may have responses in flight at
// once.
const DefaultMaxInflight = 100

// DefaultMaxInflightBytes is how many bytes of responses may be in flight
// at once (one stream may always go, whatever its size).
const DefaultMaxInflightBytes = 64 << 20

// tokenTimeout frees the token of a proxy that does not answer.
const tokenTimeout = 30 * time.Second

// NewStatus returns the callbacks and records for m; at most maxInflight
// streams (DefaultMaxInflight if 0) and maxBytes bytes of responses
// (DefaultMaxInflightBytes if 0) are unacknowledged at a time.
func NewStatus(m *Manager, log *zap.Logger, maxInflight int, maxBytes int64) *Status {
	if maxInflight <= 0 {
		maxInflight = DefaultMaxInflight
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxInflightBytes
	}
	return &Status{m: m, log: log, streams: map[int64]*stream{}, tokens: make(chan struct{}, maxInflight),
		bytes: newBudget(maxBytes)}
}

// acquire takes a token and size bytes of the budget for st unless it
// holds a token; a holder adds size to what it holds without waiting. It
// blocks only a stream with nothing in flight, so holders can always read
// their ACKs and free theirs.
func (s *Status) acquire(st *stream, size int64) {
	s.mu.Lock()
	if st.token {
		st.held += size
		s.mu.Unlock()
		s.bytes.add(size)
		return
	}
	s.mu.Unlock()
	s.tokens <- struct{}{}
	s.bytes.acquire(size)
	s.mu.Lock()
	st.token = true
	st.held = size
	st.tokenGen++
	gen := st.tokenGen
	s.mu.Unlock()
	time.AfterFunc(tokenTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if st.token && st.tokenGen == gen {
			s.releaseLocked(st)
		}
	})
}

// releaseLocked frees st's token; s.mu is held.
func (s *Status) releaseLocked(st *stream) {
	if !st.token {
		return
	}
	st.token = false
	st.inflight = nil
	s.bytes.release(st.held)
	st.held = 0
	<-s.tokens
}

// budget is a byte semaphore that always lets one holder in.
type budget struct {
	mu        sync.Mutex
	cond      *sync.Cond
	used, max int64
}

func newBudget(max int64) *budget {
	b := &budget{max: max}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *budget) acquire(n int64) {
	b.mu.Lock()
	for b.used > 0 && b.used+n > b.max {
		b.cond.Wait()
	}
	b.used += n
	b.mu.Unlock()
}

func (b *budget) add(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (s *Status) open(id int64, delta bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams[id] = &stream{id: id, delta: delta, opened: time.Now(), types: map[string]*typeStatus{}}
}

func (s *Status) close(id int64) {
	s.mu.Lock()
	st, ok := s.streams[id]
	delete(s.streams, id)
	if ok {
		s.releaseLocked(st)
	}
	s.mu.Unlock()
	if ok && st.attached {
		s.m.Detach(st.class)
		s.m.metrics.ConnectedProxies.Dec()
		s.log.Info("proxy disconnected", zap.String("proxy", st.proxy.ID), zap.Int64("stream", id))
	}
}

// request handles one request: identify the proxy on the first one, then
// record ACKs and NACKs. For a NACK it returns the rejected version.
func (s *Status) request(id int64, node *core.Node, typeURL, version, nonce string, errDetail *rpcstatus.Status) (string, error) {
	s.mu.Lock()
	st, ok := s.streams[id]
	s.mu.Unlock()
	if !ok {
		return "", nil
	}
	if !st.attached {
		p, class, err := s.m.Attach(node)
		if err != nil {
			s.log.Warn("rejecting stream: bad node identity", zap.Int64("stream", id), zap.String("node", node.GetId()), zap.Error(err))
			return "", status.Errorf(codes.InvalidArgument, "chokepoint: %v", err)
		}
		s.mu.Lock()
		st.node, st.proxy, st.class, st.attached = node.GetId(), p, class, true
		s.mu.Unlock()
		s.m.metrics.ConnectedProxies.Inc()
		s.log.Info("proxy connected", zap.String("proxy", p.ID), zap.String("node", node.GetId()),
			zap.String("class", class), zap.Bool("delta", st.delta), zap.Int64("stream", id))
	}
	if nonce == "" {
		return "", nil
	}
	s.mu.Lock()
	if st.inflight[nonce] {
		delete(st.inflight, nonce)
		if len(st.inflight) == 0 {
			s.releaseLocked(st)
		}
	}
	ts := st.type_(typeURL)
	short := shortType(typeURL)
	if errDetail != nil {
		n := &Nack{Version: ts.pending[nonce], Nonce: nonce, Error: errDetail.GetMessage(), Time: time.Now()}
		if n.Version == "" {
			n.Version = ts.sent
		}
		ts.nacks++
		ts.lastNack = n
		s.mu.Unlock()
		s.m.metrics.Rejects.WithLabelValues(short).Inc()
		s.log.Warn("proxy rejected config (NACK)", zap.String("proxy", st.proxy.ID), zap.String("type", short),
			zap.String("version", n.Version), zap.String("error", n.Error))
		return n.Version, nil
	}
	acked := version
	if v, ok := ts.pending[nonce]; ok {
		acked = v
	}
	if acked != "" && ts.acked != acked {
		ts.acked = acked
		if !ts.sentAt.IsZero() && nonce == ts.nonce {
			s.m.metrics.PushToAck.WithLabelValues(short).Observe(time.Since(ts.sentAt).Seconds())
		}
	}
	delete(ts.pending, nonce)
	s.mu.Unlock()
	return "", nil
}

func (s *Status) response(id int64, typeURL, version, nonce string, size int64) {
	s.mu.Lock()
	st, ok := s.streams[id]
	s.mu.Unlock()
	if !ok {
		return
	}
	s.acquire(st, size)
	s.mu.Lock()
	if st.token {
		if st.inflight == nil {
			st.inflight = map[string]bool{}
		}
		st.inflight[nonce] = true
	}
	ts := st.type_(typeURL)
	ts.sent, ts.nonce, ts.sentAt = version, nonce, time.Now()
	if len(ts.pending) > 16 {
		ts.pending = map[string]string{} // a proxy that never answers must not grow this
	}
	ts.pending[nonce] = version
	s.mu.Unlock()
	s.m.metrics.Pushes.WithLabelValues(shortType(typeURL)).Inc()
}

func (st *stream) type_(typeURL string) *typeStatus {
	ts, ok := st.types[typeURL]
	if !ok {
		ts = &typeStatus{pending: map[string]string{}}
		st.types[typeURL] = ts
	}
	return ts
}

func shortType(typeURL string) string {
	switch {
	case strings.HasSuffix(typeURL, ".Cluster"):
		return "cds"
	case strings.HasSuffix(typeURL, ".Listener"):
		return "lds"
	case strings.HasSuffix(typeURL, ".RouteConfiguration"):
		return "rds"
	case strings.HasSuffix(typeURL, ".ClusterLoadAssignment"):
		return "eds"
	}
	return typeURL[strings.LastIndex(typeURL, ".")+1:]
}

// The go-control-plane callbacks (SotW, Delta, REST).

func (s *Status) OnStreamOpen(_ context.Context, id int64, _ string) error {
	s.open(id, false)
	return nil
}
func (s *Status) OnStreamClosed(id int64, _ *core.Node) { s.close(id) }
func (s *Status) OnStreamRequest(id int64, r *discovery.DiscoveryRequest) error {
	rejected, err := s.request(id, r.GetNode(), r.GetTypeUrl(), r.GetVersionInfo(), r.GetResponseNonce(), r.GetErrorDetail())
	if rejected != "" {
		// A NACK carries the last accepted version, so the snapshot cache
		// would answer it at once with the rejected config again, and the
		// proxy would reject it again, in a loop. Like istiod, hold the
		// watch instead: the cache answers when the class's snapshot
		// moves past the rejected version (at once if it already has).
		r.VersionInfo = rejected
	}
	return err
}
func (s *Status) OnStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, r *discovery.DiscoveryResponse) {
	s.response(id, r.GetTypeUrl(), r.GetVersionInfo(), r.GetNonce(), EncodedSize(r))
}
func (s *Status) OnDeltaStreamOpen(_ context.Context, id int64, _ string) error {
	s.open(id, true)
	return nil
}
func (s *Status) OnDeltaStreamClosed(id int64, _ *core.Node) { s.close(id) }
func (s *Status) OnStreamDeltaRequest(id int64, r *discovery.DeltaDiscoveryRequest) error {
	_, err := s.request(id, r.GetNode(), r.GetTypeUrl(), "", r.GetResponseNonce(), r.GetErrorDetail())
	return err
}
func (s *Status) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, r *discovery.DeltaDiscoveryResponse) {
	s.response(id, r.GetTypeUrl(), r.GetSystemVersionInfo(), r.GetNonce(), EncodedSize(r))
}
func (s *Status) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error         { return nil }
func (s *Status) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

// SyncStatus is one proxy's line in /debug/syncz, in istiod's shape plus
// chokepoint's NACK records.
type SyncStatus struct {
	ProxyID       string           `json:"proxy"`
	NodeID        string           `json:"node_id"`
	ProxyType     string           `json:"proxy_type"`
	Class         string           `json:"class"`
	Stream        int64            `json:"stream"`
	Delta         bool             `json:"delta"`
	ConnectedAt   time.Time        `json:"connected_at"`
	ClusterSent   string           `json:"cluster_sent"`
	ClusterAcked  string           `json:"cluster_acked"`
	ListenerSent  string           `json:"listener_sent"`
	ListenerAcked string           `json:"listener_acked"`
	RouteSent     string           `json:"route_sent"`
	RouteAcked    string           `json:"route_acked"`
	EndpointSent  string           `json:"endpoint_sent"`
	EndpointAcked string           `json:"endpoint_acked"`
	Nacks         map[string]*Nack `json:"nacks,omitempty"`
	NackCount     int              `json:"nack_count"`
}

// Sync lists every attached stream, sorted by proxy and stream.
func (s *Status) Sync() []SyncStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SyncStatus, 0, len(s.streams))
	for _, st := range s.streams {
		if !st.attached {
			continue
		}
		row := SyncStatus{ProxyID: st.proxy.ID, NodeID: st.node, ProxyType: string(st.proxy.Type), Class: st.class,
			Stream: st.id, Delta: st.delta, ConnectedAt: st.opened}
		for typeURL, ts := range st.types {
			switch shortType(typeURL) {
			case "cds":
				row.ClusterSent, row.ClusterAcked = ts.sent, ts.acked
			case "lds":
				row.ListenerSent, row.ListenerAcked = ts.sent, ts.acked
			case "rds":
				row.RouteSent, row.RouteAcked = ts.sent, ts.acked
			case "eds":
				row.EndpointSent, row.EndpointAcked = ts.sent, ts.acked
			}
			if ts.lastNack != nil {
				if row.Nacks == nil {
					row.Nacks = map[string]*Nack{}
				}
				n := *ts.lastNack
				row.Nacks[shortType(typeURL)] = &n
			}
			row.NackCount += ts.nacks
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ProxyID != out[j].ProxyID {
			return out[i].ProxyID < out[j].ProxyID
		}
		return out[i].Stream < out[j].Stream
	})
	return out
}

// ProxyClass returns the class of the first attached stream of the proxy
// with istiod's short ID (POD.NAMESPACE).
func (s *Status) ProxyClass(proxyID string) (string, bool) {
	_, class, ok := s.ConnectedProxy(proxyID)
	return class, ok
}

// ConnectedProxy returns the identity and class of the first attached
// stream of the proxy with istiod's short ID (POD.NAMESPACE).
func (s *Status) ConnectedProxy(proxyID string) (translate.Proxy, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *stream
	for _, st := range s.streams {
		if st.attached && st.proxy.ID == proxyID && (best == nil || st.id < best.id) {
			best = st
		}
	}
	if best == nil {
		return translate.Proxy{}, "", false
	}
	return best.proxy, best.class, true
}
