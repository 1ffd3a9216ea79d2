package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/internal/parallel"
	"github.com/chokepoint-xds/chokepoint/translate"
)

// Manager owns the snapshot cache: it builds one snapshot per proxy class
// from the current inputs, and rebuilds the classes an input change can
// affect.
type Manager struct {
	log *zap.Logger
	// sotw holds each class's prebuilt responses and its streams' watches;
	// the SotW server and DeltaServer both serve from it.
	sotw    *sotwCache
	metrics *Metrics

	// update serialises input changes.
	update sync.Mutex

	mu       sync.Mutex
	index    *translate.Index
	indexGen uint64
	classes  map[string]*class
	inputsAt time.Time

	// validated remembers resources (by content hash) that passed
	// ValidateAll, so an unchanged resource is not validated again.
	validated *lru.Cache[uint64, struct{}]

	// raw caches encoded resources for the current index generation.
	rawMu  sync.Mutex
	rawGen uint64
	raw    map[proto.Message]*wire
	// byHash finds an encoding already made this generation by content.
	byHash map[uint64][]*wire
}

// class is a set of proxies with the same effective inputs.
type class struct {
	key   string
	proxy translate.Proxy

	// streams counts the connected streams of the class's proxies.
	streams int

	current *built
	// err is the last build failure; the class keeps serving current.
	err     error
	errAt   time.Time
	setAt   time.Time
	buildMu sync.Mutex
}

// built is one translation of a class, ready to serve. It keeps the wire
// bytes, not the translated messages: the debug endpoints decode what is
// served (Manager.Served) when they need it.
type built struct {
	gen          uint64
	fingerprint  uint64
	problems     []inputs.Problem
	registryOnly bool
	counts       [4]int // clusters, endpoints, listeners, routes
	version      string
	typeVersions map[string]string
	sotw         map[string]*typeResponse
}

// NewManager returns a manager with an ADS snapshot cache keyed by proxy class.
func NewManager(log *zap.Logger, metrics *Metrics) *Manager {
	m := &Manager{log: log, metrics: metrics, classes: map[string]*class{}}
	m.sotw = newSotwCache()
	m.validated, _ = lru.New[uint64, struct{}](1 << 18)
	return m
}

// Cache is what the xDS server serves from.
func (m *Manager) Cache() cachev3.Cache { return m.sotw }

// classHash maps a node to its proxy class; nodes whose identity cannot be
// parsed map to their raw ID and get nothing (the callbacks reject them
// before a watch is created).
type classHash struct{}

func (classHash) ID(n *core.Node) string {
	p, err := ProxyFromNode(n)
	if err != nil {
		return "invalid:" + n.GetId()
	}
	return p.ClassKey()
}

// Ready reports whether inputs have been loaded.
func (m *Manager) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.index != nil
}

// Index returns the current index (nil before the first inputs).
func (m *Manager) Index() *translate.Index {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.index
}

// SetInputs makes in the current inputs and rebuilds every class whose
// fingerprint changed. Classes without connected proxies are dropped.
func (m *Manager) SetInputs(in *inputs.Inputs) { m.SetIndex(translate.NewIndex(in)) }

