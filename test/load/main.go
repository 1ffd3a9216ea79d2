// Command load runs the control plane on a generated fleet of
// ServiceEntries routed through the egress gateway, connects many ADS
// clients spread over proxy classes, and reports time to first config,
// time to converge after one file edit, CPU, memory and snapshot builds.
//
// The control plane runs in this process; the clients run in a second
// one (this program again, with -role clients), so the server's CPU time
// and peak RSS are measured on their own. The two talk over the child's
// stdin (commands) and stdout (JSON reports), on 127.0.0.1 only.
//
//	go run ./test/load -services 5000 -clients 1000 -classes 20 [-delta]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chokepoint-xds/chokepoint/internal/app"
	"github.com/chokepoint-xds/chokepoint/test/fleet"
)

type config struct {
	role                       string
	services, clients, classes int
	delta                      bool
	timeout                    time.Duration
	cpuprofile                 string
	memprofile                 string
	pushBudget                 int64
	pushThrottle               int
	memLimit                   int64
	xds                        string
}

func main() {
	var c config
	flag.StringVar(&c.role, "role", "server", "server: run the control plane and start the clients' process; clients: the clients' process (internal)")
	flag.IntVar(&c.services, "services", 5000, "ServiceEntries (each with a VirtualService through the egress gateway)")
	flag.IntVar(&c.clients, "clients", 1000, "concurrent ADS clients (one gRPC connection each)")
	flag.IntVar(&c.classes, "classes", 20, "proxy classes the clients are spread over (sidecars in distinct namespaces)")
	flag.BoolVar(&c.delta, "delta", false, "clients use incremental xDS (DeltaAggregatedResources, Envoy's DELTA_GRPC) instead of SotW")
	flag.DurationVar(&c.timeout, "timeout", 180*time.Second, "give up after this long")
	flag.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the server process's edit phase to this file")
	flag.Int64Var(&c.pushBudget, "push-budget", 0, "the server's --push-budget in bytes (0: its default)")
	flag.IntVar(&c.pushThrottle, "push-throttle", 0, "the server's --push-throttle (0: its default)")
	flag.Int64Var(&c.memLimit, "memlimit", 0, "the server process's Go soft memory limit in bytes, as GOMEMLIMIT would set for chokepoint serve (0: none)")
	flag.StringVar(&c.memprofile, "memprofile", "", "write a heap profile of the server process after the edit to this file")
	flag.StringVar(&c.xds, "xds", "", "the control plane's xDS address (-role clients)")
	flag.Parse()
	var err error
	switch c.role {
	case "server":
		if c.memLimit > 0 {
			debug.SetMemoryLimit(c.memLimit)
		}
		err = runServer(c)
	case "clients":
		err = runClients(c)
	default:
		err = fmt.Errorf("-role must be server or clients")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "load (%s): %v\n", c.role, err)
		os.Exit(1)
	}
}

// report is one JSON line from the clients' process.
type report struct {
	Phase string `json:"phase"` // initial, marked, edit
	// Latencies per client: connect to last initial ACK, or edit to last ACK.
	Latencies []time.Duration `json:"latencies,omitempty"`
	// AllCDS is how long until every client had ACKed a new CDS version.
	AllCDS  time.Duration  `json:"all_cds,omitempty"`
	Elapsed time.Duration  `json:"elapsed,omitempty"`
	Counts  map[string]int `json:"counts,omitempty"`
	// Per client, in the phase: responses and resources received, removed.
	Responses, Resources, Removed stat          `json:",omitempty"`
	CPU                           time.Duration `json:"cpu"`
	PeakRSSKB                     int64         `json:"peak_rss_kb"`
	Goroutines                    int           `json:"goroutines"`
}

type stat struct{ Min, Mean, Max float64 }

