package watch

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

// MeshConfigMap is the ConfigMap holding the mesh config under the key
// `mesh`, in the mesh's root namespace, as istiod reads it.
const MeshConfigMap = "istio"

// KubeOptions configure a KubeSource.
type KubeOptions struct {
	// Client reads Services, EndpointSlices, Namespaces and the mesh
	// ConfigMap; Istio reads the networking.istio.io/v1 kinds.
	Client kubernetes.Interface
	Istio  istioclient.Interface
	// Namespaces restricts the namespaced kinds (Istio kinds, Services,
	// EndpointSlices) to these namespaces; empty means all. Namespaces and
	// the mesh ConfigMap are read regardless.
	Namespaces []string
	// MeshNamespace holds the `istio` ConfigMap; default istio-system.
	MeshNamespace string
	// Check validates assembled inputs (translate's index problems). An
	// object with Error problems is replaced by its last good version, or
	// left out if it never had one, until it is fixed. Optional.
	Check func(*inputs.Inputs) []inputs.Problem
	// Holdoff is how long a burst of changes must be quiet before new
	// inputs are built; MaxHoldoff caps the wait from the first change.
	Holdoff, MaxHoldoff time.Duration
	// SyncTimeout is how long a resource that was never read and keeps
	// failing with errors from the API server (other than forbidden or not
	// served, which count at once) is waited for before it is treated as
	// empty. An unreachable API server is waited for without limit.
	// Default one minute.
	SyncTimeout time.Duration
	// Metrics, if set, receives the source's metrics.
	Metrics prometheus.Registerer
	Log     *zap.Logger
}

// KubeSource produces inputs from a Kubernetes API server, read-only: it
// only lists and watches (through client-go informers) and never writes.
//
// Nothing is produced until every informer has synced or been given up on
// (a resource RBAC forbids, or whose CRD is not installed, is treated as
// empty and reported): a snapshot built from half the kinds could take
// routes or ServiceEntries away. After that, each burst of changes yields
// one new Inputs value built from the informer caches. When the API server
// goes away the caches keep their content and nothing is produced, so the
// last config stays in effect; client-go's reflectors reconnect with
// backoff and relist, and a relist only ever replaces cache content with
// what the server returned.
type KubeSource struct {
	opts        KubeOptions
	log         *zap.Logger
	syncTimeout time.Duration
	resources   []*kubeResource
	metrics     *kubeMetrics

	// state is signalled when a resource syncs or is given up on; objects
	// when an object changes.
	state, objects chan struct{}
	pending        atomic.Int64
	ready          chan struct{}
	running        atomic.Bool

	// down is the state of an outage of the whole API server.
	down struct {
		sync.Mutex
		reason   string
		since    time.Time
		loggedAt time.Time
		warned   bool
	}

	// Run's goroutine only.
	syncedAtBuild int
	good          map[string]inputs.Object
	goodMesh      *meshconfig.MeshConfig
	goodMeshSrc   inputs.Source
}

var (
	gvrServiceEntry    = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
	gvrGateway         = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}
	gvrVirtualService  = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	gvrDestinationRule = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
	gvrSidecar         = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "sidecars"}
	gvrService         = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrEndpointSlice   = schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
	gvrNamespace       = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrConfigMap       = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

