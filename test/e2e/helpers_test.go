package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chokepoint-xds/chokepoint/internal/app"
	"github.com/chokepoint-xds/chokepoint/snapshot"
	"github.com/chokepoint-xds/chokepoint/test/xdsclient"
)

const (
	sidecarID = "sidecar~10.244.2.7~sleep-6d8f.mesh-test~mesh-test.svc.cluster.local"
	gatewayID = "router~10.244.1.20~istio-egressgateway-7c9d.istio-system~istio-system.svc.cluster.local"

	hop1Cluster = "outbound|443|httpbin|istio-egressgateway.istio-system.svc.cluster.local"

	// holdoff is the debounce the tests run with.
	holdoff = 50 * time.Millisecond
)

func sidecarNode() *core.Node {
	return xdsclient.Node(sidecarID, "mesh-test", map[string]string{"app": "sleep"})
}

func gatewayNode() *core.Node {
	return xdsclient.Node(gatewayID, "istio-system", map[string]string{"app": "istio-egressgateway", "istio": "egressgateway"})
}

// cp is a control plane running for one test.
type cp struct {
	*app.App
	dir    string
	cancel context.CancelFunc
	// stopped is closed when Run returned, with runErr.
	stopped chan struct{}
	runErr  error
}

// startCP copies the example into a temp dir and runs a control plane on
// it; it stops when the test ends.
func startCP(t *testing.T) *cp {
	t.Helper()
	dir := t.TempDir()
	src := "../../examples/httpbin-passthrough"
	ents, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644))
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, app.Options{Files: []string{dir}, XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0",
		Holdoff: holdoff, MaxHoldoff: 4 * holdoff, Drain: 2 * time.Second})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &cp{App: a, dir: dir, cancel: cancel, stopped: make(chan struct{})}
	go func() { c.runErr = a.Run(ctx); close(c.stopped) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.stopped:
		case <-time.After(10 * time.Second):
			t.Error("control plane did not stop")
		}
	})
	return c
}

// dial opens a gRPC connection to the control plane, closed at the end.
func (c *cp) dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(c.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// client starts an ADS client whose responses go to the returned channel.
func (c *cp) client(t *testing.T, conn *grpc.ClientConn, opts xdsclient.Options) (*xdsclient.Client, chan xdsclient.Response) {
	t.Helper()
	events := make(chan xdsclient.Response, 256)
	opts.Events, opts.KeepResources = events, true
	ctx, cancel := context.WithCancel(context.Background())
	cl, err := xdsclient.Start(ctx, conn, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		cancel()
		// Drain so the client's loop is never stuck on a full channel.
		for {
			select {
			case <-cl.Done():
				return
			case <-events:
			}
		}
	})
	return cl, events
}

func (c *cp) getBody(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + c.AdminAddr() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, b)
	return string(b)
}

func (c *cp) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal([]byte(c.getBody(t, path)), v), path)
}

func (c *cp) syncz(t *testing.T) []snapshot.SyncStatus {
	var out []snapshot.SyncStatus
	c.getJSON(t, "/debug/syncz", &out)
	return out
}

type classRow struct {
	Class     string            `json:"class"`
	Type      string            `json:"type"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
	Streams   int               `json:"streams"`
	Version   string            `json:"version"`
}

func (c *cp) classes(t *testing.T) []classRow {
	var out []classRow
	c.getJSON(t, "/debug/classes", &out)
	return out
}

// metric returns the value of one sample line of /metrics, e.g.
// `chokepoint_xds_rejects_total{type="lds"}`.
func (c *cp) metric(t *testing.T, series string) string {
	t.Helper()
	for _, line := range strings.Split(c.getBody(t, "/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// writeFile replaces a file the way editors do: write a temp file, rename.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

// next waits for the next response of typeURL (others are collected into
// other, if given).
func next(t *testing.T, events <-chan xdsclient.Response, typeURL string, timeout time.Duration) xdsclient.Response {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case r := <-events:
			if r.TypeURL == typeURL {
				return r
			}
		case <-deadline:
			t.Fatalf("no %s response within %s", xdsclient.Short(typeURL), timeout)
		}
	}
}

// collect gathers every response arriving within d.
func collect(events <-chan xdsclient.Response, d time.Duration) []xdsclient.Response {
	var out []xdsclient.Response
	deadline := time.After(d)
	for {
		select {
		case r := <-events:
			out = append(out, r)
		case <-deadline:
			return out
		}
	}
}

// initial waits until the client holds every type its config needs and
// has seen the responses it ACKed; it returns the last response of each.
func initial(t *testing.T, cl *xdsclient.Client, events <-chan xdsclient.Response) map[string]xdsclient.Response {
	t.Helper()
	got := map[string]xdsclient.Response{}
	complete := func() bool {
		if !cl.Synced() {
			return false
		}
		for _, typ := range xdsclient.Types {
			st := cl.State(typ)
			if st.Acked != "" && got[typ].Version != st.Acked {
				return false
			}
		}
		return true
	}
	deadline := time.After(5 * time.Second)
	for !complete() {
		select {
		case r := <-events:
			got[r.TypeURL] = r
		case <-deadline:
			t.Fatalf("client not synced within 5s; got %v (stream error: %v)", keys(got), cl.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return got
}

func keys(m map[string]xdsclient.Response) []string {
	var out []string
	for k := range m {
		out = append(out, xdsclient.Short(k))
	}
	return out
}

// eventually polls cond every 10ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type inputsView = app.InputsView
