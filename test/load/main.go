// Command load runs the control plane in-process on a generated fleet of
// ServiceEntries routed through the egress gateway, connects many ADS
// clients spread over proxy classes, and reports time to first config,
// time to converge after one file edit, CPU, memory and snapshot builds.
//
//	go run ./test/load -services 5000 -clients 1000 -classes 20
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chokepoint-xds/chokepoint/internal/app"
	"github.com/chokepoint-xds/chokepoint/test/xdsclient"
)

func main() {
	services := flag.Int("services", 5000, "ServiceEntries (each with a VirtualService through the egress gateway)")
	clients := flag.Int("clients", 1000, "concurrent ADS clients (one gRPC connection each)")
	classes := flag.Int("classes", 20, "proxy classes the clients are spread over (sidecars in distinct namespaces)")
	timeout := flag.Duration("timeout", 120*time.Second, "give up after this long")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the edit phase to this file")
	flag.Parse()
	if err := run(*services, *clients, *classes, *timeout, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(services, clients, classes int, timeout time.Duration, cpuprofile string) error {
	if services < 1 || clients < 1 || classes < 1 {
		return fmt.Errorf("-services, -clients and -classes must be positive")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	raiseFDLimit(clients)

	dir, err := os.MkdirTemp("", "chokepoint-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), fleet(services), 0o644); err != nil {
		return err
	}
	edited := filepath.Join(dir, "host-0.yaml")
	if err := os.WriteFile(edited, []byte(serviceEntry(0, false)), 0o644); err != nil {
		return err
	}

	start := time.Now()
	cpu0 := cpuTime()
	a, err := app.New(ctx, app.Options{Files: []string{dir}, XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(ctx) }()
	fmt.Printf("inputs: %d ServiceEntries + VirtualServices loaded and indexed in %s\n", services, time.Since(start).Round(time.Millisecond))

	// Connect.
	type client struct {
		cl      *xdsclient.Client
		started time.Time
	}
	cs := make([]*client, clients)
	// One decode per response version for all simulated proxies (see
	// xdsclient.SharedCodec): the CPU is left to the server.
	codec := xdsclient.SharedCodec()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	connectStart := time.Now()
	var conns []*grpc.ClientConn
	var connMu sync.Mutex
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			conn, err := grpc.NewClient(a.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.ForceCodecV2(codec)))
			if err != nil {
				errs <- err
				return
			}
			connMu.Lock()
			conns = append(conns, conn)
			connMu.Unlock()
			k := i % classes
			ns := fmt.Sprintf("ns-%d", k)
			id := fmt.Sprintf("sidecar~10.%d.%d.%d~pod-%d.%s~%s.svc.cluster.local", 16+i/65536, i/256%256, i%256, i, ns, ns)
			c := &client{started: time.Now()}
			c.cl, err = xdsclient.Start(ctx, conn, xdsclient.Options{Node: xdsclient.Node(id, ns, map[string]string{"app": fmt.Sprintf("app-%d", k)})})
			if err != nil {
				errs <- err
				return
			}
			cs[i] = c
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err := waitAll(ctx, func() (int, error) {
		n := 0
		for _, c := range cs {
			if err := c.cl.Err(); err != nil {
				return 0, fmt.Errorf("a stream ended: %w", err)
			}
			if c.cl.Synced() {
				n++
			}
		}
		return n, nil
	}, clients); err != nil {
		return fmt.Errorf("initial config: %w", err)
	}
	lat := make([]time.Duration, clients)
	counts := map[string]int{}
	for i, c := range cs {
		lat[i] = lastAck(c.cl).Sub(c.started)
		for _, t := range xdsclient.Types {
			counts[xdsclient.Short(t)] = max(counts[xdsclient.Short(t)], c.cl.State(t).Count)
		}
	}
	fmt.Printf("initial: %d clients in %d classes got and ACKed CDS+EDS+LDS+RDS in %s (resources per client: %d clusters, %d endpoints, %d listeners, %d routes)\n",
		clients, classes, time.Since(connectStart).Round(time.Millisecond), counts["cds"], counts["eds"], counts["lds"], counts["rds"])
	fmt.Printf("  time to initial config: %s\n", summary(lat))
	report(a, cpu0, "  ")

	// Edit one ServiceEntry: a second TLS port, so every class gets a new
	// cluster and a new listener.
	before := make([]string, clients)
	for i, c := range cs {
		before[i] = c.cl.State(xdsclient.ClusterType).Acked
	}
	time.Sleep(300 * time.Millisecond) // let the initial ACKs settle
	var stopProfile func()
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
	}
	cpu1 := cpuTime()
	tmp := filepath.Join(dir, ".host-0.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(serviceEntry(0, true)), 0o644); err != nil {
		return err
	}
	edit := time.Now()
	if err := os.Rename(tmp, edited); err != nil {
		return err
	}
	if err := waitAll(ctx, func() (int, error) {
		n := 0
		for i, c := range cs {
			if err := c.cl.Err(); err != nil {
				return 0, fmt.Errorf("a stream ended: %w", err)
			}
			if v := c.cl.State(xdsclient.ClusterType).Acked; v != before[i] && c.cl.Synced() {
				n++
			}
		}
		return n, nil
	}, clients); err != nil {
		return fmt.Errorf("after the edit: %w", err)
	}
	allCDS := time.Since(edit)
	// Wait for the other types of the same push to be ACKed too: until no
	// client has ACKed anything for a while.
	for quiet := time.Now(); time.Since(quiet) < 300*time.Millisecond; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, c := range cs {
			if t := lastAck(c.cl); t.After(quiet) {
				quiet = t
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if stopProfile != nil {
		stopProfile()
	}
	for i, c := range cs {
		lat[i] = lastAck(c.cl).Sub(edit)
	}
	fmt.Printf("edit: one ServiceEntry file changed (host-0.example.com: port 8443 added); all %d clients ACKed the new CDS %s after the rename\n",
		clients, allCDS.Round(time.Millisecond))
	fmt.Printf("  time from edit to last ACK (incl. the %s file-watch debounce): %s\n", "100ms", summary(lat))
	fmt.Printf("  CPU during the edit phase: %s\n", (cpuTime() - cpu1).Round(time.Millisecond))
	report(a, cpu0, "  ")

	cancel()
	select {
	case err := <-runDone:
		return err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the control plane did not stop")
	}
}

// waitAll polls done() until it reports want or ctx ends.
func waitAll(ctx context.Context, done func() (int, error), want int) error {
	for {
		n, err := done()
		if err != nil {
			return err
		}
		if n == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d clients done: %w", n, want, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func lastAck(cl *xdsclient.Client) time.Time {
	var t time.Time
	for _, typ := range xdsclient.Types {
		if a := cl.State(typ).AckedAt; a.After(t) {
			t = a
		}
	}
	return t
}

func summary(d []time.Duration) string {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration {
		return s[min(len(s)-1, int(p*float64(len(s))))].Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %s  p99 %s  max %s", q(0.50), q(0.99), s[len(s)-1].Round(100*time.Microsecond))
}

// report prints process CPU, peak RSS, goroutines and the server's build
// and push counters.
func report(a *app.App, cpu0 time.Duration, indent string) {
	fmt.Printf("%sprocess (server and clients): CPU %s since start, peak RSS %s, goroutines %d\n",
		indent, (cpuTime() - cpu0).Round(time.Millisecond), peakRSS(), runtime.NumGoroutine())
	resp, err := http.Get("http://" + a.AdminAddr() + "/metrics")
	if err != nil {
		fmt.Printf("%smetrics: %v\n", indent, err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, p := range []string{"chokepoint_snapshot_builds_total", "chokepoint_xds_pushes_total", "chokepoint_proxy_classes ",
			"chokepoint_xds_connected_proxies ", "chokepoint_snapshot_build_seconds_sum", "chokepoint_snapshot_build_seconds_count"} {
			if strings.HasPrefix(l, p) {
				lines = append(lines, l)
			}
		}
	}
	fmt.Printf("%sserver metrics: %s\n", indent, strings.Join(lines, "; "))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func peakRSS() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// raiseFDLimit makes room for both ends of every connection.
func raiseFDLimit(clients int) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	want := uint64(2*clients + 256)
	if l.Cur >= want {
		return
	}
	l.Cur = min(want, l.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur < want {
		fmt.Fprintf(os.Stderr, "load: open-file limit %d may be too low for %d clients\n", l.Cur, clients)
	}
}

// fleet is the input without host-0's ServiceEntry (which has its own
// file): the gateway Service and Endpoints, one Gateway, one
// VirtualService per host, REGISTRY_ONLY.
func fleet(n int) []byte {
	var b strings.Builder
	b.WriteString(`apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports:
  - {name: http2, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
---
apiVersion: v1
kind: Endpoints
metadata: {name: istio-egressgateway, namespace: istio-system}
subsets:
- addresses: [{ip: 10.244.1.20}]
  ports: [{name: http2, port: 8080}, {name: https, port: 8443}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway, namespace: istio-system}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets: [{name: external}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    tls: {mode: PASSTHROUGH}
    hosts:
`)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    - host-%d.example.com\n", i)
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString("---\n" + serviceEntry(i, false))
		}
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: host-%[1]d, namespace: egress}
spec:
  hosts: [host-%[1]d.example.com]
  gateways: [mesh, istio-system/egress]
  tls:
  - match: [{gateways: [mesh], port: 443, sniHosts: [host-%[1]d.example.com]}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: external, port: {number: 443}}}]
  - match: [{gateways: [istio-system/egress], port: 443, sniHosts: [host-%[1]d.example.com]}]
    route: [{destination: {host: host-%[1]d.example.com, port: {number: 443}}}]
`, i)
	}
	return []byte(b.String())
}

func serviceEntry(i int, extraPort bool) string {
	ports := "[{number: 443, name: tls, protocol: TLS}]"
	if extraPort {
		ports = "[{number: 443, name: tls, protocol: TLS}, {number: 8443, name: tls-alt, protocol: TLS}]"
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: host-%[1]d, namespace: egress}
spec:
  hosts: [host-%[1]d.example.com]
  ports: %[2]s
  resolution: DNS
  location: MESH_EXTERNAL
`, i, ports)
}