// NewKubeSource sets up the informers; Run starts them.
func NewKubeSource(o KubeOptions) (*KubeSource, error) {
	if o.Client == nil || o.Istio == nil {
		return nil, errors.New("kubernetes source: both the kubernetes and the istio client are required")
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.MeshNamespace == "" {
		o.MeshNamespace = "istio-system"
	}
	s := &KubeSource{
		opts: o, log: o.Log, syncTimeout: o.SyncTimeout,
		state: make(chan struct{}, 1), objects: make(chan struct{}, 1), ready: make(chan struct{}),
	}
	if s.syncTimeout <= 0 {
		s.syncTimeout = time.Minute
	}
	s.metrics = newKubeMetrics(s, o.Metrics)

	namespaces := []string{metav1.NamespaceAll}
	if len(o.Namespaces) > 0 {
		seen := map[string]bool{}
		namespaces = nil
		for _, ns := range o.Namespaces {
			if ns == "" {
				return nil, errors.New("kubernetes source: empty namespace name")
			}
			if !seen[ns] {
				seen[ns] = true
				namespaces = append(namespaces, ns)
			}
		}
		sort.Strings(namespaces)
	}
	ic, kc := o.Istio, o.Client
	for _, ns := range namespaces {
		nw := ic.NetworkingV1()
		s.resources = append(s.resources,
			newKubeResource(s, "ServiceEntry", gvrServiceEntry, ns, nw.ServiceEntries(ns), &networking.ServiceEntry{}, nil, ic),
			newKubeResource(s, "Gateway", gvrGateway, ns, nw.Gateways(ns), &networking.Gateway{}, nil, ic),
			newKubeResource(s, "VirtualService", gvrVirtualService, ns, nw.VirtualServices(ns), &networking.VirtualService{}, nil, ic),
			newKubeResource(s, "DestinationRule", gvrDestinationRule, ns, nw.DestinationRules(ns), &networking.DestinationRule{}, nil, ic),
			newKubeResource(s, "Sidecar", gvrSidecar, ns, nw.Sidecars(ns), &networking.Sidecar{}, nil, ic),
			newKubeResource(s, "Service", gvrService, ns, kc.CoreV1().Services(ns), &corev1.Service{}, nil, kc),
			newKubeResource(s, "EndpointSlice", gvrEndpointSlice, ns, kc.DiscoveryV1().EndpointSlices(ns), &discoveryv1.EndpointSlice{}, nil, kc),
		)
	}
	nsRes := newKubeResource(s, "Namespace", gvrNamespace, "", kc.CoreV1().Namespaces(), &corev1.Namespace{}, nil, kc)
	nsRes.cluster = true
	meshName := "metadata.name=" + MeshConfigMap
	s.resources = append(s.resources, nsRes,
		newKubeResource(s, "ConfigMap", gvrConfigMap, o.MeshNamespace, kc.CoreV1().ConfigMaps(o.MeshNamespace), &corev1.ConfigMap{},
			func(lo *metav1.ListOptions) { lo.FieldSelector = meshName }, kc))
	return s, nil
}

// Run starts the informers and calls apply with new inputs: once when all
// of them have synced (or were given up on), then after each burst of
// changes, until ctx is done.
func (s *KubeSource) Run(ctx context.Context, apply func(*inputs.Inputs)) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("kubernetes source: Run called twice")
	}
	for _, r := range s.resources {
		go r.informer.RunWithContext(ctx)
		go func() {
			select {
			case <-r.informer.HasSyncedChecker().Done():
				s.stateChanged()
			case <-ctx.Done():
			}
		}()
	}
	start := time.Now()
	started := false
	db := newDebounce(s.opts.Holdoff, s.opts.MaxHoldoff)
	defer db.stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.state:
			if started {
				// A resource synced late (RBAC granted, CRD installed):
				// its first list arrives as a whole.
				if s.syncedCount() != s.syncedAtBuild {
					notify(s.objects)
				}
				continue
			}
			if !s.Synced() {
				continue
			}
			started = true
			s.pending.Store(0)
			in := s.build()
			var unavailable []string
			for _, st := range s.Status() {
				if st.State == "unavailable" {
					unavailable = append(unavailable, st.Resource+" ("+st.Reason+")")
				}
			}
			s.log.Info("kubernetes informers synced", zap.Duration("took", time.Since(start)),
				zap.Int("objects", len(in.Objects())), zap.Strings("unavailable", unavailable))
			apply(in)
			close(s.ready)
		case <-s.objects:
			if !started {
				continue // the first build reads everything
			}
			db.change()
		case <-db.C():
			db.fired()
			events := s.pending.Swap(0)
			t := time.Now()
			in := s.build()
			s.log.Info("kubernetes objects changed", zap.Int64("events", events), zap.Int("objects", len(in.Objects())),
				zap.Duration("read", time.Since(t)))
			apply(in)
		}
	}
}

// Ready is closed once the first inputs were applied.
func (s *KubeSource) Ready() <-chan struct{} { return s.ready }

// Synced reports whether every resource has synced or been given up on.
func (s *KubeSource) Synced() bool {
	for _, r := range s.resources {
		if !r.settled() {
			return false
		}
	}
	return true
}

// Status describes every informer, for /debug/inputs.
func (s *KubeSource) Status() []KubeResourceStatus {
	out := make([]KubeResourceStatus, 0, len(s.resources))
	for _, r := range s.resources {
		out = append(out, r.status())
	}
	return out
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *KubeSource) stateChanged() { notify(s.state) }

func (s *KubeSource) objectEvent(kind, event string) {
	s.metrics.events.WithLabelValues(kind, event).Inc()
	s.pending.Add(1)
	notify(s.objects)
}

