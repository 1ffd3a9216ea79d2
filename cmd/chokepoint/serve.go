package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/chokepoint-xds/chokepoint/configdump"
	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/server"
	"github.com/chokepoint-xds/chokepoint/snapshot"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

type serveOptions struct {
	files        []string
	mesh         string
	xdsAddress   string
	adminAddress string
	tlsCert      string
	tlsKey       string
	tlsClientCA  string
	logLevel     string
	logFormat    string
	holdoff      time.Duration
	maxHoldoff   time.Duration
	drain        time.Duration
}

func newServeCmd() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve [-f PATH]... [--mesh F] [--xds-address ADDR] [--admin-address ADDR]",
		Short: "Serve the translated config to Envoy over ADS (SotW and Delta)",
		Long: `serve watches Istio YAML files and directories and serves every connecting
Envoy the config istiod would give it: ADS over gRPC in State-of-the-World and
Delta, plus the per-type CDS/EDS/LDS/RDS services, on --xds-address (istiod's
plaintext port 15010 by default). Proxies are identified by their Envoy node
(id TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local, metadata NAMESPACE and
LABELS); proxies with the same identity apart from name and IP share one
snapshot. A file with errors keeps serving its last good version.

Admin HTTP on --admin-address: /healthz, /readyz, /metrics,
/debug/config_dump?proxyID=POD.NAMESPACE, /debug/syncz, /debug/inputs,
/debug/classes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "file or directory of Istio YAML to serve and watch (repeatable)")
	f.StringVar(&o.mesh, "mesh", "", "mesh config YAML; overrides the istio ConfigMap")
	f.StringVar(&o.xdsAddress, "xds-address", ":15010", "xDS gRPC listen address")
	f.StringVar(&o.adminAddress, "admin-address", "127.0.0.1:15014", "admin HTTP listen address")
	f.StringVar(&o.tlsCert, "tls-cert", "", "serve xDS over TLS with this certificate (PEM)")
	f.StringVar(&o.tlsKey, "tls-key", "", "private key for --tls-cert (PEM)")
	f.StringVar(&o.tlsClientCA, "tls-client-ca", "", "require xDS clients to present a certificate signed by this CA (mTLS)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "console", "console or json")
	f.DurationVar(&o.holdoff, "debounce", 100*time.Millisecond, "quiet time after a file change before reloading")
	f.DurationVar(&o.maxHoldoff, "debounce-max", 500*time.Millisecond, "longest wait from the first change of a burst")
	f.DurationVar(&o.drain, "drain", 5*time.Second, "on SIGTERM/SIGINT, how long streams may drain before the server stops")
	return cmd
}

func newLogger(level, format string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("--log-level: %v", err)
	}
	cfg := zap.NewProductionConfig()
	switch format {
	case "json":
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	default:
		return nil, usageError("--log-format must be console or json, got %q", format)
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	return cfg.Build()
}

func serve(parent context.Context, o *serveOptions) error {
	if len(o.files) == 0 {
		return usageError("at least one -f PATH is required")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usageError("--tls-cert and --tls-key go together")
	}
	if o.tlsClientCA != "" && o.tlsCert == "" {
		return usageError("--tls-client-ca needs --tls-cert and --tls-key")
	}
	log, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := snapshot.NewMetrics(reg)
	mgr := snapshot.NewManager(log.Named("snapshot"), metrics)
	status := snapshot.NewStatus(mgr, log.Named("xds"))

	// The source checks inputs with the translator's own validation, and
	// the index it builds for that is reused when the inputs are applied.
	var checked struct {
		sync.Mutex
		in  *inputs.Inputs
		idx *translate.Index
	}
	src := &watch.FileSource{
		Paths: o.files, MeshFile: o.mesh, Holdoff: o.holdoff, MaxHoldoff: o.maxHoldoff, Log: log.Named("watch"),
		Check: func(in *inputs.Inputs) []inputs.Problem {
			idx := translate.NewIndex(in)
			checked.Lock()
			checked.in, checked.idx = in, idx
			checked.Unlock()
			return idx.Problems()
		},
	}
	var cur struct {
		sync.Mutex
		in *inputs.Inputs
	}
	apply := func(in *inputs.Inputs) {
		checked.Lock()
		idx := checked.idx
		if checked.in != in {
			idx = translate.NewIndex(in)
		}
		checked.in, checked.idx = nil, nil
		checked.Unlock()
		errs := 0
		for _, p := range idx.Problems() {
			if p.Severity == inputs.SeverityError {
				errs++
				log.Warn("config error", zap.String("source", p.Source.String()), zap.String("object", p.Object),
					zap.String("field", p.Field), zap.String("error", p.Message))
			} else {
				log.Debug("config warning", zap.String("source", p.Source.String()), zap.String("object", p.Object),
					zap.String("field", p.Field), zap.String("warning", p.Message))
			}
		}
		result := "ok"
		if errs > 0 {
			result = "errors"
		}
		metrics.InputLoads.WithLabelValues(result).Inc()
		cur.Lock()
		cur.in = in
		cur.Unlock()
		mgr.SetIndex(idx)
	}
	in, err := src.Load()
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	apply(in)

	var tlsCfg *server.TLSConfig
	if o.tlsCert != "" {
		tlsCfg = &server.TLSConfig{CertFile: o.tlsCert, KeyFile: o.tlsKey, ClientCA: o.tlsClientCA}
	}
	grpcServer, err := server.NewXDS(ctx, mgr.Cache(), status, server.XDSOptions{TLS: tlsCfg})
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	xdsLis, err := net.Listen("tcp", o.xdsAddress)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("xDS listen: %w", err)}
	}
	adminLis, err := net.Listen("tcp", o.adminAddress)
	if err != nil {
		xdsLis.Close()
		return &exitError{code: 1, err: fmt.Errorf("admin listen: %w", err)}
	}
	admin := server.NewAdmin(mgr.Ready, reg)
	registerDebug(admin, mgr, status, func() *inputs.Inputs { cur.Lock(); defer cur.Unlock(); return cur.in })
	adminServer := &http.Server{Handler: admin.Handler(), ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 3)
	go func() { errc <- grpcServer.Serve(xdsLis) }()
	go func() {
		if err := adminServer.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	go func() {
		if err := src.Run(ctx, apply); err != nil {
			errc <- fmt.Errorf("watching files: %w", err)
		}
	}()
	log.Info("serving", zap.String("xds", xdsLis.Addr().String()), zap.String("admin", adminLis.Addr().String()),
		zap.Strings("files", o.files), zap.Bool("tls", tlsCfg != nil))

	select {
	case <-ctx.Done():
		log.Info("shutting down: no new streams, draining open ones", zap.Duration("drain", o.drain))
	case err := <-errc:
		log.Error("server failed", zap.Error(err))
		grpcServer.Stop()
		return &exitError{code: 1, err: err}
	}
	done := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(o.drain):
		grpcServer.Stop()
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = adminServer.Shutdown(shutdownCtx)
	log.Info("stopped")
	return nil
}

// registerDebug adds the Istio-aware debug endpoints.
func registerDebug(admin *server.Admin, mgr *snapshot.Manager, status *snapshot.Status, current func() *inputs.Inputs) {
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
				Streams: c.Streams, Version: c.Version, TypeVersions: c.TypeVersions, Error: c.Error}
			if c.Resources != nil {
				r.Problems = c.Resources.Problems
			}
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
		for _, c := range mgr.Classes() {
			if c.Key != class || c.Resources == nil {
				continue
			}
			b, err := configdump.JSON(c.Resources, c.Version)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
			return
		}
		http.Error(w, fmt.Sprintf("proxy %q has no config yet", id), http.StatusServiceUnavailable)
	}))
	admin.Handle("/debug/inputs", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		in := current()
		if in == nil {
			http.Error(w, "no inputs loaded yet", http.StatusServiceUnavailable)
			return
		}
		type object struct {
			Kind      string        `json:"kind"`
			Namespace string        `json:"namespace,omitempty"`
			Name      string        `json:"name"`
			Source    inputs.Source `json:"source"`
		}
		var objs []object
		for _, o := range in.Objects() {
			kn := o.KindName()
			kind := kn[:len(kn)-len(o.GetNamespace())-len(o.GetName())-2]
			if o.GetNamespace() == "" {
				kind = kn[:len(kn)-len(o.GetName())-1]
			}
			objs = append(objs, object{Kind: kind, Namespace: o.GetNamespace(), Name: o.GetName(), Source: o.GetSource()})
		}
		sort.SliceStable(objs, func(i, j int) bool {
			a, b := objs[i], objs[j]
			if a.Kind != b.Kind {
				return a.Kind < b.Kind
			}
			if a.Namespace != b.Namespace {
				return a.Namespace < b.Namespace
			}
			return a.Name < b.Name
		})
		var problems []inputs.Problem
		if idx := mgr.Index(); idx != nil {
			problems = idx.Problems()
		}
		server.WriteJSON(w, map[string]any{
			"objects":                 objs,
			"problems":                problems,
			"mesh_source":             in.MeshSource,
			"outbound_traffic_policy": in.Mesh.GetOutboundTrafficPolicy().GetMode().String(),
		})
	}))
}
