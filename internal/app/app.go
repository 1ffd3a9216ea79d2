// Package app wires the sources, the snapshot manager and the servers into
// one running control plane; cmd/chokepoint serve and the end-to-end tests
// both run it.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	"k8s.io/client-go/kubernetes"

	"github.com/chokepoint-xds/chokepoint/configdump"
	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/server"
	"github.com/chokepoint-xds/chokepoint/snapshot"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

// Options configure a control plane.
type Options struct {
	// Files are files and directories of Istio YAML, watched; Mesh a mesh
	// config file (overrides any istio ConfigMap).
	Files []string
	Mesh  string
	// Kube reads a Kubernetes API server too (see watch.KubeSource):
	// Kubeconfig (else $KUBECONFIG, in-cluster, ~/.kube/config), restricted
	// to Namespaces if any. KubeClient and IstioClient, when both set, are
	// used instead of clients built from the kubeconfig.
	Kube            bool
	Kubeconfig      string
	Namespaces      []string
	KubeClient      kubernetes.Interface
	IstioClient     istioclient.Interface
	KubeSyncTimeout time.Duration

	XDSAddress   string
	AdminAddress string
	TLS          *server.TLSConfig
	Holdoff      time.Duration
	MaxHoldoff   time.Duration
	Drain        time.Duration
	// MaxInflight is how many streams may have unacknowledged responses at
	// once (istiod's push throttle); 0 means snapshot.DefaultMaxInflight.
	MaxInflight int
	// MaxInflightBytes bounds the same by response size; 0 means
	// snapshot.DefaultMaxInflightBytes.
	MaxInflightBytes int64
	Log              *zap.Logger
}

// App is a running control plane.
type App struct {
	opts    Options
	log     *zap.Logger
	Manager *snapshot.Manager
	Status  *snapshot.Status
	Metrics *snapshot.Metrics
	// files reads Options.Files and Options.Mesh; kube the API server.
	// Either may be nil, not both.
	files  *watch.FileSource
	kube   *watch.KubeSource
	grpc   *grpc.Server
	admin  *http.Server
	xdsLis net.Listener
	adm    net.Listener

	// latest holds each source's newest inputs; nothing is applied until
	// every source has produced its first.
	latest struct {
		sync.Mutex
		files, kube *inputs.Inputs
		// kubeSeen is set once the Kubernetes source has delivered.
		kubeSeen bool
	}
	// applyMu serialises applies from the sources' goroutines.
	applyMu sync.Mutex
	// checked remembers the index a source's Check built, to reuse it when
	// the same inputs are applied.
	checked struct {
		sync.Mutex
		from        source
		cand, other *inputs.Inputs
		merged      *inputs.Inputs
		idx         *translate.Index
	}
	cur struct {
		sync.Mutex
		in *inputs.Inputs
	}
}

type source int

const (
	fromFiles source = iota
	fromKube
)

