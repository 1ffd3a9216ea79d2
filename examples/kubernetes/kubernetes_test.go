package kubernetes

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	bootstrap "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/chokepoint-xds/chokepoint/translate"
)

const namespace = "chokepoint-system"

// object is one decoded manifest document.
type object struct {
	file string
	doc  int
	obj  any
	meta *metav1.ObjectMeta
}

func (o object) String() string { return fmt.Sprintf("%s (document %d)", o.file, o.doc) }

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// load decodes every document of every YAML file here strictly into its
// k8s.io/api type: an unknown or misspelt field is an error.
func load(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var out []object
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for i, doc := range docSeparator.Split(string(data), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var tm metav1.TypeMeta
			require.NoError(t, yaml.Unmarshal([]byte(doc), &tm), "%s document %d", f, i+1)
			var obj any
			var meta *metav1.ObjectMeta
			switch tm.APIVersion + "/" + tm.Kind {
			case "v1/Namespace":
				o := &corev1.Namespace{}
				obj, meta = o, &o.ObjectMeta
			case "v1/ServiceAccount":
				o := &corev1.ServiceAccount{}
				obj, meta = o, &o.ObjectMeta
			case "v1/ConfigMap":
				o := &corev1.ConfigMap{}
				obj, meta = o, &o.ObjectMeta
			case "v1/Service":
				o := &corev1.Service{}
				obj, meta = o, &o.ObjectMeta
			case "apps/v1/Deployment":
				o := &appsv1.Deployment{}
				obj, meta = o, &o.ObjectMeta
			case "rbac.authorization.k8s.io/v1/ClusterRole":
				o := &rbacv1.ClusterRole{}
				obj, meta = o, &o.ObjectMeta
			case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
				o := &rbacv1.ClusterRoleBinding{}
				obj, meta = o, &o.ObjectMeta
			case "rbac.authorization.k8s.io/v1/Role":
				o := &rbacv1.Role{}
				obj, meta = o, &o.ObjectMeta
			case "rbac.authorization.k8s.io/v1/RoleBinding":
				o := &rbacv1.RoleBinding{}
				obj, meta = o, &o.ObjectMeta
			case "networking.k8s.io/v1/NetworkPolicy":
				o := &networkingv1.NetworkPolicy{}
				obj, meta = o, &o.ObjectMeta
			default:
				t.Fatalf("%s document %d: unexpected kind %s %s", f, i+1, tm.APIVersion, tm.Kind)
			}
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), obj), "%s document %d", f, i+1)
			require.NotEmpty(t, meta.Name, "%s document %d: no name", f, i+1)
			out = append(out, object{file: f, doc: i + 1, obj: obj, meta: meta})
		}
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func find[T any](objs []object, name string) T {
	for _, o := range objs {
		if v, ok := o.obj.(T); ok && o.meta.Name == name {
			return v
		}
	}
	var zero T
	return zero
}

func all[T any](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs := load(t)
	require.NotNil(t, find[*corev1.Namespace](objs, namespace))
	for _, o := range objs {
		switch o.obj.(type) {
		case *corev1.Namespace, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding:
			require.Empty(t, o.meta.Namespace, "%s is cluster-scoped", o)
		case *rbacv1.Role, *rbacv1.RoleBinding:
			require.Equal(t, "istio-system", o.meta.Namespace, "%s: only the mesh config is read per namespace", o)
		default:
			require.Equal(t, namespace, o.meta.Namespace, "%s", o)
		}
	}

	// A misspelt field is caught, so the decoding above means something.
	bad := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 1\n  replica: 2\n")
	require.Error(t, yaml.UnmarshalStrict(bad, &appsv1.Deployment{}))
}

