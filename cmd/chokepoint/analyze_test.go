package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const brokenSelector = "../../translate/testdata/in/gateway-selector-no-match/config"

func TestAnalyzeExitCodes(t *testing.T) {
	// The seed with REGISTRY_ONLY: nothing to say.
	code, out, stderr := runCLI(t, "", "analyze", "-f", example)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "No validation issues found.\n", out)

	// A Gateway whose selector matches no gateway workload: an Error, exit 1.
	code, out, stderr = runCLI(t, "", "analyze", "-f", brokenSelector)
	require.Equal(t, 1, code)
	require.True(t, strings.HasPrefix(out, "Error [IST0101] (Gateway default/istio-egressgateway "), out)
	require.Contains(t, out, "egress.yaml:2) spec.selector: ")
	require.Contains(t, out, "\n    No error anywhere, traffic just does not flow")
	require.Equal(t, "error: 1 error(s) found\n", stderr)

	// Warnings and Infos only: exit 0.
	code, out, _ = runCLI(t, "", "analyze", "-f", "../../translate/testdata/in/gateway-port-not-in-service/config")
	require.Equal(t, 0, code)
	require.Contains(t, out, "Warning [IST0162]")

	// Standard input; a document the decoder rejects is an Error too.
	code, out, _ = runCLI(t, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec: {hosts: [x.example.com], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNSX}\n",
		"analyze", "-f", "-")
	require.Equal(t, 1, code)
	require.Contains(t, out, `Error [IST0106] (ServiceEntry default/x <stdin>:1) spec.resolution: unknown value "DNSX"`)

	for _, args := range [][]string{
		{"analyze"},                               // no -f
		{"analyze", "-f", example, "-o", "yaml"},  // bad -o
		{"analyze", "-f", example, "--node", "x"}, // unknown flag
		{"analyze", "-f", example, "extra"},       // no arguments
	} {
		code, _, stderr := runCLI(t, "", args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
	}
	code, _, _ = runCLI(t, "", "analyze", "-f", "/does/not/exist")
	require.Equal(t, 1, code)
}

func TestAnalyzeMeshFlag(t *testing.T) {
	const bypassable = "../../analyze/testdata/egress-gateway-allow-any/config"
	code, out, _ := runCLI(t, "", "analyze", "-f", bypassable)
	require.Equal(t, 0, code)
	require.Contains(t, out, "Info [CP0006]")

	// REGISTRY_ONLY from --mesh closes the bypass.
	mesh := filepath.Join(t.TempDir(), "mesh.yaml")
	require.NoError(t, os.WriteFile(mesh, []byte("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"), 0o644))
	code, out, _ = runCLI(t, "", "analyze", "-f", bypassable, "--mesh", mesh)
	require.Equal(t, 0, code)
	require.Equal(t, "No validation issues found.\n", out)
}

func TestAnalyzeJSON(t *testing.T) {
	code, out, _ := runCLI(t, "", "analyze", "-f", brokenSelector, "-o", "json")
	require.Equal(t, 1, code)
	var msgs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &msgs))
	require.Len(t, msgs, 1)
	m := msgs[0]
	require.Equal(t, "IST0101", m["code"])
	require.Equal(t, "Error", m["level"])
	require.Equal(t, "Gateway default/istio-egressgateway", m["object"])
	require.Equal(t, "spec.selector", m["field"])
	require.Equal(t, map[string]any{"file": brokenSelector + "/egress.yaml", "doc": float64(2)}, m["source"])
	require.Contains(t, m["message"], `"istio=egress-gateway"`)
	require.Contains(t, m["consequence"], "traffic just does not flow")

	code, out, _ = runCLI(t, "", "analyze", "-f", example, "-o", "json")
	require.Equal(t, 0, code)
	require.Equal(t, "[]\n", out)
}