// New loads the inputs, builds the first index and opens the listeners.
// The error is for what makes serving impossible (a missing path, a port in
// use, a bad TLS file).
func New(ctx context.Context, o Options) (*App, error) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Drain == 0 {
		o.Drain = 5 * time.Second
	}
	if len(o.Files) == 0 && o.Mesh == "" && !o.Kube {
		return nil, errors.New("nothing to serve: give files (-f) or a Kubernetes API server (--kube)")
	}
	a := &App{opts: o, log: o.Log}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.Metrics = snapshot.NewMetrics(reg)
	a.Manager = snapshot.NewManager(o.Log.Named("snapshot"), a.Metrics)
	a.Status = snapshot.NewStatus(a.Manager, o.Log.Named("xds"), o.MaxInflight, o.MaxInflightBytes)
	// The sources check inputs with the translator's own validation, on
	// the merge with the other source's inputs; the index built for that
	// is reused when the inputs are applied.
	if len(o.Files) > 0 || o.Mesh != "" {
		a.files = &watch.FileSource{
			Paths: o.Files, MeshFile: o.Mesh, Holdoff: o.Holdoff, MaxHoldoff: o.MaxHoldoff, Log: o.Log.Named("watch"),
			Check: func(in *inputs.Inputs) []inputs.Problem { return a.check(fromFiles, in) },
		}
	}
	if o.Kube {
		kc, ic := o.KubeClient, o.IstioClient
		if kc == nil || ic == nil {
			var err error
			if kc, ic, err = watch.KubeClientsFromConfig(o.Kubeconfig); err != nil {
				return nil, err
			}
		}
		watch.RouteKlog(o.Log.Named("client-go"))
		var err error
		a.kube, err = watch.NewKubeSource(watch.KubeOptions{
			Client: kc, Istio: ic, Namespaces: o.Namespaces, SyncTimeout: o.KubeSyncTimeout,
			Holdoff: o.Holdoff, MaxHoldoff: o.MaxHoldoff, Metrics: reg, Log: o.Log.Named("kube"),
			Check: func(in *inputs.Inputs) []inputs.Problem { return a.check(fromKube, in) },
		})
		if err != nil {
			return nil, err
		}
	}
	if a.files != nil {
		in, err := a.files.Load()
		if err != nil {
			return nil, err
		}
		a.apply(fromFiles, in)
	}

	var err error
	a.grpc, err = server.NewXDS(ctx, a.Manager.Cache(), a.Status, server.XDSOptions{TLS: o.TLS, Delta: a.Manager.DeltaServer(ctx, a.Status)})
	if err != nil {
		return nil, err
	}
	if a.xdsLis, err = net.Listen("tcp", o.XDSAddress); err != nil {
		return nil, fmt.Errorf("xDS listen: %w", err)
	}
	if a.adm, err = net.Listen("tcp", o.AdminAddress); err != nil {
		a.xdsLis.Close()
		return nil, fmt.Errorf("admin listen: %w", err)
	}
	admin := server.NewAdmin(a.Manager.Ready, reg)
	a.registerDebug(admin)
	a.admin = &http.Server{Handler: admin.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return a, nil
}

// XDSAddr and AdminAddr are the listening addresses.
func (a *App) XDSAddr() string   { return a.xdsLis.Addr().String() }
func (a *App) AdminAddr() string { return a.adm.Addr().String() }

// Reload reads the files now, as a change event would.
func (a *App) Reload() error {
	if a.files == nil {
		return nil
	}
	in, err := a.files.Load()
	if err != nil {
		return err
	}
	a.apply(fromFiles, in)
	return nil
}

// check is a source's Check hook: it validates the source's candidate
// inputs merged with the other source's current ones.
func (a *App) check(from source, cand *inputs.Inputs) []inputs.Problem {
	a.latest.Lock()
	other := a.latest.kube
	if from == fromKube {
		other = a.latest.files
	}
	a.latest.Unlock()
	merged := merge(from, cand, other)
	idx := translate.NewIndex(merged)
	a.checked.Lock()
	a.checked.from, a.checked.cand, a.checked.other, a.checked.merged, a.checked.idx = from, cand, other, merged, idx
	a.checked.Unlock()
	return idx.Problems()
}

func merge(from source, in, other *inputs.Inputs) *inputs.Inputs {
	if from == fromKube {
		return Merge(other, in)
	}
	return Merge(in, other)
}

