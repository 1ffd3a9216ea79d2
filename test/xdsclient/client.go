// Package xdsclient is a small ADS client that behaves like Envoy on the
// wire, for end-to-end tests and the load tool: it sends the node on the
// first request, subscribes CDS (wildcard) and then EDS for the EDS
// clusters, LDS (wildcard) and then RDS for the route configs the HTTP
// connection managers reference, and ACKs (or NACKs) every response.
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// The xDS type URLs.
const (
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// Types lists the four types in Envoy's order.
var Types = []string{ClusterType, EndpointType, ListenerType, RouteType}

// Short is the short name of a type URL (cds, eds, lds, rds).
func Short(typeURL string) string {
	switch typeURL {
	case ClusterType:
		return "cds"
	case EndpointType:
		return "eds"
	case ListenerType:
		return "lds"
	case RouteType:
		return "rds"
	}
	return typeURL
}

// Node builds an Envoy node with Istio's metadata.
func Node(id, namespace string, labels map[string]string) *core.Node {
	l := map[string]any{}
	for k, v := range labels {
		l[k] = v
	}
	md, err := structpb.NewStruct(map[string]any{"NAMESPACE": namespace, "LABELS": l})
	if err != nil {
		panic(err)
	}
	return &core.Node{Id: id, Metadata: md}
}

// Response is one response as the client saw it.
type Response struct {
	TypeURL string
	Version string
	Nonce   string
	// Resources are kept only with Options.KeepResources.
	Resources []*anypb.Any
	Count     int
	At        time.Time
	// Nacked is the error detail the client sent back, if it rejected it.
	Nacked string
}

// Options configure a client.
type Options struct {
	Node *core.Node
	// KeepResources keeps each response's resources (tests); the load tool
	// only counts them.
	KeepResources bool
	// Nack, when set, is asked about each response; a non-empty message
	// rejects it with that error detail.
	Nack func(*discovery.DiscoveryResponse) string
	// Events, when set, receives every response after it was answered.
	// The client blocks when it is full.
	Events chan<- Response
	// OnAck, when set, is called after each ACK (not NACK) was sent.
	OnAck func(typeURL, version string, at time.Time)
}

// TypeState is the client's view of one type.
type TypeState struct {
	// Acked is the last accepted version; Received the last received one.
	Acked, Received string
	Nonce           string
	Names           []string // subscribed names (nil: wildcard)
	Count           int      // resources in the last accepted response
	Responses       int
	Total           int // resources received over the stream
	AckedAt         time.Time
}

// Client is one ADS stream.
type Client struct {
	opts   Options
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	lifetime

	mu    sync.Mutex
	types map[string]*TypeState
}

// Start opens a SotW ADS stream on conn and subscribes CDS; the stream
// lives until ctx is done, Close is called or the server ends it.
func Start(ctx context.Context, conn grpc.ClientConnInterface, opts Options) (*Client, error) {
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts, stream: stream, lifetime: newLifetime(stream.CloseSend), types: map[string]*TypeState{}}
	c.types[ClusterType] = &TypeState{}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: opts.Node, TypeUrl: ClusterType}); err != nil {
		return nil, err
	}
	go c.loop()
	return c, nil
}

// State returns a copy of the client's state for typeURL.
func (c *Client) State(typeURL string) TypeState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ts, ok := c.types[typeURL]; ok {
		s := *ts
		s.Names = slices.Clone(ts.Names)
		return s
	}
	return TypeState{}
}

// Acked returns the last accepted version of typeURL and when the client
// ACKed it (State without the copy).
func (c *Client) Acked(typeURL string) (string, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ts, ok := c.types[typeURL]; ok {
		return ts.Acked, ts.AckedAt
	}
	return "", time.Time{}
}

// Synced reports whether every subscribed type has an accepted response
// and the subscriptions EDS/RDS need are answered.
func (c *Client) Synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range []string{ClusterType, ListenerType} {
		if ts, ok := c.types[t]; !ok || ts.Acked == "" {
			return false
		}
	}
	for _, t := range []string{EndpointType, RouteType} {
		if ts, ok := c.types[t]; ok && ts.Acked == "" {
			return false
		}
	}
	return true
}

func (c *Client) loop() { recvLoop(&c.lifetime, c.stream.Recv, c.handle) }

