package watch

import (
	"context"
	"errors"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kwatch "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// Why a list or watch call failed.
const (
	// Per resource: the other kinds are unaffected.
	reasonForbidden = "forbidden"  // RBAC: the verb is not granted
	reasonNotServed = "not_served" // 404/405: CRD not installed, API not enabled
	reasonError     = "error"      // any other answer from the API server
	// For the whole source: every resource fails the same way at once.
	reasonUnreachable  = "unreachable"  // no answer: connection refused, timeout, TLS
	reasonUnauthorized = "unauthorized" // credentials rejected
	// Not a failure: the reflector relists.
	reasonExpired = "expired" // 410 Gone: resourceVersion too old
)

// failureRemind is how often a failure that persists is logged again.
const failureRemind = 10 * time.Minute

// kubeResource is one informer: a kind in one namespace, in all
// namespaces, or cluster-scoped. It records the outcome of every list and
// watch call, so the source can say which resource fails and why, decide
// when to stop waiting for it, and notice when it works again.
type kubeResource struct {
	kind      string
	gvr       schema.GroupVersionResource
	namespace string // "" for all namespaces
	cluster   bool   // cluster-scoped
	informer  cache.SharedIndexInformer
	src       *KubeSource

	mu sync.Mutex
	// failure since the last successful call, nil when healthy.
	failErr   error
	reason    string
	verbs     map[string]bool // forbidden verbs
	failSince time.Time
	// unavailable: never synced and not worth waiting for (forbidden, not
	// served, or failing past the sync timeout). Treated as empty.
	unavailable bool
	timeout     *time.Timer
	// loggedReason is the failure last logged at warn, loggedAt when.
	loggedReason string
	loggedAt     time.Time
}

// name is group/version/resource, as RBAC rules and error messages say it.
func (r *kubeResource) name() string {
	return r.gvr.GroupVersion().String() + "/" + r.gvr.Resource
}

func (r *kubeResource) scope() string {
	if r.cluster {
		return ""
	}
	if r.namespace == "" {
		return "all"
	}
	return r.namespace
}

// typedClient is what every generated typed client offers for one kind.
type typedClient[L runtime.Object] interface {
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (kwatch.Interface, error)
}

// newKubeResource makes the informer of one kind, over a typed client,
// with every call observed. client is the clientset, asked whether it
// supports watch-list (the fake clientsets do not).
func newKubeResource[L runtime.Object](s *KubeSource, kind string, gvr schema.GroupVersionResource, namespace string,
	c typedClient[L], example runtime.Object, tweak func(*metav1.ListOptions), client any) *kubeResource {
	r := &kubeResource{kind: kind, gvr: gvr, namespace: namespace, src: s, verbs: map[string]bool{}}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			if tweak != nil {
				tweak(&o)
			}
			l, err := c.List(ctx, o)
			r.observe(ctx, "list", err)
			if err != nil {
				return nil, err
			}
			return l, nil
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (kwatch.Interface, error) {
			if tweak != nil {
				tweak(&o)
			}
			w, err := c.Watch(ctx, o)
			r.observe(ctx, "watch", err)
			return w, err
		},
	}
	r.informer = cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, client), example,
		cache.SharedIndexInformerOptions{ObjectDescription: r.name()})
	// managedFields are big and never read.
	_ = r.informer.SetTransform(func(obj any) (any, error) {
		if m, ok := obj.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
		return obj, nil
	})
	_ = r.informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
		r.listAndWatchFailed(ctx, err)
	})
	_, _ = r.informer.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(_ any, initial bool) {
			// The first list is read whole once the informer has synced.
			if !initial {
				s.objectEvent(kind, "add")
			}
		},
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(metav1.Object)
			c, ok2 := cur.(metav1.Object)
			if ok1 && ok2 && o.GetResourceVersion() == c.GetResourceVersion() && o.GetResourceVersion() != "" {
				return // a resync or relist of the same version
			}
			s.objectEvent(kind, "update")
		},
		DeleteFunc: func(any) { s.objectEvent(kind, "delete") },
	})
	return r
}

// classify names why a call failed.
func classify(err error) string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return reasonUnreachable
	}
	switch {
	case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
		return reasonExpired
	case apierrors.IsForbidden(err):
		return reasonForbidden
	case apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err):
		return reasonNotServed
	case apierrors.IsUnauthorized(err):
		return reasonUnauthorized
	}
	return reasonError
}

