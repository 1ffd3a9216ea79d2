package kubeint

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest/observer"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/chokepoint-xds/chokepoint/internal/app"
	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/test/kubeenv"
	"github.com/chokepoint-xds/chokepoint/translate"
)

const (
	shippedManifest = "../../examples/kubernetes/chokepoint.yaml"
	// The shipped ServiceAccount, as the API server names it: RBAC
	// matches ServiceAccount subjects by this user name.
	serviceAccountUser = "system:serviceaccount:chokepoint-system:chokepoint"

	sidecarsResource = "networking.istio.io/v1/sidecars"
)

var sidecarsGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "sidecars"}

// What chokepoint reads (without --namespace), and where.
var readResources = []struct {
	gvr       schema.GroupVersionResource
	namespace string
}{
	{schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}, ""},
	{schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}, ""},
	{schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}, ""},
	{schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}, ""},
	{sidecarsGVR, ""},
	{schema.GroupVersionResource{Version: "v1", Resource: "services"}, ""},
	{schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}, ""},
	{schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, ""},
	{schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "istio-system"},
}

// waitForRBAC polls until cfg's user may list every resource chokepoint
// reads except those named in denied, and may not list those: RBAC
// takes a moment to see new bindings, and a Forbidden in that moment would
// make chokepoint give up on a resource the test means to grant.
func waitForRBAC(t *testing.T, cfg *rest.Config, denied ...string) {
	t.Helper()
	client, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	var last string
	eventually(t, syncTimeout, func() bool {
		for _, r := range readResources {
			_, err := client.Resource(r.gvr).Namespace(r.namespace).List(context.Background(), metav1.ListOptions{Limit: 1})
			want := !slices.Contains(denied, r.gvr.Resource)
			if allowed := !apierrors.IsForbidden(err); allowed != want {
				last = r.gvr.String()
				return false
			}
		}
		return true
	}, "RBAC to take effect (last: %s)", lazy(func() string { return last }))
}

// withoutSidecars is the shipped ClusterRole without sidecars, under
// another name, bound to user, with the shipped mesh-config Role too.
func withoutSidecars(t *testing.T, user string) string {
	t.Helper()
	var role rbacv1.ClusterRole
	require.NoError(t, yaml.Unmarshal([]byte(docsOfKind(t, shippedManifest, "ClusterRole")), &role))
	role.ObjectMeta = metav1.ObjectMeta{Name: "chokepoint-read-no-sidecars"}
	for i, r := range role.Rules {
		role.Rules[i].Resources = slices.DeleteFunc(slices.Clone(r.Resources), func(s string) bool { return s == "sidecars" })
	}
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	objs := []any{
		role,
		rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: "chokepoint-read-no-sidecars"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   subjects,
		},
		rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: "chokepoint-mesh-config-" + user, Namespace: "istio-system"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "chokepoint-mesh-config"},
			Subjects:   subjects,
		},
	}
	b, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": objs})
	require.NoError(t, err)
	return string(b)
}

var exampleCom = sim.Call{Protocol: sim.TLS, SNI: "example.com", Port: 443}

// registryOnly reports whether the mesh-test Sidecar's REGISTRY_ONLY is
// in effect: an unknown host is blackholed, else passed through.
func registryOnly(sidecar *proxy, res *translate.Resources) bool {
	return sidecar.call(res, exampleCom).Outcome == sim.Blackhole
}

