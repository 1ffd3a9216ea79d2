package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chokepoint-xds/chokepoint/test/xdsclient"
)

// proxy is what the load test reads of a SotW or a Delta client.
type proxy interface {
	Err() error
	Synced() bool
	Acked(typeURL string) (string, time.Time)
	// counters: responses and resources received, resources removed, and
	// resources held by type.
	counters() (responses, resources, removed int)
	held(typeURL string) int
}

type sotwProxy struct{ *xdsclient.Client }

func (p sotwProxy) counters() (int, int, int) {
	var n, r int
	for _, t := range xdsclient.Types {
		s := p.State(t)
		n += s.Responses
		r += s.Total
	}
	return n, r, 0
}
func (p sotwProxy) held(t string) int { return p.State(t).Count }

type deltaProxy struct{ *xdsclient.DeltaClient }

func (p deltaProxy) counters() (int, int, int) {
	var n, r, d int
	for _, t := range xdsclient.Types {
		rs, a, rm := p.Stats(t)
		n += rs
		r += a
		d += rm
	}
	return n, r, d
}
func (p deltaProxy) held(t string) int { return p.Count(t) }

func lastAck(p proxy) time.Time {
	var t time.Time
	for _, typ := range xdsclient.Types {
		if _, a := p.Acked(typ); a.After(t) {
			t = a
		}
	}
	return t
}

// runClients is the clients' process: it connects, reports the initial
// config, then follows the commands on stdin (mark, edit UNIXNANO, quit).
// It exits when stdin closes.
func runClients(c config) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	raiseFDLimit(c.clients)
	out := json.NewEncoder(os.Stdout)
	emit := func(r report) error {
		r.CPU, r.PeakRSSKB, r.Goroutines = cpuTime(), peakRSSKB(), runtime.NumGoroutine()
		return out.Encode(r)
	}
	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
		cancel() // the server's process is gone or done
		close(cmds)
	}()

	// One decode per response version (resource version, for Delta) for
	// all simulated proxies (see xdsclient.SharedCodec).
	codec := xdsclient.SharedCodec()
	ps := make([]proxy, c.clients)
	started := make([]time.Time, c.clients)
	conns := make([]*grpc.ClientConn, c.clients)
	defer func() {
		for _, conn := range conns {
			if conn != nil {
				conn.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, c.clients)
	connectStart := time.Now()
	for i := 0; i < c.clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			conn, err := grpc.NewClient(c.xds, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.ForceCodecV2(codec)))
			if err != nil {
				errs <- err
				return
			}
			conns[i] = conn
			k := i % c.classes
			ns := fmt.Sprintf("ns-%d", k)
			id := fmt.Sprintf("sidecar~10.%d.%d.%d~pod-%d.%s~%s.svc.cluster.local", 16+i/65536, i/256%256, i%256, i, ns, ns)
			node := xdsclient.Node(id, ns, map[string]string{"app": fmt.Sprintf("app-%d", k)})
			started[i] = time.Now()
			if c.delta {
				cl, err := xdsclient.StartDelta(ctx, conn, xdsclient.DeltaOptions{Node: node})
				if err != nil {
					errs <- err
					return
				}
				ps[i] = deltaProxy{cl}
			} else {
				cl, err := xdsclient.Start(ctx, conn, xdsclient.Options{Node: node})
				if err != nil {
					errs <- err
					return
				}
				ps[i] = sotwProxy{cl}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return fmt.Errorf("connecting: %w", err)
	}
	if err := waitAll(ctx, func() (int, error) {
		n := 0
		for _, p := range ps {
			if err := p.Err(); err != nil {
				return 0, fmt.Errorf("a stream ended: %w", err)
			}
			if p.Synced() {
				n++
			}
		}
		return n, nil
	}, c.clients); err != nil {
		return fmt.Errorf("initial config: %w", err)
	}
	elapsed := time.Since(connectStart)
	if err := waitQuiet(ctx, ps); err != nil {
		return err
	}
	lat := make([]time.Duration, c.clients)
	counts := map[string]int{}
	var responses, resources, removed []int
	counters := func(before [][3]int) {
		responses, resources, removed = responses[:0], resources[:0], removed[:0]
		for i, p := range ps {
			n, r, d := p.counters()
			if before != nil {
				n, r, d = n-before[i][0], r-before[i][1], d-before[i][2]
			}
			responses, resources, removed = append(responses, n), append(resources, r), append(removed, d)
		}
	}
	for i, p := range ps {
		lat[i] = lastAck(p).Sub(started[i])
		for _, t := range xdsclient.Types {
			counts[xdsclient.Short(t)] = max(counts[xdsclient.Short(t)], p.held(t))
		}
	}
	counters(nil)
	if err := emit(report{Phase: "initial", Latencies: lat, Elapsed: elapsed, Counts: counts,
		Responses: stats(responses), Resources: stats(resources), Removed: stats(removed)}); err != nil {
		return err
	}

	var before []string
	var beforeCounts [][3]int
	for {
		var cmd string
		select {
		case c, ok := <-cmds:
			if !ok {
				return nil
			}
			cmd = c
		case <-ctx.Done():
			return ctx.Err()
		}
		switch verb, arg, _ := strings.Cut(cmd, " "); verb {
		case "mark":
			time.Sleep(300 * time.Millisecond) // let the initial ACKs settle
			before = make([]string, len(ps))
			beforeCounts = make([][3]int, len(ps))
			for i, p := range ps {
				before[i], _ = p.Acked(xdsclient.ClusterType)
				n, r, d := p.counters()
				beforeCounts[i] = [3]int{n, r, d}
			}
			if err := emit(report{Phase: "marked"}); err != nil {
				return err
			}
		case "edit":
			ns, err := strconv.ParseInt(arg, 10, 64)
			if err != nil || before == nil {
				return fmt.Errorf("bad command %q", cmd)
			}
			edit := time.Unix(0, ns)
			if err := waitAll(ctx, func() (int, error) {
				n := 0
				for i, p := range ps {
					if err := p.Err(); err != nil {
						return 0, fmt.Errorf("a stream ended: %w", err)
					}
					if v, _ := p.Acked(xdsclient.ClusterType); v != before[i] && p.Synced() {
						n++
					}
				}
				return n, nil
			}, c.clients); err != nil {
				return fmt.Errorf("after the edit: %w", err)
			}
			allCDS := time.Since(edit)
			// The other types of the same push: until no client has ACKed
			// anything for a while.
			if err := waitQuiet(ctx, ps); err != nil {
				return err
			}
			for i, p := range ps {
				lat[i] = lastAck(p).Sub(edit)
			}
			counters(beforeCounts)
			if err := emit(report{Phase: "edit", Latencies: lat, AllCDS: allCDS,
				Responses: stats(responses), Resources: stats(resources), Removed: stats(removed)}); err != nil {
				return err
			}
		case "quit":
			return nil
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
	}
}

// waitQuiet waits until no client has ACKed anything for 300ms.
func waitQuiet(ctx context.Context, ps []proxy) error {
	for quiet := time.Now(); time.Since(quiet) < 300*time.Millisecond; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, p := range ps {
			if t := lastAck(p); t.After(quiet) {
				quiet = t
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
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