// observe records the outcome of one list or watch call.
func (r *kubeResource) observe(ctx context.Context, verb string, err error) {
	if err == nil {
		r.succeeded()
		return
	}
	if ctx.Err() != nil {
		return // shutting down
	}
	reason := classify(err)
	r.src.metrics.requestErrors.WithLabelValues(r.name(), verb, reason).Inc()
	if reason == reasonExpired {
		r.src.log.Debug("kubernetes watch expired: relisting", zap.String("resource", r.name()), zap.Error(err))
		return
	}
	r.mu.Lock()
	if r.failErr == nil {
		r.failSince = time.Now()
	}
	r.failErr, r.reason = err, reason
	if reason == reasonForbidden {
		r.verbs[verb] = true
	}
	r.mu.Unlock()
	if reason == reasonUnreachable || reason == reasonUnauthorized {
		r.src.serverFailed(reason, err)
	}
}

func (r *kubeResource) succeeded() {
	r.src.serverAnswered()
	r.mu.Lock()
	failed, logged := r.failErr != nil, r.loggedReason
	r.failErr, r.reason, r.loggedReason = nil, "", ""
	r.verbs = map[string]bool{}
	if r.timeout != nil {
		r.timeout.Stop()
		r.timeout = nil
	}
	r.mu.Unlock()
	if failed && logged != "" {
		r.src.log.Info("kubernetes resource readable again", zap.String("resource", r.name()), zap.String("namespace", r.scope()))
	}
}

// listAndWatchFailed runs when the reflector gives up one list-and-watch
// cycle (it retries with backoff). This is where a resource that cannot be
// read is reported: once, in one line, and again only as a reminder.
func (r *kubeResource) listAndWatchFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	reason := classify(err)
	if reason == reasonExpired {
		return
	}
	r.mu.Lock()
	if r.failErr == nil {
		// A failure the call wrappers did not see (a broken watch stream).
		r.failErr, r.reason, r.failSince = err, reason, time.Now()
	}
	reason = r.reason
	synced := r.informer.HasSynced()
	changed := false
	// Never synced means an empty cache (a watch-list keeps its initial
	// events apart until they are complete), whatever calls succeeded
	// before: a watch-list request the server accepted may still end
	// before its initial events, as when a CRD is being deleted.
	if !synced && !r.unavailable && (reason == reasonForbidden || reason == reasonNotServed) {
		r.unavailable, changed = true, true
	}
	if !synced && !r.unavailable && reason == reasonError && r.timeout == nil {
		r.timeout = time.AfterFunc(r.src.syncTimeout, r.expire)
	}
	verbs := make([]string, 0, len(r.verbs))
	for v := range r.verbs {
		verbs = append(verbs, v)
	}
	sort.Strings(verbs)
	logNow := reason != reasonUnreachable && reason != reasonUnauthorized &&
		(reason != r.loggedReason || time.Since(r.loggedAt) >= failureRemind)
	if logNow {
		r.loggedReason, r.loggedAt = reason, time.Now()
	}
	last := r.failErr
	r.mu.Unlock()
	if logNow {
		r.report(reason, verbs, synced, last)
	}
	if changed {
		r.src.stateChanged()
	}
}

// expire gives up waiting for a resource that keeps failing with errors
// from the API server (not outages: those keep the source unready).
func (r *kubeResource) expire() {
	r.mu.Lock()
	changed := false
	if !r.informer.HasSynced() && r.failErr != nil && r.reason == reasonError && !r.unavailable {
		r.unavailable, changed = true, true
	}
	r.timeout = nil
	r.mu.Unlock()
	if changed {
		r.src.log.Warn("kubernetes resource still failing after the sync timeout: treated as empty until it can be read",
			zap.String("resource", r.name()), zap.String("namespace", r.scope()), zap.Duration("timeout", r.src.syncTimeout))
		r.src.stateChanged()
	}
}

var forbiddenVerb = regexp.MustCompile(`cannot (\w+) resource`)