// SetIndex is SetInputs for an index already built from the inputs.
func (m *Manager) SetIndex(idx *translate.Index) {
	m.update.Lock()
	defer m.update.Unlock()
	start := time.Now()
	m.mu.Lock()
	m.index = idx
	m.indexGen++
	gen := m.indexGen
	m.inputsAt = time.Now()
	var work []*class
	for k, c := range m.classes {
		if c.streams == 0 {
			delete(m.classes, k)
			m.sotw.clear(k)
			continue
		}
		work = append(work, c)
	}
	m.metrics.Classes.Set(float64(len(m.classes)))
	m.mu.Unlock()
	counts := map[inputs.Severity]int{}
	for _, p := range idx.Problems() {
		counts[p.Severity]++
	}
	m.metrics.ConfigProblems.WithLabelValues(string(inputs.SeverityError)).Set(float64(counts[inputs.SeverityError]))
	m.metrics.ConfigProblems.WithLabelValues(string(inputs.SeverityWarning)).Set(float64(counts[inputs.SeverityWarning]))

	var changed, unchanged int
	var cmu sync.Mutex
	parallel.For(len(work), func(i int) {
		did := m.rebuild(work[i], idx, gen)
		cmu.Lock()
		if did {
			changed++
		} else {
			unchanged++
		}
		cmu.Unlock()
	})
	m.dropWires()
	m.log.Info("inputs applied", zap.Uint64("generation", gen), zap.Int("classes_pushed", changed),
		zap.Int("classes_unchanged", unchanged), zap.Int("errors", counts[inputs.SeverityError]),
		zap.Int("warnings", counts[inputs.SeverityWarning]), zap.Duration("took", time.Since(start)))
}

// Attach registers a stream of the proxy behind node and makes sure its
// class has a snapshot before the stream's first watch is created.
func (m *Manager) Attach(node *core.Node) (translate.Proxy, string, error) {
	p, err := ProxyFromNode(node)
	if err != nil {
		return p, "", err
	}
	key := p.ClassKey()
	m.mu.Lock()
	c, ok := m.classes[key]
	if !ok {
		c = &class{key: key, proxy: p}
		m.classes[key] = c
		m.metrics.Classes.Set(float64(len(m.classes)))
	}
	c.streams++
	idx, gen := m.index, m.indexGen
	m.mu.Unlock()
	if idx != nil {
		m.ensure(c, idx, gen)
	}
	return p, key, nil
}

// Detach unregisters a stream of class key.
func (m *Manager) Detach(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.classes[key]; ok && c.streams > 0 {
		c.streams--
	}
}

// ensure builds c for gen unless it already has it.
func (m *Manager) ensure(c *class, idx *translate.Index, gen uint64) {
	c.buildMu.Lock()
	have := c.current != nil && c.current.gen >= gen
	c.buildMu.Unlock()
	if !have {
		m.rebuild(c, idx, gen)
		m.dropWires()
	}
}

// dropWires forgets the encoding cache once the builds that share it are
// done: its keys are the translated messages, which would otherwise stay
// in memory beside their bytes.
func (m *Manager) dropWires() {
	m.rawMu.Lock()
	m.raw = nil
	m.rawMu.Unlock()
}

// rebuild translates c against idx and sets its snapshot when the content
// changed. It reports whether a new snapshot was set.
func (m *Manager) rebuild(c *class, idx *translate.Index, gen uint64) bool {
	c.buildMu.Lock()
	defer c.buildMu.Unlock()
	if c.current != nil && c.current.gen >= gen {
		return false
	}
	start := time.Now()
	fp := idx.Fingerprint(c.proxy)
	if c.current != nil && c.current.fingerprint == fp {
		// Nothing this class reads changed: same resources, no push.
		c.current.gen = gen
		m.metrics.Builds.WithLabelValues("unchanged").Inc()
		return false
	}
	b, err := m.build(c, idx, gen, fp)
	if err != nil {
		c.err, c.errAt = err, time.Now()
		m.metrics.Builds.WithLabelValues("failed").Inc()
		m.log.Error("snapshot build failed: keeping the last good snapshot",
			zap.String("class", c.key), zap.Uint64("generation", gen), zap.Error(err))
		return false
	}
	c.err = nil
	if c.current != nil && c.current.version == b.version {
		c.current = b
		m.metrics.Builds.WithLabelValues("unchanged").Inc()
		return false
	}
	m.sotw.set(c.key, b.sotw)
	c.current, c.setAt = b, time.Now()
	m.metrics.Builds.WithLabelValues("ok").Inc()
	m.metrics.BuildSeconds.Observe(time.Since(start).Seconds())
	m.log.Info("snapshot set", zap.String("class", c.key), zap.String("version", b.version),
		zap.Int("clusters", b.counts[0]), zap.Int("listeners", b.counts[2]),
		zap.Int("routes", b.counts[3]), zap.Duration("took", time.Since(start)))
	return true
}