// TestUnreadable: the shipped RBAC grants everything chokepoint reads; a
// resource it may not read, or whose CRD is missing, is reported in one
// line and treated as empty while the rest is served, and arrives
// without a restart once it can be read. The subtests run in order on one
// API server.
func TestUnreadable(t *testing.T) {
	env := kubeenv.Start(t)
	seed := readManifests(t, "../../examples/httpbin-passthrough/*.yaml")
	env.Apply(t, endpointSlicesFor(t, env.Apply(t, seed)))
	env.Apply(t, `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: "accessLogFile: /dev/stdout\n"
`)
	env.Apply(t, docsOfKind(t, shippedManifest, "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"))

	t.Run("shipped RBAC", func(t *testing.T) {
		cfg := env.ConfigFor(serviceAccountUser, "system:serviceaccounts", "system:serviceaccounts:chokepoint-system")
		waitForRBAC(t, cfg)
		c := startCP(t, clientsFor(t, cfg))
		sidecar := c.connect(t, sidecarID, sidecarLabels)
		gateway := c.connect(t, gatewayID, gatewayLabels)
		sres := sidecar.synced(t, syncTimeout)
		requireTwoHops(t, sidecar, gateway, sres, gateway.synced(t, syncTimeout))
		require.True(t, registryOnly(sidecar, sres), "the Sidecar is read")
		require.True(t, c.ready(t))
		_, view := c.inputs(t)
		require.True(t, allStates(view, "synced"), "%+v", view.Kubernetes)
		require.NotEmpty(t, view.MeshSource.Kube, "the istio ConfigMap is read")
		require.Empty(t, warnings(c.logs, func(observer.LoggedEntry) bool { return true }))
	})

	t.Run("no sidecars", func(t *testing.T) {
		const user = "chokepoint-limited"
		limited := withoutSidecars(t, user)
		env.Apply(t, limited)
		cfg := env.ConfigFor(user)
		waitForRBAC(t, cfg, "sidecars")
		c := startCP(t, clientsFor(t, cfg))
		sidecar := c.connect(t, sidecarID, sidecarLabels)
		gateway := c.connect(t, gatewayID, gatewayLabels)
		sres := sidecar.synced(t, syncTimeout)
		requireTwoHops(t, sidecar, gateway, sres, gateway.synced(t, syncTimeout))
		require.False(t, registryOnly(sidecar, sres), "Sidecars are treated as empty: ALLOW_ANY")
		require.True(t, c.ready(t))

		_, view := c.inputs(t)
		for res, st := range resourceStates(view) {
			if res == sidecarsResource {
				require.Equal(t, "unavailable", st.State)
				require.Equal(t, "forbidden", st.Reason)
			} else {
				require.Equal(t, "synced", st.State, res)
			}
		}
		// The reflector retries with backoff; the failure is logged once.
		eventually(t, syncTimeout, func() bool {
			v, _ := c.metric(t, `chokepoint_kube_request_errors_total{reason="forbidden",resource="`+sidecarsResource+`",verb="list"}`)
			return v >= 2
		}, "a retried list of sidecars")
		lines := warnings(c.logs, func(observer.LoggedEntry) bool { return true })
		require.Len(t, lines, 1, describeEntries(lines))
		line := lines[0].ContextMap()
		require.Equal(t, "kubernetes RBAC forbids reading a resource", lines[0].Message)
		require.Equal(t, sidecarsResource, line["resource"])
		require.Contains(t, strings.Split(line["missing_verbs"].(string), ","), "list")
		require.Contains(t, line["rbac"], "resources sidecars")
		t.Logf("log: %s %v", lines[0].Message, line)

		// Granted: the Sidecar arrives without a restart.
		env.Apply(t, strings.ReplaceAll(docsOfKind(t, shippedManifest, "ClusterRole"), "name: chokepoint-read", "name: chokepoint-read-no-sidecars"))
		sidecar.waitFor(t, reconnectTimeout, "the Sidecar's REGISTRY_ONLY once RBAC allows reading it", func(r *translate.Resources) bool {
			return registryOnly(sidecar, r)
		})
		require.Len(t, c.logs.Filter(messageIs("kubernetes resource readable again")).All(), 1)
		_, view = c.inputs(t)
		require.True(t, allStates(view, "synced"), "%+v", view.Kubernetes)
	})

	t.Run("no CRD", func(t *testing.T) {
		admin, err := dynamic.NewForConfig(env.Config)
		require.NoError(t, err)
		crds := admin.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
		ctx := context.Background()
		crd, err := crds.Get(ctx, "sidecars.networking.istio.io", metav1.GetOptions{})
		require.NoError(t, err)
		reinstall, err := json.Marshal(map[string]any{
			"apiVersion": crd.GetAPIVersion(), "kind": crd.GetKind(),
			"metadata": map[string]any{"name": crd.GetName()}, "spec": crd.Object["spec"],
		})
		require.NoError(t, err)
		env.Delete(t, string(reinstall))
		// The CRD is gone a moment before its resource stops being served.
		eventually(t, syncTimeout, func() bool {
			_, err := admin.Resource(sidecarsGVR).List(ctx, metav1.ListOptions{})
			return apierrors.IsNotFound(err)
		}, "sidecars to be no longer served")

		c := startCP(t, app.Options{Kubeconfig: env.Kubeconfig})
		sidecar := c.connect(t, sidecarID, sidecarLabels)
		gateway := c.connect(t, gatewayID, gatewayLabels)
		sres := sidecar.synced(t, syncTimeout)
		requireTwoHops(t, sidecar, gateway, sres, gateway.synced(t, syncTimeout))
		require.False(t, registryOnly(sidecar, sres), "Sidecars are treated as empty: ALLOW_ANY")
		require.True(t, c.ready(t))
		_, view := c.inputs(t)
		st := resourceStates(view)[sidecarsResource]
		require.Equal(t, "unavailable", st.State)
		require.Equal(t, "not_served", st.Reason)
		eventually(t, syncTimeout, func() bool {
			v, _ := c.metric(t, `chokepoint_kube_request_errors_total{reason="not_served",resource="`+sidecarsResource+`",verb="list"}`)
			return v >= 2
		}, "a retried list of sidecars")
		lines := warnings(c.logs, func(observer.LoggedEntry) bool { return true })
		require.Len(t, lines, 1, describeEntries(lines))
		require.Equal(t, "kubernetes API server does not serve a resource (CRD not installed?)", lines[0].Message)
		require.Equal(t, sidecarsResource, lines[0].ContextMap()["resource"])
		t.Logf("log: %s %v", lines[0].Message, lines[0].ContextMap())

		// Installed again, with the Sidecar: it arrives without a restart.
		env.Apply(t, string(reinstall))
		eventually(t, syncTimeout, func() bool {
			_, err := admin.Resource(sidecarsGVR).List(ctx, metav1.ListOptions{})
			return err == nil
		}, "sidecars to be served again")
		env.Apply(t, seed)
		sidecar.waitFor(t, reconnectTimeout, "the Sidecar's REGISTRY_ONLY once its CRD is installed", func(r *translate.Resources) bool {
			return registryOnly(sidecar, r)
		})
		_, view = c.inputs(t)
		require.True(t, allStates(view, "synced"), "%+v", view.Kubernetes)
	})
}