func (r *kubeResource) report(reason string, verbs []string, synced bool, err error) {
	effect := "treated as empty until it can be read; the other kinds are served"
	if synced {
		effect = "serving what was last read; the other kinds are served"
	}
	fields := []zap.Field{zap.String("resource", r.name()), zap.String("namespace", r.scope())}
	switch reason {
	case reasonForbidden:
		if len(verbs) == 0 {
			if m := forbiddenVerb.FindStringSubmatch(err.Error()); m != nil {
				verbs = []string{m[1]}
			} else {
				verbs = []string{"list", "watch"}
			}
		}
		group := r.gvr.Group
		if group == "" {
			group = `""`
		}
		rbac := "allow get, list, watch on apiGroups " + group + " resources " + r.gvr.Resource
		if r.namespace == "" && !r.cluster {
			rbac += " cluster-wide, or restrict --namespace to namespaces where it is allowed"
		}
		fields = append(fields, zap.String("missing_verbs", strings.Join(verbs, ",")), zap.String("rbac", rbac),
			zap.String("effect", effect), zap.Error(err))
		r.src.log.Warn("kubernetes RBAC forbids reading a resource", fields...)
	case reasonNotServed:
		fields = append(fields, zap.String("effect", effect), zap.Error(err))
		r.src.log.Warn("kubernetes API server does not serve a resource (CRD not installed?)", fields...)
	default:
		fields = append(fields, zap.String("effect", "retrying with backoff; "+effect), zap.Error(err))
		r.src.log.Warn("reading a kubernetes resource failed", fields...)
	}
}

// KubeResourceStatus is what /debug/inputs shows for one informer.
type KubeResourceStatus struct {
	// Resource is group/version/resource.
	Resource string `json:"resource"`
	// Namespace is the namespace watched, "all", or "" for cluster-scoped.
	Namespace string `json:"namespace,omitempty"`
	// State: syncing (first list not done), synced, failing (synced, but
	// the API server cannot be read now: what was last read is served), or
	// unavailable (never read: forbidden, not served, or failing past the
	// sync timeout; treated as empty).
	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	Error   string    `json:"error,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Objects int       `json:"objects"`
}

func (r *kubeResource) status() KubeResourceStatus {
	synced := r.informer.HasSynced()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := KubeResourceStatus{Resource: r.name(), Namespace: r.scope(), Objects: len(r.informer.GetStore().ListKeys())}
	switch {
	case synced && r.failErr == nil:
		st.State = "synced"
	case synced:
		st.State = "failing"
	case r.unavailable:
		st.State = "unavailable"
	default:
		st.State = "syncing"
	}
	if r.failErr != nil {
		st.Reason, st.Error, st.Since = r.reason, r.failErr.Error(), r.failSince
	}
	return st
}

// settled reports whether the source may stop waiting for the resource.
func (r *kubeResource) settled() bool {
	if r.informer.HasSynced() {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unavailable
}

// kubeMetrics are the source's Prometheus metrics.
type kubeMetrics struct {
	events        *prometheus.CounterVec
	requestErrors *prometheus.CounterVec
	src           *KubeSource
}

var (
	descResourceState = prometheus.NewDesc("chokepoint_kube_resource_state",
		"1 for the state each watched resource is in (syncing, synced, failing, unavailable).",
		[]string{"resource", "namespace", "state"}, nil)
	descResourceObjects = prometheus.NewDesc("chokepoint_kube_resource_objects",
		"Objects in each watched resource's informer cache.", []string{"resource", "namespace"}, nil)
)

func newKubeMetrics(s *KubeSource, reg prometheus.Registerer) *kubeMetrics {
	m := &kubeMetrics{
		src: s,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chokepoint_kube_events_total", Help: "Kubernetes informer events, by kind and event (add, update, delete)."},
			[]string{"kind", "event"}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chokepoint_kube_request_errors_total", Help: "Failed Kubernetes list and watch calls, by resource, verb and reason."},
			[]string{"resource", "verb", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.requestErrors, m)
	}
	return m
}

func (m *kubeMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- descResourceState
	ch <- descResourceObjects
}

func (m *kubeMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, st := range m.src.Status() {
		for _, s := range []string{"syncing", "synced", "failing", "unavailable"} {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descResourceState, prometheus.GaugeValue, v, st.Resource, st.Namespace, s)
		}
		ch <- prometheus.MustNewConstMetric(descResourceObjects, prometheus.GaugeValue, float64(st.Objects), st.Resource, st.Namespace)
	}
}
