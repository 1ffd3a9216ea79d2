package watch

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/go-logr/logr"
	"go.uber.org/zap"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// KubeRESTConfig finds the API server the way kubectl and controllers do:
// the kubeconfig file if one is given, else $KUBECONFIG, else the pod's
// service account (in-cluster), else ~/.kube/config.
func KubeRESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" && os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "" {
		cfg, err := rest.InClusterConfig()
		if err == nil {
			return cfg, nil
		}
		if !errors.Is(err, rest.ErrNotInCluster) {
			return nil, fmt.Errorf("in-cluster kubernetes config: %w", err)
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("no kubernetes config: pass --kubeconfig, set $KUBECONFIG, or run in a pod with a service account")
		}
		return nil, fmt.Errorf("kubernetes config: %w", err)
	}
	return cfg, nil
}

// KubeClientsFromConfig builds the clients a KubeSource reads with from a
// kubeconfig path (see KubeRESTConfig for how an empty path is resolved).
func KubeClientsFromConfig(kubeconfig string) (kubernetes.Interface, istioclient.Interface, error) {
	cfg, err := KubeRESTConfig(kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	return KubeClientsFor(cfg)
}

// KubeClientsFor builds the clients from a REST config. Core kinds are read
// as protobuf, Istio kinds (CRDs) as JSON.
func KubeClientsFor(cfg *rest.Config) (kubernetes.Interface, istioclient.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "chokepoint"
	}
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 20, 40
	}
	istio, err := istioclient.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("istio client: %w", err)
	}
	kcfg := rest.CopyConfig(cfg)
	kcfg.ContentType = "application/vnd.kubernetes.protobuf"
	kcfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	kube, err := kubernetes.NewForConfig(kcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return kube, istio, nil
}

// RouteKlog sends client-go's own logging (klog) to log at debug level.
// The KubeSource reports list and watch failures itself, once and clearly;
// client-go's per-retry lines would only repeat them. klog's logger is
// global and may only be set before client-go logs: the first call wins,
// later ones do nothing.
func RouteKlog(log *zap.Logger) {
	klogOnce.Do(func() {
		klog.SetLogger(logr.New(&klogSink{log: log.WithOptions(zap.AddCallerSkip(1))}))
	})
}

var klogOnce sync.Once

// klogSink is a logr.LogSink writing to zap at debug level.
type klogSink struct {
	log *zap.Logger
}

func (s *klogSink) Init(logr.RuntimeInfo)  {}
func (s *klogSink) Enabled(level int) bool { return s.log.Core().Enabled(zap.DebugLevel) }

func (s *klogSink) Info(_ int, msg string, kv ...any) {
	s.log.Debug(msg, zap.Any("details", kv))
}

func (s *klogSink) Error(err error, msg string, kv ...any) {
	s.log.Debug(msg, zap.Error(err), zap.Any("details", kv))
}

func (s *klogSink) WithValues(kv ...any) logr.LogSink {
	return &klogSink{log: s.log.With(zap.Any("values", kv))}
}

func (s *klogSink) WithName(name string) logr.LogSink {
	return &klogSink{log: s.log.Named(name)}
}
