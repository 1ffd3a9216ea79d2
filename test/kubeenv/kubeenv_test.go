package kubeenv_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chokepoint-xds/chokepoint/test/kubeenv"
)

var serviceEntries = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}

// The seed scenario's objects, by resource, as namespace/name.
var scenario = map[schema.GroupVersionResource][]string{
	serviceEntries: {"mesh-test/httpbin-ext"},
	{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}:         {"mesh-test/istio-egressgateway"},
	{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}:  {"mesh-test/direct-httpbin-through-egress"},
	{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}: {"mesh-test/egressgateway-for-httpbin"},
	{Group: "networking.istio.io", Version: "v1", Resource: "sidecars"}:         {"mesh-test/default"},
	{Version: "v1", Resource: "services"}:                                       {"istio-system/istio-egressgateway"},
}

func scenarioManifest(t *testing.T) string {
	files, err := filepath.Glob("../../examples/httpbin-passthrough/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var docs []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		docs = append(docs, string(data))
	}
	return strings.Join(docs, "\n---\n")
}

func requireScenario(t *testing.T, client dynamic.Interface) {
	t.Helper()
	ctx := context.Background()
	for gvr, names := range scenario {
		for _, nn := range names {
			ns, name, _ := strings.Cut(nn, "/")
			got, err := client.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
			require.NoError(t, err, "%s %s", gvr.Resource, nn)
			require.Equal(t, name, got.GetName())
		}
	}
}

func TestEnv(t *testing.T) {
	began := time.Now()
	env := kubeenv.Start(t)
	t.Logf("Start took %s", time.Since(began).Round(time.Millisecond))

	manifest := scenarioManifest(t)
	applied := env.Apply(t, manifest)
	require.Len(t, applied, 7) // 5 Istio objects, a Service and its Endpoints

	client, err := dynamic.NewForConfig(env.Config)
	require.NoError(t, err)
	requireScenario(t, client)

	se, err := client.Resource(serviceEntries).Namespace("mesh-test").Get(context.Background(), "httpbin-ext", metav1.GetOptions{})
	require.NoError(t, err)
	hosts, _, err := unstructured.NestedStringSlice(se.Object, "spec", "hosts")
	require.NoError(t, err)
	require.Equal(t, []string{"httpbin.org"}, hosts)

	t.Run("kubeconfig", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
		require.NoError(t, err)
		cs, err := kubernetes.NewForConfig(cfg)
		require.NoError(t, err)
		svc, err := cs.CoreV1().Services("istio-system").Get(context.Background(), "istio-egressgateway", metav1.GetOptions{})
		require.NoError(t, err)
		var https []int32
		for _, p := range svc.Spec.Ports {
			if p.Name == "https" {
				https = append(https, p.Port, p.TargetPort.IntVal)
			}
		}
		require.Equal(t, []int32{443, 8443}, https)
	})

	t.Run("outage", func(t *testing.T) {
		cs, err := kubernetes.NewForConfig(env.Config)
		require.NoError(t, err)

		began := time.Now()
		env.StopAPIServer(t)
		t.Logf("StopAPIServer took %s", time.Since(began).Round(time.Millisecond))
		_, err = cs.Discovery().ServerVersion()
		require.Error(t, err, "API server still answers after StopAPIServer")
		require.Contains(t, err.Error(), "connection refused")

		began = time.Now()
		env.StartAPIServer(t)
		t.Logf("StartAPIServer took %s", time.Since(began).Round(time.Millisecond))
		v, err := cs.Discovery().ServerVersion()
		require.NoError(t, err)
		t.Logf("kube-apiserver %s", v.GitVersion)
		requireScenario(t, client)
	})

	t.Run("forbidden", func(t *testing.T) {
		nobody, err := dynamic.NewForConfig(env.ConfigFor("nobody"))
		require.NoError(t, err)
		_, err = nobody.Resource(serviceEntries).Namespace("mesh-test").List(context.Background(), metav1.ListOptions{})
		require.True(t, apierrors.IsForbidden(err), "want Forbidden, got %v", err)
		require.Contains(t, err.Error(), `User "nobody"`)
	})

	t.Run("delete", func(t *testing.T) {
		env.Delete(t, manifest)
		env.Delete(t, manifest) // already gone is fine
		_, err := client.Resource(serviceEntries).Namespace("mesh-test").Get(context.Background(), "httpbin-ext", metav1.GetOptions{})
		require.True(t, apierrors.IsNotFound(err), "want NotFound, got %v", err)
	})
}
