package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTraceExample(t *testing.T) {
	base := []string{"trace", "-f", example, "--node", sidecar, "--labels", "app=sleep"}
	code, out, stderr := runCLI(t, "", append(base, "--sni", "httpbin.org", "--port", "443")...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "2. router istio-egressgateway.istio-system")
	require.Contains(t, out, "receives      TLS SNI httpbin.org on 10.244.1.20:8443")
	require.Contains(t, out, "outcome: external httpbin.org:443")

	// A blackholed call is a successful trace.
	code, out, stderr = runCLI(t, "", append(base, "--sni", "example.com", "--port", "443", "-o", "json")...)
	require.Equal(t, 0, code, stderr)
	var tr struct {
		Hops    []map[string]any `json:"hops"`
		Outcome struct {
			Kind string `json:"kind"`
		} `json:"outcome"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &tr))
	require.Len(t, tr.Hops, 1)
	require.Equal(t, "blackhole", tr.Outcome.Kind)

	code, out, _ = runCLI(t, "", append(base, "--host", "example.com", "--port", "80", "-o", "mermaid")...)
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(out, "flowchart LR\n"))
	require.Contains(t, out, `out(["direct_response 502"])`)

	code, out, _ = runCLI(t, "", append(base, "--port", "3306")...)
	require.Equal(t, 0, code)
	require.Contains(t, out, "TCP to 203.0.113.10:3306")
	require.Contains(t, out, "outcome: blackhole")

	code, out, _ = runCLI(t, "", append(base, "--sni", "httpbin.org", "--port", "443", "-o", "html")...)
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(out, "<!DOCTYPE html>"))
	require.Contains(t, out, "<svg")

	// A gateway is reached on its own address and listens on targetPorts.
	code, out, _ = runCLI(t, "", "trace", "-f", example, "--node", gateway, "--labels", "app=istio-egressgateway,istio=egressgateway",
		"--sni", "httpbin.org", "--port", "443")
	require.Equal(t, 0, code)
	require.Contains(t, out, "outcome: no_listener")
}

func TestTraceExitCodes(t *testing.T) {
	base := []string{"trace", "-f", example, "--node", sidecar, "--labels", "app=sleep"}
	for _, args := range [][]string{
		append(base, "--sni", "httpbin.org"),                                     // no --port
		append(base, "--sni", "httpbin.org", "--port", "443", "-o", "yaml"),      // bad -o
		append(base, "--sni", "httpbin.org", "--port", "443", "--protocol", "x"), // bad protocol
		append(base, "--host", "a", "--port", "80", "--protocol", "tcp"),         // tcp with host
		append(base, "--sni", "a", "--port", "80", "--protocol", "http"),         // http with sni
		append(base, "--host", "a", "--port", "80", "--header", "novalue"),       // bad header
		append(base, "--sni", "a", "--port", "443", "--address", "not-an-ip"),    // bad address
		{"trace", "-f", example, "--sni", "a", "--port", "443"},                  // no --node
		{"trace", "--node", sidecar, "--sni", "a", "--port", "443"},              // no -f
	} {
		code, _, stderr := runCLI(t, "", args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
	}

	code, _, _ := runCLI(t, "", "trace", "-f", "/does/not/exist", "--node", sidecar, "--sni", "a", "--port", "443")
	require.Equal(t, 1, code)

	// Invalid input: the valid rest is still traced, and the exit is 1.
	data, err := os.ReadFile(example + "/egress.yaml")
	require.NoError(t, err)
	svc, err := os.ReadFile(example + "/egress-gateway-service.yaml")
	require.NoError(t, err)
	bad := string(svc) + "\n---\n" + string(data) + "\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec: {hosts: [x.example.com], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNSX}\n"
	code, out, stderr := runCLI(t, bad, "trace", "-f", "-", "--node", sidecar, "--labels", "app=sleep", "--sni", "httpbin.org", "--port", "443")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `spec.resolution: unknown value "DNSX"`)
	require.Contains(t, out, "outcome: external httpbin.org:443")
}

// The README teaches with the seed trace: its text and Mermaid blocks are
// what the command prints.
func TestTraceREADME(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(raw)
	base := []string{"trace", "-f", example, "--node", sidecar, "--labels", "app=sleep", "--sni", "httpbin.org", "--port", "443"}

	code, out, _ := runCLI(t, "", base...)
	require.Equal(t, 0, code)
	start := strings.Index(readme, "--labels app=sleep\nTLS SNI httpbin.org")
	require.Positive(t, start, "README trace example")
	start += len("--labels app=sleep\n")
	end := strings.Index(readme[start:], "```")
	require.Equal(t, out, readme[start:start+end], "README's trace text is stale")

	code, out, _ = runCLI(t, "", append(base, "-o", "mermaid")...)
	require.Equal(t, 0, code)
	require.Contains(t, readme, "```mermaid\n"+out+"```", "README's Mermaid block is stale")
}
