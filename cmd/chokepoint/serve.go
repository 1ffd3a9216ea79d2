package main

import (
	"context"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/chokepoint-xds/chokepoint/internal/app"
	"github.com/chokepoint-xds/chokepoint/server"
)

type serveOptions struct {
	files        []string
	mesh         string
	kube         bool
	kubeconfig   string
	namespaces   []string
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
	maxInflight  int
	pushBytes    int64
}

func newServeCmd() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve [-f PATH]... [--kube [--kubeconfig F] [--namespace NS]...] [--mesh F] [--xds-address ADDR] [--admin-address ADDR]",
		Short: "Serve the translated config to Envoy over ADS (SotW and Delta)",
		Long: `serve watches Istio YAML files and directories and serves every connecting
Envoy the config istiod would give it: ADS over gRPC in State-of-the-World and
Delta, plus the per-type CDS/EDS/LDS/RDS services, on --xds-address (istiod's
plaintext port 15010 by default). Proxies are identified by their Envoy node
(id TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local, metadata NAMESPACE and
LABELS); proxies with the same identity apart from name and IP share one
snapshot. A file with errors keeps serving its last good version.

With --kube it also reads (list and watch, never writes) ServiceEntries,
Gateways, VirtualServices, DestinationRules and Sidecars
(networking.istio.io/v1), Services, EndpointSlices, Namespaces and the istio
ConfigMap in istio-system from a Kubernetes API server: --kubeconfig, else
$KUBECONFIG, else the pod's service account, else ~/.kube/config. Nothing is
served until every informer has synced; when the API server goes away the
last config stays in effect. With -f too, both are merged (a file's object
wins over the cluster's of the same kind/namespace/name; --mesh, else an
istio ConfigMap in the files, else the cluster's).

Admin HTTP on --admin-address: /healthz, /readyz, /metrics,
/debug/config_dump?proxyID=POD.NAMESPACE, /debug/syncz, /debug/inputs,
/debug/classes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "file or directory of Istio YAML to serve and watch (repeatable)")
	f.BoolVar(&o.kube, "kube", false, "read the Istio and Kubernetes objects from a Kubernetes API server too (read-only)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig for --kube (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
	f.StringArrayVar(&o.namespaces, "namespace", nil, "with --kube, read namespaced objects only from this namespace (repeatable; default all)")
	f.StringVar(&o.mesh, "mesh", "", "mesh config YAML; overrides the istio ConfigMap")
	f.StringVar(&o.xdsAddress, "xds-address", ":15010", "xDS gRPC listen address")
	f.StringVar(&o.adminAddress, "admin-address", "127.0.0.1:15014", "admin HTTP listen address")
	f.StringVar(&o.tlsCert, "tls-cert", "", "serve xDS over TLS with this certificate (PEM)")
	f.StringVar(&o.tlsKey, "tls-key", "", "private key for --tls-cert (PEM)")
	f.StringVar(&o.tlsClientCA, "tls-client-ca", "", "require xDS clients to present a certificate signed by this CA (mTLS)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "console", "console or json")
	f.DurationVar(&o.holdoff, "debounce", 100*time.Millisecond, "quiet time after a file or Kubernetes change before rebuilding")
	f.DurationVar(&o.maxHoldoff, "debounce-max", 500*time.Millisecond, "longest wait from the first change of a burst")
	f.DurationVar(&o.drain, "drain", 5*time.Second, "on SIGTERM/SIGINT, how long streams may drain before the server stops")
	f.IntVar(&o.maxInflight, "push-throttle", 100, "how many proxies may have unacknowledged responses at once")
	f.Int64Var(&o.pushBytes, "push-budget", 64<<20, "how many bytes of responses may be unacknowledged at once (one proxy may always go)")
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
	if len(o.files) == 0 && !o.kube {
		return usageError("at least one -f PATH, or --kube, is required")
	}
	if !o.kube && (o.kubeconfig != "" || len(o.namespaces) > 0) {
		return usageError("--kubeconfig and --namespace need --kube")
	}
	for _, ns := range o.namespaces {
		if ns == "" {
			return usageError("--namespace: empty namespace name")
		}
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
	setMemoryLimit(log)
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var tlsCfg *server.TLSConfig
	if o.tlsCert != "" {
		tlsCfg = &server.TLSConfig{CertFile: o.tlsCert, KeyFile: o.tlsKey, ClientCA: o.tlsClientCA}
	}
	a, err := app.New(ctx, app.Options{
		Files: o.files, Mesh: o.mesh, Kube: o.kube, Kubeconfig: o.kubeconfig, Namespaces: o.namespaces, XDSAddress: o.xdsAddress, AdminAddress: o.adminAddress, TLS: tlsCfg,
		Holdoff: o.holdoff, MaxHoldoff: o.maxHoldoff, Drain: o.drain, MaxInflight: o.maxInflight, MaxInflightBytes: o.pushBytes, Log: log,
	})
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if err := a.Run(ctx); err != nil {
		return &exitError{code: 1, err: err}
	}
	return nil
}