var typeURLs = map[types.ResponseType]string{
	types.Cluster:  "type.googleapis.com/envoy.config.cluster.v3.Cluster",
	types.Listener: "type.googleapis.com/envoy.config.listener.v3.Listener",
	types.Route:    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
	types.Endpoint: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
}

// build translates, hashes, validates and checks one class.
func (m *Manager) build(c *class, idx *translate.Index, gen, fp uint64) (*built, error) {
	res := idx.Translate(c.proxy)
	b := &built{gen: gen, fingerprint: fp, problems: res.Problems, registryOnly: res.RegistryOnly,
		counts:       [4]int{len(res.Clusters), len(res.Endpoints), len(res.Listeners), len(res.Routes)},
		typeVersions: map[string]string{}, sotw: map[string]*typeResponse{}}
	groups := map[types.ResponseType][]proto.Message{}
	for _, r := range res.Clusters {
		groups[types.Cluster] = append(groups[types.Cluster], r)
	}
	for _, r := range res.Listeners {
		groups[types.Listener] = append(groups[types.Listener], r)
	}
	for _, r := range res.Routes {
		groups[types.Route] = append(groups[types.Route], r)
	}
	for _, r := range res.Endpoints {
		groups[types.Endpoint] = append(groups[types.Endpoint], r)
	}
	all := fnv.New64a()
	wiresByType := map[types.ResponseType]map[string]*wire{}
	var errs []error
	for _, typ := range []types.ResponseType{types.Cluster, types.Endpoint, types.Listener, types.Route} {
		msgs := groups[typ]
		wires := make(map[string]*wire, len(msgs))
		wiresByType[typ] = wires
		h := fnv.New64a()
		for _, msg := range msgs {
			w, err := m.wire(msg, typeURLs[typ], gen)
			if err != nil {
				return nil, fmt.Errorf("marshalling %s: %w", cachev3.GetResourceName(msg), err)
			}
			if _, ok := m.validated.Get(w.hash); !ok {
				if err := translate.ValidateResource(msg); err != nil {
					errs = append(errs, fmt.Errorf("%s %q: %w", typeName(typ), w.delta.Name, err))
					continue
				}
				m.validated.Add(w.hash, struct{}{})
			}
			h.Write([]byte(w.delta.Name))
			var buf [8]byte
			binary.LittleEndian.PutUint64(buf[:], w.hash)
			h.Write(buf[:])
			wires[w.delta.Name] = w
		}
		v := strconv.FormatUint(h.Sum64(), 16)
		b.typeVersions[typeURLs[typ]] = v
		all.Write([]byte(v))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("generated config failed validation: %w", errors.Join(errs...))
	}
	if err := consistent(res); err != nil {
		return nil, fmt.Errorf("inconsistent snapshot: %w", err)
	}
	// Checked on the real messages; served from the bytes, which every
	// stream (and every class holding the same resource) shares.
	for typ, wires := range wiresByType {
		url := typeURLs[typ]
		b.sotw[url] = newTypeResponse(b.typeVersions[url], wires)
	}
	b.version = strconv.FormatUint(all.Sum64(), 16)
	return b, nil
}

// wire is a resource ready to send: its deterministic encoding, the
// encoding's hash (its Delta version), and the Any and Delta entry that
// carry it. Every class whose translation holds the same message (clusters
// the index built once) shares one wire per index generation.
type wire struct {
	hash  uint64
	any   *anypb.Any
	delta *discovery.Resource
}

