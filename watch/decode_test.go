package watch_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/watch"
)

const okSE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ok, namespace: default}
spec:
  hosts: [ok.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`

func problems(in *inputs.Inputs) []string {
	out := []string{}
	for _, p := range in.Problems {
		out = append(out, p.Error())
	}
	return out
}

func se(spec string) string {
	return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec:\n" + spec
}

// TestDecodeProblems: each malformed document gives exactly one problem
// naming file, document, object and field, and the valid ServiceEntry in
// the same file (document 1) is still decoded.
func TestDecodeProblems(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want string
	}{
		{"yaml syntax", "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n",
			`bad.yaml (document 2): invalid YAML: line 4: did not find expected ',' or ']'`},
		{"yaml indentation", "a: b\n c: d\n",
			`bad.yaml (document 2): invalid YAML: line 2: mapping values are not allowed in this context`},
		{"not a mapping", "just a string\n",
			`bad.yaml (document 2): not a Kubernetes object: expected a mapping with apiVersion, kind and metadata, got a string`},
		{"a list", "- a\n- b\n",
			`bad.yaml (document 2): not a Kubernetes object: expected a mapping with apiVersion, kind and metadata, got a list`},
		{"no kind", "apiVersion: networking.istio.io/v1\nmetadata: {name: x}\nspec: {}\n",
			`bad.yaml (document 2): kind: required field is missing`},
		{"kind not a string", "apiVersion: v1\nkind: 3\nmetadata: {name: x}\n",
			`bad.yaml (document 2): kind: expected a string, got a number`},
		{"no apiVersion", "kind: ServiceEntry\nmetadata: {name: x}\nspec: {}\n",
			`bad.yaml (document 2): apiVersion: required field is missing`},
		{"no metadata.name", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {namespace: default}\nspec: {}\n",
			`bad.yaml (document 2): ServiceEntry: metadata.name: required field is missing`},
		{"no metadata", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nspec: {}\n",
			`bad.yaml (document 2): ServiceEntry: metadata.name: required field is missing`},
		{"metadata wrong type", "apiVersion: v1\nkind: Service\nmetadata: {name: x, labels: [a]}\n",
			`bad.yaml (document 2): Service: metadata.labels: expected an object, got a list`},
		{"yaml 1.1 boolean namespace", "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: yes}\n",
			`bad.yaml (document 2): Service: metadata.namespace: expected a string, got a boolean`},
		{"unsupported istio version", "apiVersion: networking.istio.io/v2\nkind: ServiceEntry\nmetadata: {name: x}\nspec: {}\n",
			`bad.yaml (document 2): ServiceEntry default/x: apiVersion: unsupported version "networking.istio.io/v2" (want v1, v1beta1 or v1alpha3)`},
		{"unknown top-level field", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nsepc: {hosts: [a.example.com]}\n",
			`bad.yaml (document 2): ServiceEntry default/x: sepc: unknown field`},
		{"unknown spec field", se("  hosts: [a.example.com]\n  prots: []\n"),
			`bad.yaml (document 2): ServiceEntry default/x: spec.prots: unknown field`},
		{"unknown nested spec field", se("  hosts: [a.example.com]\n  ports: [{number: 80, name: http}, {numbr: 81, name: b}]\n"),
			`bad.yaml (document 2): ServiceEntry default/x: spec.ports[1].numbr: unknown field`},
		{"unknown resolution", se("  hosts: [a.example.com]\n  resolution: DNSX\n"),
			`bad.yaml (document 2): ServiceEntry default/x: spec.resolution: unknown value "DNSX" (want one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS)`},
		{"unknown location", se("  hosts: [a.example.com]\n  location: OUTSIDE\n"),
			`bad.yaml (document 2): ServiceEntry default/x: spec.location: unknown value "OUTSIDE" (want one of MESH_EXTERNAL, MESH_INTERNAL)`},
		{"unknown DestinationRule tls mode", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d, namespace: ns}\nspec:\n  host: a.example.com\n  trafficPolicy: {tls: {mode: SIMPEL}}\n",
			`bad.yaml (document 2): DestinationRule ns/d: spec.trafficPolicy.tls.mode: unknown value "SIMPEL" (want one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL)`},
		{"unknown Gateway tls mode", "apiVersion: networking.istio.io/v1beta1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  servers: [{port: {number: 443, name: tls, protocol: TLS}, hosts: ['*'], tls: {mode: PASSTROUGH}}]\n",
			`bad.yaml (document 2): Gateway default/g: spec.servers[0].tls.mode: unknown value "PASSTROUGH" (want one of PASSTHROUGH, SIMPLE, MUTUAL, AUTO_PASSTHROUGH, ISTIO_MUTUAL, OPTIONAL_MUTUAL)`},
		{"port number as string", se("  hosts: [a.example.com]\n  ports: [{number: abc, name: http}]\n"),
			`bad.yaml (document 2): ServiceEntry default/x: spec.ports[0].number: expected a whole number, got "abc"`},
		{"port number negative", se("  hosts: [a.example.com]\n  ports: [{number: -1, name: http}]\n"),
			`bad.yaml (document 2): ServiceEntry default/x: spec.ports[0].number: expected a number from 0 to 4294967295, got -1`},
		{"port number fraction", se("  hosts: [a.example.com]\n  ports: [{number: 1.5, name: http}]\n"),
			`bad.yaml (document 2): ServiceEntry default/x: spec.ports[0].number: expected a whole number, got 1.5`},
		{"hosts as a string", se("  hosts: a.example.com\n"),
			`bad.yaml (document 2): ServiceEntry default/x: spec.hosts: expected a list, got a string`},
		{"spec as a list", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec: [a]\n",
			`bad.yaml (document 2): ServiceEntry default/x: spec: expected an object, got a list`},
		{"bad duration", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: a.example.com\n  trafficPolicy: {connectionPool: {tcp: {connectTimeout: soon}}}\n",
			`bad.yaml (document 2): DestinationRule default/d: spec.trafficPolicy.connectionPool.tcp.connectTimeout: invalid duration "soon" (want a number with a unit, such as 1s, 100ms or 5m)`},
		{"Service unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  prots: [{port: 80}]\n",
			`bad.yaml (document 2): Service default/web: spec.prots: unknown field`},
		{"Service unknown nested field", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80, nmae: http}]\n",
			`bad.yaml (document 2): Service default/web: spec.ports[0].nmae: unknown field`},
		{"Service field with wrong case", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  Ports: [{port: 80}]\n",
			`bad.yaml (document 2): Service default/web: spec.Ports: unknown field`},
		{"Service wrong type", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: http}]\n",
			`bad.yaml (document 2): Service default/web: spec.ports.port: expected a number, got a string`},
		{"mesh invalid YAML", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: \"outboundTrafficPolicy: [x\"\n",
			`bad.yaml (document 2): ConfigMap istio-system/istio: data.mesh: invalid YAML: line 1: did not find expected ',' or ']'`},
		{"mesh unknown mode", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    outboundTrafficPolicy:\n      mode: ALLOW\n",
			`bad.yaml (document 2): ConfigMap istio-system/istio: data.mesh.outboundTrafficPolicy.mode: unknown value "ALLOW" (want one of REGISTRY_ONLY, ALLOW_ANY, ALLOW_ANY_DYNAMIC_DNS)`},
		{"mesh unknown field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    outboundTrafficPolicy: {mdoe: ALLOW_ANY}\n",
			`bad.yaml (document 2): ConfigMap istio-system/istio: data.mesh.outboundTrafficPolicy.mdoe: unknown field`},
		{"List item without apiVersion", "apiVersion: v1\nkind: List\nitems: [{kind: ServiceEntry, metadata: {name: x}}]\n",
			`bad.yaml (document 2): apiVersion: required field is missing`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := watch.Parse([]byte(okSE+"---\n"+c.doc), "bad.yaml")
			require.Equal(t, []string{c.want}, problems(in))
			require.Len(t, in.ServiceEntries, 1, "the valid ServiceEntry beside the broken document is lost")
			require.Equal(t, "ok", in.ServiceEntries[0].Name)
			require.Equal(t, inputs.Source{File: "bad.yaml", Doc: 1}, in.ServiceEntries[0].GetSource())
			if c.name == "mesh unknown mode" || c.name == "mesh invalid YAML" || c.name == "mesh unknown field" {
				// A broken mesh config falls back to the defaults.
				require.Equal(t, meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY, in.Mesh.GetOutboundTrafficPolicy().GetMode())
			}
		})
	}
}

func TestDocumentNumbering(t *testing.T) {
	bad := "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec: {resolution: DNSX}\n"
	want := func(doc string) []string {
		return []string{`bad.yaml (document ` + doc + `): ServiceEntry default/x: spec.resolution: unknown value "DNSX" (want one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS)`}
	}
	// A leading --- does not count as a document.
	require.Equal(t, want("2"), problems(watch.Parse([]byte("---\n"+okSE+"---\n"+bad), "bad.yaml")))
	// Comment-only and empty documents keep their number.
	require.Equal(t, want("4"), problems(watch.Parse([]byte(okSE+"---\n# nothing here\n---\n\n---\n"+bad), "bad.yaml")))
	require.Equal(t, want("3"), problems(watch.Parse([]byte("# header\n---\n"+okSE+"--- # next\n"+bad), "bad.yaml")))
	// A trailing separator adds nothing.
	in := watch.Parse([]byte(okSE+"---\n"), "ok.yaml")
	require.Empty(t, in.Problems)
	require.Len(t, in.ServiceEntries, 1)
}

func TestDecodeJSONAndList(t *testing.T) {
	js := `{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry","metadata":{"name":"j","namespace":"ns"},
	"spec":{"hosts":["j.example.com"],"ports":[{"number":443,"name":"tls","protocol":"TLS"}],"resolution":"DNS"}}`
	in := watch.Parse([]byte(js), "x.json")
	require.Empty(t, in.Problems)
	require.Len(t, in.ServiceEntries, 1)
	require.Equal(t, "ServiceEntry ns/j", in.ServiceEntries[0].KindName())
	require.Equal(t, inputs.Source{File: "x.json", Doc: 1}, in.ServiceEntries[0].GetSource())

	list := `{"apiVersion":"v1","kind":"List","items":[` + js + `,
	{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry","metadata":{"name":"bad"},"spec":{"resolution":"X"}}]}`
	in = watch.Parse([]byte(list), "list.json")
	require.Equal(t, []string{`list.json (document 1): ServiceEntry default/bad: spec.resolution: unknown value "X" (want one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS)`}, problems(in))
	require.Len(t, in.ServiceEntries, 1)

	yamlList := "apiVersion: v1\nkind: List\nitems:\n- " + "apiVersion: v1\n  kind: Service\n  metadata: {name: web}\n  spec: {ports: [{port: 80, name: http}]}\n"
	in = watch.Parse([]byte(yamlList), "list.yaml")
	require.Empty(t, in.Problems)
	require.Len(t, in.Services, 1)
	require.Equal(t, "Service default/web", in.Services[0].KindName())
}

func TestDefaultNamespaceAndIgnoredKinds(t *testing.T) {
	d := watch.NewDecoder()
	d.DecodeStream([]byte(okSE+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec: {hosts: [ok.example.com], tls: [{match: [{sniHosts: [ok.example.com]}], route: [{destination: {host: ok.example.com}}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec: {replicas: 1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: we}
spec: {address: 1.2.3.4}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
data: {a: b}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app2}
`), "mixed.yaml")
	in := d.Finish(nil, "")
	require.Empty(t, in.Problems)
	require.Len(t, in.VirtualServices, 1)
	require.Equal(t, "default", in.VirtualServices[0].Namespace)
	require.Equal(t, map[string]int{
		"apps/v1/Deployment":                   2,
		"networking.istio.io/v1/WorkloadEntry": 1,
		"v1/ConfigMap":                         1,
	}, d.Ignored)
}

func TestIstioVersionsDecodeAlike(t *testing.T) {
	var specs []proto.Message
	for _, v := range []string{"v1", "v1beta1", "v1alpha3"} {
		doc := "apiVersion: networking.istio.io/" + v + `
kind: ServiceEntry
metadata: {name: s, namespace: ns}
spec:
  hosts: [a.example.com]
  addresses: [10.0.0.0/24]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, ports: {http: 9090}, labels: {v: "1"}, weight: 2}]
`
		in := watch.Parse([]byte(doc), v+".yaml")
		require.Empty(t, in.Problems, v)
		require.Len(t, in.ServiceEntries, 1, v)
		specs = append(specs, &in.ServiceEntries[0].Spec)
	}
	require.True(t, proto.Equal(specs[0], specs[1]))
	require.True(t, proto.Equal(specs[0], specs[2]))
}

func TestDurationsAsIstioReadsThem(t *testing.T) {
	in := watch.Parse([]byte(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: d}
spec:
  host: a.example.com
  trafficPolicy:
    connectionPool: {tcp: {connectTimeout: 250ms, maxConnections: "10"}}
    outlierDetection: {interval: 1.5s, baseEjectionTime: 3m}
`), "dr.yaml")
	require.Empty(t, problems(in))
	require.Len(t, in.DestinationRules, 1)
	tp := in.DestinationRules[0].Spec.TrafficPolicy
	require.Equal(t, int64(250e6), tp.ConnectionPool.Tcp.ConnectTimeout.AsDuration().Nanoseconds())
	require.Equal(t, int32(10), tp.ConnectionPool.Tcp.MaxConnections)
	require.Equal(t, int64(1500e6), tp.OutlierDetection.Interval.AsDuration().Nanoseconds())
	require.Equal(t, int64(180e9), tp.OutlierDetection.BaseEjectionTime.AsDuration().Nanoseconds())
}

func configMap(mesh string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n" + mesh
}

func TestMeshConfig(t *testing.T) {
	// No mesh config: ALLOW_ANY, as istiod.
	in := watch.Parse([]byte(okSE), "a.yaml")
	require.Equal(t, meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY, in.Mesh.GetOutboundTrafficPolicy().GetMode())

	in = watch.Parse([]byte(configMap("    outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n    connectTimeout: 2m\n")), "mesh.yaml")
	require.Empty(t, in.Problems)
	require.Equal(t, meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY, in.Mesh.GetOutboundTrafficPolicy().GetMode())
	require.Equal(t, int64(120), in.Mesh.GetConnectTimeout().GetSeconds())
	require.Equal(t, inputs.Source{File: "mesh.yaml", Doc: 1}, in.MeshSource)

	// A ConfigMap elsewhere is not the mesh config.
	other := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: default}\ndata:\n  mesh: |\n    outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
	in = watch.Parse([]byte(other), "other.yaml")
	require.Equal(t, meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY, in.Mesh.GetOutboundTrafficPolicy().GetMode())

	// --mesh overrides the ConfigMap.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	require.NoError(t, os.Mkdir(cfg, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(cfg, "cm.yaml"), []byte(configMap("    outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")), 0o644))
	meshFile := filepath.Join(dir, "mesh.yaml")
	require.NoError(t, os.WriteFile(meshFile, []byte("outboundTrafficPolicy:\n  mode: ALLOW_ANY\n"), 0o644))

	in, _, err := watch.Load(watch.LoadOptions{Paths: []string{cfg}})
	require.NoError(t, err)
	require.Equal(t, meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY, in.Mesh.GetOutboundTrafficPolicy().GetMode())

	in, _, err = watch.Load(watch.LoadOptions{Paths: []string{cfg}, MeshFile: meshFile})
	require.NoError(t, err)
	require.Empty(t, in.Problems)
	require.Equal(t, meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY, in.Mesh.GetOutboundTrafficPolicy().GetMode())
	require.Equal(t, inputs.Source{File: meshFile}, in.MeshSource)

	// A broken mesh file names the file and field, and the defaults apply.
	require.NoError(t, os.WriteFile(meshFile, []byte("outboundTrafficPolicy:\n  mode: NONE\n"), 0o644))
	in, _, err = watch.Load(watch.LoadOptions{Paths: []string{cfg}, MeshFile: meshFile})
	require.NoError(t, err)
	require.Equal(t, []string{meshFile + `: mesh.outboundTrafficPolicy.mode: unknown value "NONE" (want one of REGISTRY_ONLY, ALLOW_ANY, ALLOW_ANY_DYNAMIC_DNS)`}, problems(in))
	require.Equal(t, meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY, in.Mesh.GetOutboundTrafficPolicy().GetMode())

	// A missing mesh file makes loading impossible.
	_, _, err = watch.Load(watch.LoadOptions{Paths: []string{cfg}, MeshFile: filepath.Join(dir, "nope.yaml")})
	require.Error(t, err)
}
