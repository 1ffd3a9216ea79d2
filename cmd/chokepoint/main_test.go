package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	example = "../../examples/httpbin-passthrough"
	sidecar = "sidecar~10.244.2.7~sleep-6d8f.mesh-test~mesh-test.svc.cluster.local"
	gateway = "router~10.244.1.20~istio-egressgateway-7c9d.istio-system~istio-system.svc.cluster.local"
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestTranslateExample(t *testing.T) {
	code, out, stderr := runCLI(t, "", "translate", "-f", example, "--node", gateway, "--labels", "app=istio-egressgateway,istio=egressgateway")
	require.Equal(t, 0, code, stderr)
	var dump struct {
		Configs []map[string]any `json:"configs"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &dump))
	require.Len(t, dump.Configs, 4)
	require.Equal(t, "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", dump.Configs[0]["@type"])
	require.Contains(t, out, `"name": "0.0.0.0_8443"`)
	require.Contains(t, out, `"outbound|443||httpbin.org"`)

	code, out, _ = runCLI(t, "", "translate", "-f", example, "--node", sidecar, "--labels", "app=sleep", "-o", "yaml")
	require.Equal(t, 0, code)
	require.Contains(t, out, "name: virtualOutbound")
	require.Contains(t, out, "name: block_all")
}

func TestTranslateStdinAndExitCodes(t *testing.T) {
	data, err := os.ReadFile(example + "/egress.yaml")
	require.NoError(t, err)
	code, out, _ := runCLI(t, string(data), "translate", "-f", "-", "--node", sidecar, "--labels", "app=sleep")
	require.Equal(t, 0, code)
	require.Contains(t, out, "outbound|443||httpbin.org")

	bad := string(data) + "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec: {hosts: [x.example.com], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNSX}\n"
	code, out, stderr := runCLI(t, bad, "translate", "-f", "-", "--node", sidecar)
	require.Equal(t, 1, code, "invalid input exits 1")
	require.Contains(t, stderr, `error: <stdin> (document 6): ServiceEntry default/x: spec.resolution: unknown value "DNSX"`)
	require.Contains(t, out, "outbound|443||httpbin.org", "the valid rest is still translated")

	for _, args := range [][]string{
		{"translate", "-f", example},                                      // no --node
		{"translate", "-f", example, "--node", "x~y"},                     // malformed node
		{"translate", "-f", example, "--node", sidecar, "-o", "xml"},      // bad -o
		{"translate", "--node", sidecar},                                  // no -f
		{"translate", "-f", example, "--node", sidecar, "--labels", "a"},  // bad labels
		{"translate", "-f", example, "--node", sidecar, "--no-such-flag"}, // unknown flag
	} {
		code, _, stderr := runCLI(t, "", args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
	}
	code, _, _ = runCLI(t, "", "translate", "-f", "/does/not/exist", "--node", sidecar)
	require.Equal(t, 1, code)
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "", "version")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(out, "chokepoint "))
}

func TestServeKubeFlags(t *testing.T) {
	for _, args := range [][]string{
		{"serve"}, // neither -f nor --kube
		{"serve", "-f", example, "--namespace", "mesh-test"},  // --namespace without --kube
		{"serve", "-f", example, "--kubeconfig", "/dev/null"}, // --kubeconfig without --kube
		{"serve", "--kube", "--namespace", ""},                // empty namespace
	} {
		code, _, stderr := runCLI(t, "", args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
	}
	code, _, stderr := runCLI(t, "", "serve", "--kube", "--kubeconfig", "/does/not/exist", "--admin-address", "127.0.0.1:0", "--xds-address", "127.0.0.1:0")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "/does/not/exist")
}