// apply takes a source's new inputs and, once every source has delivered,
// makes their merge the current inputs.
func (a *App) apply(from source, in *inputs.Inputs) {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	a.latest.Lock()
	firstKube := from == fromKube && !a.latest.kubeSeen
	a.latest.Unlock()
	if firstKube && a.files != nil {
		// The files were checked before the cluster's objects were known:
		// check them again now, or a file referring to a cluster object
		// would be held back until it next changes.
		a.latest.Lock()
		a.latest.kube = in
		a.latest.Unlock()
		if files, err := a.files.Load(); err == nil {
			a.latest.Lock()
			a.latest.files = files
			a.latest.Unlock()
		} else {
			a.log.Error("reloading files failed: keeping the previous ones", zap.Error(err))
		}
	}
	a.latest.Lock()
	var other *inputs.Inputs
	switch from {
	case fromFiles:
		a.latest.files, other = in, a.latest.kube
	case fromKube:
		a.latest.kube, a.latest.kubeSeen, other = in, true, a.latest.files
	}
	complete := (a.files == nil || a.latest.files != nil) && (a.kube == nil || a.latest.kubeSeen)
	a.latest.Unlock()
	if !complete {
		return
	}

	a.checked.Lock()
	var merged *inputs.Inputs
	var idx *translate.Index
	if a.checked.idx != nil && a.checked.from == from && a.checked.cand == in && a.checked.other == other {
		merged, idx = a.checked.merged, a.checked.idx
	}
	a.checked.from, a.checked.cand, a.checked.other, a.checked.merged, a.checked.idx = 0, nil, nil, nil, nil
	a.checked.Unlock()
	if idx == nil {
		merged = merge(from, in, other)
		idx = translate.NewIndex(merged)
	}
	errs := 0
	for _, p := range idx.Problems() {
		if p.Severity == inputs.SeverityError {
			errs++
			a.log.Warn("config error", zap.String("source", p.Source.String()), zap.String("object", p.Object),
				zap.String("field", p.Field), zap.String("error", p.Message))
		} else {
			a.log.Debug("config warning", zap.String("source", p.Source.String()), zap.String("object", p.Object),
				zap.String("field", p.Field), zap.String("warning", p.Message))
		}
	}
	result := "ok"
	if errs > 0 {
		result = "errors"
	}
	a.Metrics.InputLoads.WithLabelValues(result).Inc()
	a.cur.Lock()
	a.cur.in = merged
	a.cur.Unlock()
	a.Manager.SetIndex(idx)
}