// serverFailed logs an outage of the whole API server once (and as a
// reminder while it lasts), however many informers run into it; a flapping
// connection is logged at most once a minute.
func (s *KubeSource) serverFailed(reason string, err error) {
	s.down.Lock()
	defer s.down.Unlock()
	same := s.down.reason == reason
	s.down.reason = reason
	if s.down.since.IsZero() {
		s.down.since = time.Now()
	}
	if (same && time.Since(s.down.loggedAt) < failureRemind) || time.Since(s.down.loggedAt) < time.Minute {
		s.log.Debug("kubernetes API server still failing", zap.String("reason", reason), zap.Error(err))
		return
	}
	s.down.loggedAt, s.down.warned = time.Now(), true
	effect := "the last config stays in effect; informers retry with backoff"
	select {
	case <-s.ready:
	default:
		effect = "nothing is served until every informer has synced; informers retry with backoff"
	}
	msg := "kubernetes API server unreachable: " + effect
	if reason == reasonUnauthorized {
		msg = "kubernetes API server rejects the credentials: " + effect
	}
	s.log.Warn(msg, zap.Error(err))
}

func (s *KubeSource) serverAnswered() {
	s.down.Lock()
	defer s.down.Unlock()
	if s.down.reason == "" {
		return
	}
	if s.down.warned {
		s.log.Info("kubernetes API server answers again", zap.Duration("down", time.Since(s.down.since)))
	}
	s.down.reason, s.down.since, s.down.warned = "", time.Time{}, false
}

func (s *KubeSource) syncedCount() int {
	n := 0
	for _, r := range s.resources {
		if r.informer.HasSynced() {
			n++
		}
	}
	return n
}

// build assembles inputs from the informer caches and checks them: an
// object with errors is replaced by its last good version (or left out),
// with its errors kept visible.
func (s *KubeSource) build() *inputs.Inputs {
	s.syncedAtBuild = s.syncedCount()
	cand := s.read()
	if s.opts.Check == nil {
		s.remember(cand)
		return cand
	}
	have := map[string]bool{}
	for _, o := range cand.Objects() {
		have[o.KindName()] = true
	}
	bad := map[string]bool{}
	var rejected []inputs.Problem
	for _, p := range s.opts.Check(cand) {
		if p.Severity == inputs.SeverityError && p.Source.Kube != "" && have[p.Object] {
			bad[p.Object] = true
			rejected = append(rejected, p)
		}
	}
	if len(bad) == 0 {
		s.remember(cand)
		return cand
	}
	in := &inputs.Inputs{
		ServiceEntries:   pick(cand.ServiceEntries, bad, s.good),
		Gateways:         pick(cand.Gateways, bad, s.good),
		VirtualServices:  pick(cand.VirtualServices, bad, s.good),
		DestinationRules: pick(cand.DestinationRules, bad, s.good),
		Sidecars:         pick(cand.Sidecars, bad, s.good),
		Services:         pick(cand.Services, bad, s.good),
		EndpointSlices:   pick(cand.EndpointSlices, bad, s.good),
		Namespaces:       pick(cand.Namespaces, bad, s.good),
		Mesh:             cand.Mesh, MeshSource: cand.MeshSource,
	}
	in.Problems = append(append(in.Problems, cand.Problems...), rejected...)
	names := make([]string, 0, len(bad))
	for k := range bad {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p := inputs.Problem{Severity: inputs.SeverityWarning, Object: k,
			Message: "the object has errors and was not applied: nothing from it is served"}
		for _, r := range rejected {
			if r.Object == k {
				p.Source = r.Source
				break
			}
		}
		if g, ok := s.good[k]; ok {
			p.Message = fmt.Sprintf("the object has errors: its last good version (resourceVersion %s) is served until it is fixed", g.GetSource().Kube)
		}
		in.Problems = append(in.Problems, p)
	}
	s.remember(in)
	return in
}

// remember records the versions in effect as the good ones; objects gone
// from the cluster are forgotten.
func (s *KubeSource) remember(in *inputs.Inputs) {
	good := make(map[string]inputs.Object, len(s.good))
	for _, o := range in.Objects() {
		good[o.KindName()] = o
	}
	s.good = good
}

// pick returns list with each bad object replaced by its last good version
// or dropped.
func pick[T inputs.Object](list []T, bad map[string]bool, good map[string]inputs.Object) []T {
	out := make([]T, 0, len(list))
	for _, o := range list {
		k := o.KindName()
		if !bad[k] {
			out = append(out, o)
			continue
		}
		if g, ok := good[k].(T); ok {
			out = append(out, g)
		}
	}
	return out
}

