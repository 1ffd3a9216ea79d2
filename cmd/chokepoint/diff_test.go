package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chokepoint-xds/chokepoint/internal/app"
	"github.com/chokepoint-xds/chokepoint/test/xdsclient"
)

const (
	oursDump   = "../../configdiff/testdata/ours-sleep.json"
	theirsDump = "../../configdiff/testdata/theirs-istio-proxy.json"
	shopConfig = "../../configdiff/testdata/config"
	shopSleep  = "sidecar~10.244.2.7~sleep-6d8f.shop~shop.svc.cluster.local"
)

func TestDiffFiles(t *testing.T) {
	code, out, stderr := runCLI(t, "", "diff", "--ours", oursDump, "--theirs", theirsDump)
	require.Equal(t, 0, code, stderr)
	require.Empty(t, stderr)
	require.Contains(t, out, "theirs: "+theirsDump+" (node "+shopSleep+")")
	require.True(t, strings.HasSuffix(out, "equal: compared 6 clusters, 4 listeners, 2 route configs, 1 endpoint sets\n"), out)

	// Standard input, and translate's YAML on the other side.
	theirs, err := os.ReadFile(theirsDump)
	require.NoError(t, err)
	_, yamlOut, _ := runCLI(t, "", "translate", "-f", shopConfig, "--node", shopSleep, "--labels", "app=sleep", "-o", "yaml")
	yamlFile := filepath.Join(t.TempDir(), "ours.yaml")
	require.NoError(t, os.WriteFile(yamlFile, []byte(yamlOut), 0o644))
	code, _, stderr = runCLI(t, string(theirs), "diff", "--ours", yamlFile, "--theirs", "-")
	require.Equal(t, 0, code, stderr)

	// A difference: exit 1, the list on stdout, no error line.
	other := filepath.Join(t.TempDir(), "other.json")
	require.NoError(t, os.WriteFile(other, []byte(strings.Replace(string(theirs), `"sni": "edition.cnn.com"`, `"sni": ""`, 1)), 0o644))
	code, out, stderr = runCLI(t, "", "diff", "--ours", oursDump, "--theirs", other)
	require.Equal(t, 1, code)
	require.Empty(t, stderr)
	require.Contains(t, out, "cluster outbound|443||edition.cnn.com: tls sni: ours \"edition.cnn.com\", theirs \"\"\n")
	require.Contains(t, out, "1 difference (0 only in ours, 0 only in theirs, 1 changed)")

	code, out, stderr = runCLI(t, "", "diff", "--ours", oursDump, "--theirs", other, "-o", "json")
	require.Equal(t, 1, code)
	var diffs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &diffs), out)
	require.Equal(t, []map[string]any{{"kind": "cluster", "name": "outbound|443||edition.cnn.com", "path": "tls sni", "ours": "edition.cnn.com", "theirs": ""}}, diffs)
	require.Contains(t, stderr, "1 difference")

	code, out, _ = runCLI(t, "", "diff", "--ours", oursDump, "--theirs", oursDump, "-o", "json")
	require.Equal(t, 0, code)
	require.Equal(t, "[]\n", out)
}

func TestDiffUsageAndUnreadable(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"configs": [`), 0o644))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"diff", "--theirs", theirsDump}, "give exactly one of --ours DUMP and --proxy POD.NAMESPACE"},
		{[]string{"diff", "--ours", oursDump, "--proxy", "a.b", "--theirs", theirsDump}, "give exactly one of"},
		{[]string{"diff", "--ours", oursDump}, "--theirs DUMP is required"},
		{[]string{"diff", "--ours", "-", "--theirs", "-"}, "only one of --ours and --theirs can be standard input"},
		{[]string{"diff", "--ours", oursDump, "--theirs", theirsDump, "-o", "yaml"}, `-o must be text or json, got "yaml"`},
		{[]string{"diff", "--ours", "/does/not/exist.json", "--theirs", theirsDump}, "reading /does/not/exist.json: "},
		{[]string{"diff", "--ours", oursDump, "--theirs", bad}, bad + ": invalid JSON"},
		{[]string{"diff", "--ours", oursDump, "--theirs", "../../go.mod"}, "../../go.mod: want a JSON object (a config dump) or an array of resources"},
	} {
		code, _, stderr := runCLI(t, "", tc.args...)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		require.Contains(t, stderr, "error: "+tc.want, tc.args)
	}
}

// TestDiffProxyHTTP: --proxy asks chokepoint's admin server for the
// proxy's config dump.
func TestDiffProxyHTTP(t *testing.T) {
	ours, err := os.ReadFile(oursDump)
	require.NoError(t, err)
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path+"?"+r.URL.RawQuery)
		if r.URL.Path != "/debug/config_dump" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("proxyID") != "sleep-6d8f.shop" {
			http.Error(w, `proxy "`+r.URL.Query().Get("proxyID")+`" is not connected (see /debug/syncz)`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(ours)
	}))
	defer srv.Close()

	code, out, stderr := runCLI(t, "", "diff", "--proxy", "sleep-6d8f.shop", "--server", srv.URL, "--theirs", theirsDump)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "equal: ")
	require.Equal(t, []string{"/debug/config_dump?proxyID=sleep-6d8f.shop"}, asked)

	// A whole node ID names the same proxy; a malformed one is a usage error.
	code, _, stderr = runCLI(t, "", "diff", "--proxy", shopSleep, "--server", srv.URL, "--theirs", theirsDump)
	require.Equal(t, 0, code, stderr)
	code, _, stderr = runCLI(t, "", "diff", "--proxy", "sidecar~x~y", "--server", srv.URL, "--theirs", theirsDump)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "error: --proxy: node ID")

	// The server as host:port, and a proxy it does not know: exit 2 with
	// chokepoint's answer.
	code, _, stderr = runCLI(t, "", "diff", "--proxy", "nope.shop", "--server", strings.TrimPrefix(srv.URL, "http://"), "--theirs", theirsDump)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `error: fetching `+srv.URL+`/debug/config_dump?proxyID=nope.shop: 404 Not Found: proxy "nope.shop" is not connected (see /debug/syncz)`)

	// Nobody listening.
	srv.Close()
	code, _, stderr = runCLI(t, "", "diff", "--proxy", "sleep-6d8f.shop", "--server", srv.URL, "--theirs", theirsDump, "--timeout", "2s")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "error: fetching "+srv.URL+"/debug/config_dump?proxyID=sleep-6d8f.shop: ")
}

// TestDiffProxyServe: diff --proxy against a running chokepoint with a
// proxy connected over ADS, compared with the istio-proxy dump of the same
// configuration.
func TestDiffProxyServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := app.New(ctx, app.Options{Files: []string{shopConfig}, XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0", Drain: time.Second})
	require.NoError(t, err)
	stopped := make(chan struct{})
	go func() { a.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	conn, err := grpc.NewClient(a.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	cl, err := xdsclient.Start(cctx, conn, xdsclient.Options{Node: xdsclient.Node(shopSleep, "shop", map[string]string{"app": "sleep"})})
	require.NoError(t, err)
	require.NoError(t, cl.WaitSynced(10*time.Second))

	code, out, stderr := runCLI(t, "", "diff", "--proxy", "sleep-6d8f.shop", "--server", "http://"+a.AdminAddr(), "--theirs", theirsDump)
	require.Equal(t, 0, code, "%s%s", out, stderr)
	require.Contains(t, out, "equal: compared 6 clusters, 4 listeners, 2 route configs, 1 endpoint sets")
}
