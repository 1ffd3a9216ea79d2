package xdsclient

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
)

// DeltaOptions configure a DeltaClient.
type DeltaOptions struct {
	Node *core.Node
	// Nack, when set, is asked about each response; a non-empty message
	// rejects it with that error detail.
	Nack func(*discovery.DeltaDiscoveryResponse) string
	// Events, when set, receives every response after it was answered.
	// The client blocks when it is full.
	Events chan<- *discovery.DeltaDiscoveryResponse
}

// DeltaTypeState is a DeltaClient's view of one type.
type DeltaTypeState struct {
	// Acked is the system_version_info of the last accepted response;
	// Received that of the last received one.
	Acked, Received string
	Nonce           string
	// Wildcard types (CDS, LDS) get every resource; the others get Names.
	Wildcard bool
	Names    []string // subscribed names, sorted (non-wildcard types)
	// Resources maps the names held to their versions.
	Resources map[string]string
	Responses int
	// Added and Removed count resources received and removed over the
	// stream; LastAdded and LastRemoved those of the last response.
	Added, Removed         int
	LastAdded, LastRemoved int
	AckedAt                time.Time
}

// DeltaClient is one incremental ADS stream (DeltaAggregatedResources,
// Envoy's api_type DELTA_GRPC): CDS and LDS wildcard, EDS and RDS by the
// names the clusters and listeners reference, every response ACKed (or
// NACKed) with its nonce.
type DeltaClient struct {
	opts   DeltaOptions
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	lifetime

	mu    sync.Mutex
	types map[string]*deltaType
}

type deltaType struct {
	DeltaTypeState
	// deps are the dependent names (EDS services, RDS route configs) of
	// each held cluster or listener.
	deps map[string][]string
}

// StartDelta opens a Delta ADS stream on conn and subscribes CDS
// (wildcard); LDS follows the first CDS response, EDS and RDS follow the
// clusters and listeners received.
func StartDelta(ctx context.Context, conn grpc.ClientConnInterface, opts DeltaOptions) (*DeltaClient, error) {
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	c := &DeltaClient{opts: opts, stream: stream, lifetime: newLifetime(stream.CloseSend), types: map[string]*deltaType{}}
	c.types[ClusterType] = newDeltaType(true)
	// An empty resource_names_subscribe on the first request is a wildcard.
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: opts.Node, TypeUrl: ClusterType}); err != nil {
		return nil, err
	}
	go c.loop()
	return c, nil
}

func newDeltaType(wildcard bool) *deltaType {
	return &deltaType{DeltaTypeState: DeltaTypeState{Wildcard: wildcard, Resources: map[string]string{}}, deps: map[string][]string{}}
}

// State returns a copy of the client's state for typeURL.
func (c *DeltaClient) State(typeURL string) DeltaTypeState {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.types[typeURL]
	if !ok {
		return DeltaTypeState{}
	}
	s := t.DeltaTypeState
	s.Names = slices.Clone(t.Names)
	s.Resources = make(map[string]string, len(t.Resources))
	for n, v := range t.Resources {
		s.Resources[n] = v
	}
	return s
}

// Count is how many resources of typeURL the client holds.
func (c *DeltaClient) Count(typeURL string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.types[typeURL]; ok {
		return len(t.Resources)
	}
	return 0
}

// Stats returns the responses received for typeURL and the resources
// received and removed in them (State without the copy).
func (c *DeltaClient) Stats(typeURL string) (responses, added, removed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.types[typeURL]; ok {
		return t.Responses, t.Added, t.Removed
	}
	return 0, 0, 0
}

// Acked returns the last accepted system_version_info of typeURL and when
// the client ACKed it.
func (c *DeltaClient) Acked(typeURL string) (string, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.types[typeURL]; ok {
		return t.Acked, t.AckedAt
	}
	return "", time.Time{}
}

// Synced reports whether CDS and LDS were answered and accepted, and every
// subscribed EDS and RDS name is held.
func (c *DeltaClient) Synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range []string{ClusterType, ListenerType} {
		if ts, ok := c.types[t]; !ok || ts.Responses == 0 || ts.AckedAt.IsZero() {
			return false
		}
	}
	for _, t := range []string{EndpointType, RouteType} {
		ts, ok := c.types[t]
		if !ok {
			continue
		}
		for _, n := range ts.Names {
			if _, ok := ts.Resources[n]; !ok {
				return false
			}
		}
	}
	return true
}