// TestRBACReadOnly: every permission is get, list or watch, on exactly the
// kinds chokepoint reads; ConfigMaps only in istio-system.
func TestRBACReadOnly(t *testing.T) {
	objs := load(t)
	readOnly := []string{"get", "list", "watch"}
	granted := map[string][]string{} // "scope group/resource" -> verbs
	check := func(where string, rules []rbacv1.PolicyRule) {
		require.NotEmpty(t, rules, where)
		for _, r := range rules {
			require.Empty(t, r.NonResourceURLs, "%s: non-resource URLs", where)
			require.Empty(t, r.ResourceNames, "%s", where)
			for _, v := range r.Verbs {
				require.Contains(t, readOnly, v, "%s: verb %q is not read-only", where, v)
			}
			for _, g := range r.APIGroups {
				require.NotEqual(t, "*", g, where)
				for _, res := range r.Resources {
					require.NotContains(t, res, "*", where)
					require.NotContains(t, res, "/", "%s: subresource %s", where, res)
					key := where + " " + g + "/" + res
					granted[key] = append(granted[key], r.Verbs...)
				}
			}
		}
	}
	for _, cr := range all[*rbacv1.ClusterRole](objs) {
		require.Nil(t, cr.AggregationRule, cr.Name)
		check("cluster", cr.Rules)
	}
	for _, r := range all[*rbacv1.Role](objs) {
		check(r.Namespace, r.Rules)
	}
	var keys []string
	for k, verbs := range granted {
		keys = append(keys, k)
		sort.Strings(verbs)
		require.Equal(t, []string{"get", "list", "watch"}, slices.Compact(verbs), k)
	}
	sort.Strings(keys)
	require.Equal(t, []string{
		"cluster /namespaces",
		"cluster /services",
		"cluster discovery.k8s.io/endpointslices",
		"cluster networking.istio.io/destinationrules",
		"cluster networking.istio.io/gateways",
		"cluster networking.istio.io/serviceentries",
		"cluster networking.istio.io/sidecars",
		"cluster networking.istio.io/virtualservices",
		"istio-system /configmaps",
	}, keys)

	// Every binding gives a role from these manifests to chokepoint's
	// service account, and nothing to anybody else.
	sa := find[*corev1.ServiceAccount](objs, "chokepoint")
	require.NotNil(t, sa)
	subjectsOK := func(where string, subjects []rbacv1.Subject) {
		require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: sa.Namespace}}, subjects, where)
	}
	crbs := all[*rbacv1.ClusterRoleBinding](objs)
	require.Len(t, crbs, 1)
	for _, b := range crbs {
		require.Equal(t, "ClusterRole", b.RoleRef.Kind)
		require.NotNil(t, find[*rbacv1.ClusterRole](objs, b.RoleRef.Name), "%s binds a ClusterRole not defined here", b.Name)
		subjectsOK(b.Name, b.Subjects)
	}
	rbs := all[*rbacv1.RoleBinding](objs)
	require.Len(t, rbs, 1)
	for _, b := range rbs {
		require.Equal(t, "Role", b.RoleRef.Kind)
		r := find[*rbacv1.Role](objs, b.RoleRef.Name)
		require.NotNil(t, r)
		require.Equal(t, r.Namespace, b.Namespace)
		subjectsOK(b.Name, b.Subjects)
	}
}

// checkPod asserts the restricted Pod Security Standard's essentials and
// resource bounds on every container.
func checkPod(t *testing.T, name string, spec corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	require.NotNil(t, psc, name)
	require.True(t, psc.RunAsNonRoot != nil && *psc.RunAsNonRoot, "%s: pod runAsNonRoot", name)
	require.True(t, psc.RunAsUser != nil && *psc.RunAsUser != 0, "%s: pod runAsUser", name)
	require.NotNil(t, psc.SeccompProfile, name)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type, name)
	require.False(t, spec.HostNetwork || spec.HostPID || spec.HostIPC, name)
	require.Empty(t, spec.InitContainers, name)
	for _, c := range spec.Containers {
		where := name + "/" + c.Name
		sc := c.SecurityContext
		require.NotNil(t, sc, where)
		require.True(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "%s: readOnlyRootFilesystem", where)
		require.True(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "%s: allowPrivilegeEscalation", where)
		require.True(t, sc.RunAsNonRoot != nil && *sc.RunAsNonRoot, "%s: runAsNonRoot", where)
		require.Nil(t, sc.Privileged, where)
		require.NotNil(t, sc.Capabilities, where)
		require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, where)
		require.Empty(t, sc.Capabilities.Add, where)
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
			require.False(t, req.IsZero(), "%s: no %s request", where, r)
			require.False(t, lim.IsZero(), "%s: no %s limit", where, r)
			require.LessOrEqual(t, req.Cmp(lim), 0, "%s: %s request above limit", where, r)
		}
	}
}