// Run serves until ctx is done, then stops accepting streams, lets open
// ones drain for Options.Drain, and returns nil.
func (a *App) Run(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() { errc <- a.grpc.Serve(a.xdsLis) }()
	go func() {
		if err := a.admin.Serve(a.adm); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	if a.files != nil {
		go func() {
			if err := a.files.Run(ctx, func(in *inputs.Inputs) { a.apply(fromFiles, in) }); err != nil {
				errc <- fmt.Errorf("watching files: %w", err)
			}
		}()
	}
	if a.kube != nil {
		go func() {
			if err := a.kube.Run(ctx, func(in *inputs.Inputs) { a.apply(fromKube, in) }); err != nil {
				errc <- fmt.Errorf("watching kubernetes: %w", err)
			}
		}()
	}
	a.log.Info("serving", zap.String("xds", a.XDSAddr()), zap.String("admin", a.AdminAddr()),
		zap.Strings("files", a.opts.Files), zap.Bool("kube", a.kube != nil), zap.Strings("namespaces", a.opts.Namespaces),
		zap.Bool("tls", a.opts.TLS != nil))
	select {
	case <-ctx.Done():
		a.log.Info("shutting down: no new streams, draining open ones", zap.Duration("drain", a.opts.Drain))
	case err := <-errc:
		a.log.Error("server failed", zap.Error(err))
		a.grpc.Stop()
		a.admin.Close()
		return err
	}
	done := make(chan struct{})
	go func() { a.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(a.opts.Drain):
		a.grpc.Stop()
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.admin.Shutdown(shutdownCtx)
	a.log.Info("stopped")
	return nil
}

// registerDebug adds the Istio-aware debug endpoints.
func (a *App) registerDebug(admin *server.Admin) {
	mgr, status := a.Manager, a.Status
	current := func() *inputs.Inputs { a.cur.Lock(); defer a.cur.Unlock(); return a.cur.in }
	admin.Handle("/debug/syncz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		server.WriteJSON(w, status.Sync())
	}))
	admin.Handle("/debug/classes", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		type row struct {
			Class        string            `json:"class"`
			Type         string            `json:"type"`
			Namespace    string            `json:"namespace"`
			Labels       map[string]string `json:"labels,omitempty"`
			Streams      int               `json:"streams"`
			Version      string            `json:"version"`
			TypeVersions map[string]string `json:"type_versions,omitempty"`
			Error        string            `json:"error,omitempty"`
			Problems     []inputs.Problem  `json:"problems,omitempty"`
		}
		var out []row
		for _, c := range mgr.Classes() {
			r := row{Class: c.Key, Type: string(c.Proxy.Type), Namespace: c.Proxy.Namespace, Labels: c.Proxy.Labels,
				Streams: c.Streams, Version: c.Version, TypeVersions: c.TypeVersions, Error: c.Error, Problems: c.Problems}
			out = append(out, r)
		}
		server.WriteJSON(w, out)
	}))
	admin.Handle("/debug/config_dump", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("proxyID")
		if id == "" {
			http.Error(w, "proxyID=POD.NAMESPACE is required (see /debug/syncz for connected proxies)", http.StatusBadRequest)
			return
		}
		class, ok := status.ProxyClass(id)
		if !ok {
			http.Error(w, fmt.Sprintf("proxy %q is not connected (see /debug/syncz)", id), http.StatusNotFound)
			return
		}
		res, version, ok, err := mgr.Served(class)
		if err == nil && ok {
			var b []byte
			if b, err = configdump.JSON(res, version); err == nil {
				w.Header().Set("Content-Type", "application/json")
				w.Write(b)
				return
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Error(w, fmt.Sprintf("proxy %q has no config yet", id), http.StatusServiceUnavailable)
	}))
	admin.Handle("/debug/trace", http.HandlerFunc(a.serveTrace))
	admin.Handle("/debug/graph", http.HandlerFunc(a.serveGraph))
	admin.Handle("/debug/inputs", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var kube []watch.KubeResourceStatus
		if a.kube != nil {
			kube = a.kube.Status()
		}
		in := current()
		if in == nil {
			if a.kube != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				server.WriteJSON(w, InputsView{Error: "no inputs applied yet: waiting for the Kubernetes informers to sync", Kubernetes: kube})
				return
			}
			http.Error(w, "no inputs loaded yet", http.StatusServiceUnavailable)
			return
		}
		v := InputsView{MeshSource: &in.MeshSource, Policy: in.Mesh.GetOutboundTrafficPolicy().GetMode().String(), Kubernetes: kube}
		for _, o := range in.Objects() {
			kind, _, _ := strings.Cut(o.KindName(), " ")
			v.Objects = append(v.Objects, InputObject{Kind: kind, Namespace: o.GetNamespace(), Name: o.GetName(), Source: o.GetSource()})
		}
		sort.SliceStable(v.Objects, func(i, j int) bool {
			a, b := v.Objects[i], v.Objects[j]
			if a.Kind != b.Kind {
				return a.Kind < b.Kind
			}
			if a.Namespace != b.Namespace {
				return a.Namespace < b.Namespace
			}
			return a.Name < b.Name
		})
		if idx := mgr.Index(); idx != nil {
			v.Problems = idx.Problems()
		}
		server.WriteJSON(w, v)
	}))
}

// InputsView is what /debug/inputs shows: every object with its source, the
// problems found, the mesh config's source and outbound policy, and the
// Kubernetes informers' states (alone, with Error, before they synced).
type InputsView struct {
	Objects    []InputObject              `json:"objects,omitempty"`
	Problems   []inputs.Problem           `json:"problems,omitempty"`
	MeshSource *inputs.Source             `json:"mesh_source,omitempty"`
	Policy     string                     `json:"outbound_traffic_policy,omitempty"`
	Kubernetes []watch.KubeResourceStatus `json:"kubernetes,omitempty"`
	Error      string                     `json:"error,omitempty"`
}

// InputObject is one object of InputsView.
type InputObject struct {
	Kind      string        `json:"kind"`
	Namespace string        `json:"namespace,omitempty"`
	Name      string        `json:"name"`
	Source    inputs.Source `json:"source"`
}