func (c *Client) handle(r *discovery.DiscoveryResponse) error {
	now := time.Now()
	nack := ""
	if c.opts.Nack != nil {
		nack = c.opts.Nack(r)
	}
	c.mu.Lock()
	ts, ok := c.types[r.TypeUrl]
	if !ok {
		c.mu.Unlock()
		return fmt.Errorf("response of unsubscribed type %s", r.TypeUrl)
	}
	ts.Received, ts.Nonce = r.VersionInfo, r.Nonce
	ts.Responses++
	ts.Total += len(r.Resources)
	var follow []*discovery.DiscoveryRequest
	req := &discovery.DiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce, ResourceNames: ts.Names}
	if nack != "" {
		req.VersionInfo = ts.Acked
		req.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: nack}
	} else {
		req.VersionInfo = r.VersionInfo
		ts.Acked, ts.Count, ts.AckedAt = r.VersionInfo, len(r.Resources), now
		// Envoy subscribes what the new clusters and listeners reference
		// before it ACKs them.
		switch r.TypeUrl {
		case ClusterType:
			follow = c.subscribe(EndpointType, dependentNames(r), follow)
			if _, ok := c.types[ListenerType]; !ok {
				c.types[ListenerType] = &TypeState{}
				follow = append(follow, &discovery.DiscoveryRequest{TypeUrl: ListenerType})
			}
		case ListenerType:
			follow = c.subscribe(RouteType, dependentNames(r), follow)
		}
	}
	c.mu.Unlock()
	for _, f := range follow {
		if err := c.stream.Send(f); err != nil {
			return err
		}
	}
	if err := c.stream.Send(req); err != nil {
		return err
	}
	if nack == "" && c.opts.OnAck != nil {
		c.opts.OnAck(r.TypeUrl, r.VersionInfo, now)
	}
	if c.opts.Events != nil {
		ev := Response{TypeURL: r.TypeUrl, Version: r.VersionInfo, Nonce: r.Nonce, Count: len(r.Resources), At: now, Nacked: nack}
		if c.opts.KeepResources {
			ev.Resources = r.Resources
		}
		c.opts.Events <- ev
	}
	return nil
}

// subscribe updates the names of a dependent type (EDS, RDS) and returns
// the request that says so, if they changed. Called with c.mu held.
func (c *Client) subscribe(typeURL string, names []string, reqs []*discovery.DiscoveryRequest) []*discovery.DiscoveryRequest {
	ts, ok := c.types[typeURL]
	if !ok {
		if len(names) == 0 {
			return reqs // nothing to subscribe yet; an empty list would be a wildcard
		}
		ts = &TypeState{}
		c.types[typeURL] = ts
	}
	if slices.Equal(ts.Names, names) && ts.Names != nil {
		return reqs
	}
	ts.Names = names
	if ts.Names == nil {
		ts.Names = []string{}
	}
	return append(reqs, &discovery.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: ts.Acked, ResponseNonce: ts.Nonce,
		ResourceNames: ts.Names})
}

// names caches the dependent names of a response by type and version
// (versions are content hashes), so a thousand clients of one class
// decode a response once.
var names sync.Map // nameKey -> []string

type nameKey struct{ typeURL, version string }

// dependentNames returns the EDS service names of a CDS response or the
// RDS route config names of an LDS response, sorted.
func dependentNames(r *discovery.DiscoveryResponse) []string {
	key := nameKey{r.TypeUrl, r.VersionInfo}
	if v, ok := names.Load(key); ok && r.VersionInfo != "" {
		return v.([]string)
	}
	set := map[string]bool{}
	for _, a := range r.Resources {
		switch r.TypeUrl {
		case ClusterType:
			var cl cluster.Cluster
			if a.UnmarshalTo(&cl) != nil {
				continue
			}
			if cl.GetType() == cluster.Cluster_EDS {
				n := cl.GetEdsClusterConfig().GetServiceName()
				if n == "" {
					n = cl.GetName()
				}
				set[n] = true
			}
		case ListenerType:
			var l listener.Listener
			if a.UnmarshalTo(&l) != nil {
				continue
			}
			chains := slices.Clone(l.GetFilterChains())
			if l.GetDefaultFilterChain() != nil {
				chains = append(chains, l.GetDefaultFilterChain())
			}
			for _, fc := range chains {
				for _, f := range fc.GetFilters() {
					tc := f.GetTypedConfig()
					if tc == nil || !tc.MessageIs(&hcm.HttpConnectionManager{}) {
						continue
					}
					var m hcm.HttpConnectionManager
					if tc.UnmarshalTo(&m) == nil && m.GetRds() != nil {
						set[m.GetRds().GetRouteConfigName()] = true
					}
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	if r.VersionInfo != "" {
		names.Store(key, out)
	}
	return out
}

// ErrTimeout is returned by the Wait helpers.
var ErrTimeout = errors.New("timed out")

// WaitSynced polls until the client is synced or the timeout passes.
func (c *Client) WaitSynced(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !c.Synced() {
		if err := c.Err(); err != nil {
			return fmt.Errorf("stream ended: %w", err)
		}
		if time.Now().After(deadline) {
			return ErrTimeout
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// lifetime is what SotW and Delta clients share about their stream's end.
type lifetime struct {
	closeSend func() error
	done      chan struct{}
	err       error
}

func newLifetime(closeSend func() error) lifetime {
	return lifetime{closeSend: closeSend, done: make(chan struct{})}
}

// Done is closed when the stream ended; Err says why.
func (l *lifetime) Done() <-chan struct{} { return l.done }

// Err is the stream's end (nil while it runs).
func (l *lifetime) Err() error {
	select {
	case <-l.done:
		return l.err
	default:
		return nil
	}
}

// Close ends the stream (half-close) and waits for the server to end it.
func (l *lifetime) Close() {
	_ = l.closeSend()
	<-l.done
}

// recvLoop receives and handles responses until either fails, then records
// the error and closes done.
func recvLoop[T any](l *lifetime, recv func() (T, error), handle func(T) error) {
	defer close(l.done)
	for {
		r, err := recv()
		if err == nil {
			err = handle(r)
		}
		if err != nil {
			l.err = err
			return
		}
	}
}