func (c *DeltaClient) loop() { recvLoop(&c.lifetime, c.stream.Recv, c.handle) }

func (c *DeltaClient) handle(r *discovery.DeltaDiscoveryResponse) error {
	now := time.Now()
	nack := ""
	if c.opts.Nack != nil {
		nack = c.opts.Nack(r)
	}
	c.mu.Lock()
	ts, ok := c.types[r.TypeUrl]
	if !ok {
		c.mu.Unlock()
		return fmt.Errorf("delta response of unsubscribed type %s", r.TypeUrl)
	}
	ts.Received, ts.Nonce = r.SystemVersionInfo, r.Nonce
	ts.Responses++
	req := &discovery.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce}
	var follow []*discovery.DeltaDiscoveryRequest
	if nack != "" {
		req.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: nack}
	} else {
		for _, res := range r.Resources {
			ts.Resources[res.GetName()] = res.GetVersion()
			if r.TypeUrl == ClusterType || r.TypeUrl == ListenerType {
				ts.deps[res.GetName()] = resourceDeps(r.TypeUrl, res)
			}
		}
		for _, n := range r.RemovedResources {
			delete(ts.Resources, n)
			delete(ts.deps, n)
		}
		ts.LastAdded, ts.LastRemoved = len(r.Resources), len(r.RemovedResources)
		ts.Added += ts.LastAdded
		ts.Removed += ts.LastRemoved
		ts.Acked, ts.AckedAt = r.SystemVersionInfo, now
		// Like Envoy: subscribe what the new clusters and listeners
		// reference (and drop what they no longer do) before the ACK.
		switch r.TypeUrl {
		case ClusterType:
			follow = c.resubscribe(EndpointType, ts.deps, follow)
			if _, ok := c.types[ListenerType]; !ok {
				c.types[ListenerType] = newDeltaType(true)
				follow = append(follow, &discovery.DeltaDiscoveryRequest{TypeUrl: ListenerType})
			}
		case ListenerType:
			follow = c.resubscribe(RouteType, ts.deps, follow)
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
	if c.opts.Events != nil {
		c.opts.Events <- r
	}
	return nil
}

// resubscribe brings the names of a dependent type (EDS, RDS) in line with
// what deps reference and returns the request that says so, if any.
// Called with c.mu held.
func (c *DeltaClient) resubscribe(typeURL string, deps map[string][]string, reqs []*discovery.DeltaDiscoveryRequest) []*discovery.DeltaDiscoveryRequest {
	want := map[string]bool{}
	for _, ns := range deps {
		for _, n := range ns {
			want[n] = true
		}
	}
	ts, ok := c.types[typeURL]
	if !ok {
		if len(want) == 0 {
			return reqs // an empty first subscription would be a wildcard
		}
		ts = newDeltaType(false)
		c.types[typeURL] = ts
	}
	have := make(map[string]bool, len(ts.Names))
	for _, n := range ts.Names {
		have[n] = true
	}
	var sub, unsub []string
	for n := range want {
		if !have[n] {
			sub = append(sub, n)
		}
	}
	for n := range have {
		if !want[n] {
			unsub = append(unsub, n)
			delete(ts.Resources, n)
		}
	}
	if len(sub) == 0 && len(unsub) == 0 {
		return reqs
	}
	sort.Strings(sub)
	sort.Strings(unsub)
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	ts.Names = names
	return append(reqs, &discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: sub, ResourceNamesUnsubscribe: unsub})
}

// depsCache caches the dependent names of a resource by type, name and
// version (a content hash), so a thousand clients decode a cluster once.
var depsCache sync.Map // string -> []string

func resourceDeps(typeURL string, res *discovery.Resource) []string {
	key := typeURL + "\x00" + res.GetName() + "\x00" + res.GetVersion()
	if v, ok := depsCache.Load(key); ok && res.GetVersion() != "" {
		return v.([]string)
	}
	out := dependentNames(&discovery.DiscoveryResponse{TypeUrl: typeURL, Resources: []*anypb.Any{res.GetResource()}})
	if res.GetVersion() != "" {
		depsCache.Store(key, out)
	}
	return out
}