// wire encodes msg once per index generation.
func (m *Manager) wire(msg proto.Message, typeURL string, gen uint64) (*wire, error) {
	m.rawMu.Lock()
	if m.rawGen != gen {
		m.rawGen, m.raw, m.byHash = gen, map[proto.Message]*wire{}, map[uint64][]*wire{}
	} else if m.raw == nil {
		m.raw = map[proto.Message]*wire{}
	}
	w, ok := m.raw[msg]
	m.rawMu.Unlock()
	if ok {
		return w, nil
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return nil, err
	}
	h := fnv64(raw)
	name := cachev3.GetResourceName(msg)
	m.rawMu.Lock()
	defer m.rawMu.Unlock()
	if m.rawGen == gen {
		// Classes often translate a resource to the same bytes (a
		// sidecar's listeners in two namespaces): keep one copy.
		for _, o := range m.byHash[h] {
			if o.delta.Name == name && o.any.TypeUrl == typeURL && bytes.Equal(o.any.Value, raw) {
				if m.raw != nil {
					m.raw[msg] = o
				}
				return o, nil
			}
		}
	}
	a := &anypb.Any{TypeUrl: typeURL, Value: raw}
	w = &wire{hash: h, any: a, delta: &discovery.Resource{Name: name, Version: strconv.FormatUint(h, 16), Resource: a}}
	if m.rawGen == gen && m.raw != nil {
		m.raw[msg] = w
		m.byHash[h] = append(m.byHash[h], w)
	}
	return w, nil
}

func typeName(t types.ResponseType) string {
	switch t {
	case types.Cluster:
		return "cluster"
	case types.Listener:
		return "listener"
	case types.Route:
		return "route"
	case types.Endpoint:
		return "endpoints"
	}
	return "resource"
}

func fnv64(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// ClassView is what the admin endpoints show of a class.
type ClassView struct {
	Key          string
	Proxy        translate.Proxy
	Streams      int
	Version      string
	TypeVersions map[string]string
	Problems     []inputs.Problem
	Error        string
	SetAt        time.Time
}

// Classes lists the classes, sorted by key.
func (m *Manager) Classes() []ClassView {
	m.mu.Lock()
	cs := make([]*class, 0, len(m.classes))
	for _, c := range m.classes {
		cs = append(cs, c)
	}
	m.mu.Unlock()
	out := make([]ClassView, 0, len(cs))
	for _, c := range cs {
		c.buildMu.Lock()
		v := ClassView{Key: c.key, Proxy: c.proxy, SetAt: c.setAt}
		if c.current != nil {
			v.Version, v.TypeVersions, v.Problems = c.current.version, c.current.typeVersions, c.current.problems
		}
		if c.err != nil {
			v.Error = c.err.Error()
		}
		c.buildMu.Unlock()
		m.mu.Lock()
		v.Streams = c.streams
		m.mu.Unlock()
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Served decodes what class key is being served, with its version; ok is
// false when the class has no snapshot.
func (m *Manager) Served(key string) (res *translate.Resources, version string, ok bool, err error) {
	m.mu.Lock()
	c := m.classes[key]
	m.mu.Unlock()
	if c == nil {
		return nil, "", false, nil
	}
	c.buildMu.Lock()
	b := c.current
	c.buildMu.Unlock()
	if b == nil {
		return nil, "", false, nil
	}
	res = &translate.Resources{Problems: b.problems, RegistryOnly: b.registryOnly}
	for url, t := range b.sotw {
		for _, a := range t.all {
			msg, err := a.UnmarshalNew()
			if err != nil {
				return nil, "", false, fmt.Errorf("decoding %s: %w", url, err)
			}
			switch x := msg.(type) {
			case *cluster.Cluster:
				res.Clusters = append(res.Clusters, x)
			case *endpoint.ClusterLoadAssignment:
				res.Endpoints = append(res.Endpoints, x)
			case *listener.Listener:
				res.Listeners = append(res.Listeners, x)
			case *route.RouteConfiguration:
				res.Routes = append(res.Routes, x)
			}
		}
	}
	return res, b.version, true, nil
}