func runServer(c config) error {
	if c.services < 1 || c.clients < 1 || c.classes < 1 {
		return fmt.Errorf("-services, -clients and -classes must be positive")
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	raiseFDLimit(c.clients)

	dir, err := os.MkdirTemp("", "chokepoint-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), fleet.Generate(c.services, func(i int) bool { return i != 0 }), 0o644); err != nil {
		return err
	}
	edited := filepath.Join(dir, "host-0.yaml")
	if err := os.WriteFile(edited, []byte(fleet.ServiceEntry(0, false)), 0o644); err != nil {
		return err
	}

	start := time.Now()
	a, err := app.New(ctx, app.Options{Files: []string{dir}, XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0",
		MaxInflight: c.pushThrottle, MaxInflightBytes: c.pushBudget})
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(runCtx) }()
	mode := "SotW (StreamAggregatedResources)"
	if c.delta {
		mode = "Delta (DeltaAggregatedResources)"
	}
	fmt.Printf("inputs: %d ServiceEntries + VirtualServices loaded and indexed in %s; clients: %d %s in %d classes, in a separate process\n",
		c.services, time.Since(start).Round(time.Millisecond), c.clients, mode, c.classes)

	// The clients' process: killed when this one returns (or dies).
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, exe, "-role", "clients", "-xds", a.XDSAddr(), "-clients", strconv.Itoa(c.clients),
		"-classes", strconv.Itoa(c.classes), "-delta="+strconv.FormatBool(c.delta), "-timeout", c.timeout.String())
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	toChild, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	fromChild, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	childDone := make(chan struct{})
	go func() { _ = cmd.Wait(); close(childDone) }()
	defer func() {
		toChild.Close()
		select {
		case <-childDone:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-childDone
		}
	}()
	reports := make(chan report)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(fromChild)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var r report
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				readErr <- fmt.Errorf("clients' report: %w", err)
				return
			}
			reports <- r
		}
		readErr <- errors.New("the clients' process ended early (see its error above)")
	}()
	await := func(phase string) (report, error) {
		select {
		case r := <-reports:
			if r.Phase != phase {
				return r, fmt.Errorf("clients' process: got %q, want %q", r.Phase, phase)
			}
			return r, nil
		case err := <-readErr:
			return report{}, err
		case <-ctx.Done():
			return report{}, fmt.Errorf("waiting for the clients (%s): %w", phase, ctx.Err())
		}
	}
	send := func(cmd string) error { _, err := io.WriteString(toChild, cmd+"\n"); return err }

	r, err := await("initial")
	if err != nil {
		return fmt.Errorf("initial config: %w", err)
	}
	fmt.Printf("initial: %d clients got and ACKed CDS+EDS+LDS+RDS in %s (resources per client: %d clusters, %d endpoints, %d listeners, %d routes)\n",
		c.clients, r.Elapsed.Round(time.Millisecond), r.Counts["cds"], r.Counts["eds"], r.Counts["lds"], r.Counts["rds"])
	fmt.Printf("  time to initial config: %s\n", summary(r.Latencies))
	fmt.Printf("  per client: %s responses, %s resources\n", r.Responses, r.Resources)
	printProcesses(a, r)

	// Edit one ServiceEntry: a second TLS port, so every class gets a new
	// cluster and a new listener.
	if err := send("mark"); err != nil {
		return err
	}
	if _, err := await("marked"); err != nil {
		return err
	}
	var stopProfile func()
	if c.cpuprofile != "" {
		f, err := os.Create(c.cpuprofile)
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
	if err := os.WriteFile(tmp, []byte(fleet.ServiceEntry(0, true)), 0o644); err != nil {
		return err
	}
	edit := time.Now()
	if err := os.Rename(tmp, edited); err != nil {
		return err
	}
	if err := send(fmt.Sprintf("edit %d", edit.UnixNano())); err != nil {
		return err
	}
	r, err = await("edit")
	if stopProfile != nil {
		stopProfile()
	}
	if err != nil {
		return fmt.Errorf("after the edit: %w", err)
	}
	fmt.Printf("edit: one ServiceEntry file changed (host-0.example.com: port 8443 added); all %d clients ACKed the new CDS %s after the rename\n",
		c.clients, r.AllCDS.Round(time.Millisecond))
	fmt.Printf("  time from edit to last ACK (incl. the 100ms file-watch debounce): %s\n", summary(r.Latencies))
	fmt.Printf("  per client: %s responses, %s resources received, %s removed\n", r.Responses, r.Resources, r.Removed)
	fmt.Printf("  server CPU during the edit phase: %s\n", (cpuTime() - cpu1).Round(time.Millisecond))
	printProcesses(a, r)
	if c.memprofile != "" {
		f, err := os.Create(c.memprofile)
		if err != nil {
			return err
		}
		runtime.GC()
		err = pprof.WriteHeapProfile(f)
		f.Close()
		if err != nil {
			return err
		}
	}

	if err := send("quit"); err != nil {
		return err
	}
	select {
	case <-childDone:
	case <-time.After(15 * time.Second):
	}
	stopRun()
	select {
	case err := <-runDone:
		return err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the control plane did not stop")
	}
}

func (s stat) String() string {
	return fmt.Sprintf("min %.0f / mean %.1f / max %.0f", s.Min, s.Mean, s.Max)
}

func stats(v []int) stat {
	if len(v) == 0 {
		return stat{}
	}
	s := stat{Min: float64(v[0]), Max: float64(v[0])}
	sum := 0
	for _, x := range v {
		s.Min, s.Max = min(s.Min, float64(x)), max(s.Max, float64(x))
		sum += x
	}
	s.Mean = float64(sum) / float64(len(v))
	return s
}

func summary(d []time.Duration) string {
	if len(d) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration {
		return s[min(len(s)-1, int(p*float64(len(s))))].Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %s  p99 %s  max %s", q(0.50), q(0.99), s[len(s)-1].Round(100*time.Microsecond))
}

// printProcesses prints both processes' CPU and peak RSS and the server's
// build and push counters.
func printProcesses(a *app.App, r report) {
	fmt.Printf("  server process: CPU %s since start, peak RSS %d MB\n", cpuTime().Round(time.Millisecond), peakRSSKB()/1024)
	fmt.Printf("  clients process: CPU %s since start, peak RSS %d MB, goroutines %d\n", r.CPU.Round(time.Millisecond), r.PeakRSSKB/1024, r.Goroutines)
	resp, err := http.Get("http://" + a.AdminAddr() + "/metrics")
	if err != nil {
		fmt.Printf("  metrics: %v\n", err)
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
	fmt.Printf("  server metrics: %s\n", strings.Join(lines, "; "))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSSKB is this process's VmHWM.
func peakRSSKB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// raiseFDLimit makes room for one end of every connection (the child
// inherits the limit).
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