func TestChokepointDeployment(t *testing.T) {
	objs := load(t)
	d := find[*appsv1.Deployment](objs, "chokepoint")
	require.NotNil(t, d)
	pod := d.Spec.Template
	require.True(t, selects(d.Spec.Selector.MatchLabels, pod.Labels), "the selector matches the pod")
	require.Equal(t, "false", pod.Labels["sidecar.istio.io/inject"], "no istio-proxy beside chokepoint")
	require.Equal(t, "chokepoint", pod.Spec.ServiceAccountName)
	checkPod(t, "chokepoint", pod.Spec)
	require.Len(t, pod.Spec.Containers, 1)
	c := pod.Spec.Containers[0]
	require.Equal(t, []string{"serve", "--kube", "--xds-address", ":15010", "--admin-address", ":15014"}, c.Args)

	// The admin server must listen beyond loopback for the kubelet's probes.
	admin := flagValue(c.Args, "--admin-address")
	host, port, err := net.SplitHostPort(admin)
	require.NoError(t, err)
	require.Contains(t, []string{"", "0.0.0.0", "::"}, host, "admin address %q is not reachable by probes", admin)
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	require.Equal(t, map[string]int32{"grpc-xds": 15010, "http-admin": 15014}, ports)
	require.Equal(t, port, fmt.Sprint(ports["http-admin"]))
	_, xdsPort, err := net.SplitHostPort(flagValue(c.Args, "--xds-address"))
	require.NoError(t, err)
	require.Equal(t, xdsPort, fmt.Sprint(ports["grpc-xds"]))

	for name, probe := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		require.NotNil(t, probe, name)
		require.NotNil(t, probe.HTTPGet, name)
		require.Equal(t, name, probe.HTTPGet.Path)
		require.Equal(t, "http-admin", probe.HTTPGet.Port.String())
	}

	svc := find[*corev1.Service](objs, "chokepoint")
	require.NotNil(t, svc)
	require.True(t, selects(svc.Spec.Selector, pod.Labels), "the Service selects chokepoint's pod")
	sp := map[string]string{}
	for _, p := range svc.Spec.Ports {
		_, ok := ports[p.TargetPort.String()]
		require.True(t, ok, "Service port %s targets %s, not a container port", p.Name, p.TargetPort.String())
		require.Equal(t, ports[p.TargetPort.String()], p.Port, p.Name)
		sp[p.Name] = fmt.Sprint(p.Port)
	}
	require.Equal(t, map[string]string{"grpc-xds": "15010", "http-admin": "15014"}, sp)

	np := find[*networkingv1.NetworkPolicy](objs, "chokepoint")
	require.NotNil(t, np)
	require.True(t, selects(np.Spec.PodSelector.MatchLabels, pod.Labels), "the NetworkPolicy covers chokepoint's pod")
}

// TestShadowSidecar: the shadow Envoy's bootstrap is a valid Envoy v3
// Bootstrap with istio-proxy's node identity, pointed at the chokepoint
// Service, and the pod is as locked down as chokepoint's.
func TestShadowSidecar(t *testing.T) {
	objs := load(t)
	d := find[*appsv1.Deployment](objs, "shadow-sleep")
	require.NotNil(t, d)
	pod := d.Spec.Template
	require.Equal(t, "false", pod.Labels["sidecar.istio.io/inject"])
	checkPod(t, "shadow-sleep", pod.Spec)
	for _, s := range all[*corev1.Service](objs) {
		require.False(t, selects(s.Spec.Selector, pod.Labels), "Service %s would send traffic to the shadow Envoy", s.Name)
	}

	var cmName string
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
		}
	}
	cm := find[*corev1.ConfigMap](objs, cmName)
	require.NotNil(t, cm, "the bootstrap ConfigMap %q", cmName)
	js, err := yaml.YAMLToJSON([]byte(cm.Data["envoy.yaml"]))
	require.NoError(t, err)
	b := &bootstrap.Bootstrap{}
	require.NoError(t, protojson.Unmarshal(js, b))
	require.NoError(t, b.ValidateAll())
	require.Contains(t, pod.Spec.Containers[0].Args, "/etc/envoy/envoy.yaml")

	p, err := translate.ParseNodeID(b.GetNode().GetId())
	require.NoError(t, err)
	require.Equal(t, translate.NodeType("sidecar"), p.Type)
	md := b.GetNode().GetMetadata().GetFields()
	require.Equal(t, p.Namespace, md["NAMESPACE"].GetStringValue(), "metadata NAMESPACE is the node's namespace")
	require.NotEmpty(t, md["LABELS"].GetStructValue().GetFields(), "LABELS select Sidecars and Gateways")
	require.Equal(t, "127.0.0.1", b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(), "admin stays on loopback")

	svc := find[*corev1.Service](objs, "chokepoint")
	var xdsPort int32
	for _, sp := range svc.Spec.Ports {
		if sp.Name == "grpc-xds" {
			xdsPort = sp.Port
		}
	}
	var xds []string
	for _, c := range b.GetStaticResources().GetClusters() {
		for _, e := range c.GetLoadAssignment().GetEndpoints() {
			for _, le := range e.GetLbEndpoints() {
				sa := le.GetEndpoint().GetAddress().GetSocketAddress()
				xds = append(xds, fmt.Sprintf("%s %s:%d", c.GetName(), sa.GetAddress(), sa.GetPortValue()))
			}
		}
	}
	require.Equal(t, []string{fmt.Sprintf("xds-grpc %s.%s.svc.cluster.local:%d", svc.Name, svc.Namespace, xdsPort)}, xds)
	require.Equal(t, "xds-grpc", b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName())
}

// TestReadmeCommands: the README applies the files that exist.
func TestReadmeCommands(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`examples/kubernetes/([a-z-]+\.yaml)`).FindAllSubmatch(readme, -1) {
		_, err := os.Stat(string(m[1]))
		require.NoError(t, err, "README.md names %s", m[1])
	}
	require.True(t, bytes.Contains(readme, []byte("chokepoint diff --proxy")))
}

// selects reports whether a non-empty equality selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}