// read wraps what the informer caches hold now.
func (s *KubeSource) read() *inputs.Inputs {
	in := &inputs.Inputs{}
	var mesh *corev1.ConfigMap
	for _, r := range s.resources {
		for _, item := range r.informer.GetStore().List() {
			switch o := item.(type) {
			case *networking.ServiceEntry:
				in.ServiceEntries = append(in.ServiceEntries, inputs.NewServiceEntry(inNamespace(o), kubeSource(o)))
			case *networking.Gateway:
				in.Gateways = append(in.Gateways, inputs.NewGateway(inNamespace(o), kubeSource(o)))
			case *networking.VirtualService:
				in.VirtualServices = append(in.VirtualServices, inputs.NewVirtualService(inNamespace(o), kubeSource(o)))
			case *networking.DestinationRule:
				in.DestinationRules = append(in.DestinationRules, inputs.NewDestinationRule(inNamespace(o), kubeSource(o)))
			case *networking.Sidecar:
				in.Sidecars = append(in.Sidecars, inputs.NewSidecar(inNamespace(o), kubeSource(o)))
			case *corev1.Service:
				in.Services = append(in.Services, inputs.NewService(inNamespace(o), kubeSource(o)))
			case *discoveryv1.EndpointSlice:
				in.EndpointSlices = append(in.EndpointSlices, inputs.NewEndpointSlice(inNamespace(o), kubeSource(o)))
			case *corev1.Namespace:
				in.Namespaces = append(in.Namespaces, inputs.NewNamespace(o, kubeSource(o)))
			case *corev1.ConfigMap:
				if o.Name == MeshConfigMap && o.Namespace == s.opts.MeshNamespace {
					mesh = o
				}
			}
		}
	}
	sortObjects(in.ServiceEntries)
	sortObjects(in.Gateways)
	sortObjects(in.VirtualServices)
	sortObjects(in.DestinationRules)
	sortObjects(in.Sidecars)
	sortObjects(in.Services)
	sortObjects(in.EndpointSlices)
	sortObjects(in.Namespaces)
	s.resolveMesh(in, mesh)
	return in
}

// resolveMesh applies the ConfigMap's `mesh` key over Istio's defaults. A
// mesh config with errors keeps its last good version in effect (else the
// defaults), with the error reported: a typo must not silently switch
// REGISTRY_ONLY back to ALLOW_ANY.
func (s *KubeSource) resolveMesh(in *inputs.Inputs, cm *corev1.ConfigMap) {
	in.Mesh = inputs.DefaultMesh()
	if cm == nil {
		s.goodMesh = nil
		return
	}
	src := kubeSource(cm)
	object := "ConfigMap " + cm.Namespace + "/" + cm.Name
	var field, msg string
	var mesh *meshconfig.MeshConfig
	js, err := yaml.YAMLToJSON([]byte(cm.Data["mesh"]))
	if err != nil {
		field, msg = "data.mesh", "invalid YAML: "+cleanYAMLError(err)
	} else if m, f, err := ParseMesh(js); err != nil {
		field, msg = "data."+f, err.Error()
	} else {
		mesh = m
	}
	if mesh != nil {
		in.Mesh, in.MeshSource = mesh, src
		s.goodMesh, s.goodMeshSrc = mesh, src
		return
	}
	in.Problems = append(in.Problems, inputs.Problem{Severity: inputs.SeverityError, Source: src, Object: object, Field: field, Message: msg})
	warn := inputs.Problem{Severity: inputs.SeverityWarning, Source: src, Object: object,
		Message: "the mesh config has errors: Istio's defaults are used until it is fixed"}
	in.MeshSource = src
	if s.goodMesh != nil {
		in.Mesh, in.MeshSource = s.goodMesh, s.goodMeshSrc
		warn.Message = fmt.Sprintf("the mesh config has errors: its last good version (resourceVersion %s) is served until it is fixed", s.goodMeshSrc.Kube)
	}
	in.Problems = append(in.Problems, warn)
}

// kubeSource names an object read from the API server by its
// resourceVersion (objects from fake clients may have none).
func kubeSource(o metav1.Object) inputs.Source {
	rv := o.GetResourceVersion()
	if rv == "" {
		rv = "unknown"
	}
	return inputs.Source{Kube: rv}
}

type deepCopier[T any] interface {
	metav1.Object
	DeepCopy() T
}

// inNamespace puts an object without a namespace in the default one,
// without touching the informer's copy.
func inNamespace[T deepCopier[T]](o T) T {
	if o.GetNamespace() != "" {
		return o
	}
	c := o.DeepCopy()
	c.SetNamespace(DefaultNamespace)
	return c
}

func sortObjects[T inputs.Object](l []T) {
	sort.Slice(l, func(i, j int) bool {
		if l[i].GetNamespace() != l[j].GetNamespace() {
			return l[i].GetNamespace() < l[j].GetNamespace()
		}
		return l[i].GetName() < l[j].GetName()
	})
}
