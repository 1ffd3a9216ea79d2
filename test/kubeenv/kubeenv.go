// Package kubeenv runs a real etcd and kube-apiserver on loopback for
// integration tests, with the Istio CRDs installed.
//
// It exists so that code reading Kubernetes (informers, RBAC handling,
// reconnects after an API server outage) is tested against the real API
// server rather than a fake clientset: real validation, real watch semantics,
// real Forbidden errors. No controller-manager, scheduler or kubelet runs, so
// nothing reconciles: Endpoints and EndpointSlices exist only when a test
// applies them, and a deleted Namespace stays Terminating.
//
// Binaries:
//   - etcd: from PATH, else /usr/bin/etcd (Debian: apt-get install etcd-server).
//   - kube-apiserver: $KUBE_APISERVER, else the cache location that
//     `make kube-tools` builds into (see APIServerPath).
//
// When either is missing, Start skips the test with a message saying how to get
// it; with KUBEENV_REQUIRE=1 it fails the test instead.
//
// Typical use:
//
//	env := kubeenv.Start(t)
//	env.Apply(t, manifest)
//	client := kubernetes.NewForConfigOrDie(env.Config)
//	env.StopAPIServer(t)  // outage
//	env.StartAPIServer(t) // same address, same etcd: objects survive
package kubeenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// AdminUser is the user of Env.Config and Env.Kubeconfig. It is in the
// system:masters group, which RBAC lets do anything.
const AdminUser = "kubeenv-admin"

// startTimeout bounds how long each process may take to become ready. It is
// generous because the machines that run the tests may be busy compiling.
const startTimeout = 2 * time.Minute

// Env is a running etcd and kube-apiserver. All methods that take a
// testing.TB call t.Fatal on error, so call them from the test goroutine.
type Env struct {
	// Kubeconfig is the path of a kubeconfig file for AdminUser.
	Kubeconfig string
	// Config is the client configuration for AdminUser. Copy it with
	// rest.CopyConfig before changing it.
	Config *rest.Config
	// URL is the API server's address, https://127.0.0.1:<port>. It stays
	// the same across StopAPIServer and StartAPIServer.
	URL string

	dir     string
	ca      *authority
	etcd    *process
	api     *process
	apiBin  string
	apiArgs []string

	dynamic dynamic.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
}

// Start runs etcd and kube-apiserver for the test, installs the Istio CRDs
// and waits until they are established. Everything is stopped and removed
// when the test ends. It skips the test when a binary is missing.
func Start(t testing.TB) *Env {
	t.Helper()
	etcdBin, apiBin := binaries(t)
	began := time.Now()

	e := &Env{dir: t.TempDir(), apiBin: apiBin}
	dataDir := etcdDataDir(t)
	// Registered after the directories' removal, so it runs before it.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubeenv: last lines of %s:\n%s", e.APIServerLog(), tail(e.APIServerLog(), 20))
		}
		e.stop()
	})

	ports, err := freePorts(3)
	if err != nil {
		t.Fatalf("kubeenv: %v", err)
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	e.URL = "https://127.0.0.1:" + strconv.Itoa(ports[2])

	e.etcd, err = startProcess("etcd", filepath.Join(e.dir, "etcd.log"), etcdBin,
		"--name=kubeenv",
		"--data-dir="+dataDir,
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubeenv="+peerURL,
		"--log-level=warn",
	)
	if err != nil {
		t.Fatalf("kubeenv: %v", err)
	}
	if err := waitReady(e.etcd, http.DefaultClient, etcdURL+"/health"); err != nil {
		t.Fatalf("kubeenv: etcd at %s: %v", etcdURL, err)
	}
	etcdReady := time.Now()

	if e.ca, err = newAuthority(); err != nil {
		t.Fatalf("kubeenv: %v", err)
	}
	e.apiArgs, err = e.apiServerArgs(etcdURL, ports[2])
	if err != nil {
		t.Fatalf("kubeenv: %v", err)
	}
	e.Config = e.ConfigFor(AdminUser, "system:masters")
	e.Kubeconfig = e.KubeconfigFor(t, AdminUser, "system:masters")
	e.StartAPIServer(t)
	apiReady := time.Now()

	quiet := rest.CopyConfig(e.Config)
	quiet.WarningHandler = rest.NoWarnings{}
	if e.dynamic, err = dynamic.NewForConfig(quiet); err != nil {
		t.Fatalf("kubeenv: %v", err)
	}
	if e.mapper, err = newMapper(quiet); err != nil {
		t.Fatalf("kubeenv: %v", err)
	}
	e.installIstioCRDs(t)
	t.Logf("kubeenv: %s ready in %s: etcd %s, kube-apiserver %s, Istio CRDs %s",
		e.URL, time.Since(began).Round(time.Millisecond), etcdReady.Sub(began).Round(time.Millisecond),
		apiReady.Sub(etcdReady).Round(time.Millisecond), time.Since(apiReady).Round(time.Millisecond))
	return e
}

// binaries finds etcd and kube-apiserver or skips the test.
func binaries(t testing.TB) (etcdBin, apiBin string) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("KUBEENV_REQUIRE") == "1" {
		skip = t.Fatalf
	}
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		if _, statErr := os.Stat("/usr/bin/etcd"); statErr != nil {
			skip("kubeenv: etcd not found in PATH or /usr/bin/etcd; install it with `apt-get install etcd-server` (Debian)")
		}
		etcdBin = "/usr/bin/etcd"
	}
	apiBin, fromEnv := os.LookupEnv("KUBE_APISERVER")
	if !fromEnv {
		apiBin = APIServerPath()
	}
	if info, err := os.Stat(apiBin); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		if fromEnv {
			t.Fatalf("kubeenv: KUBE_APISERVER=%s is not an executable file", apiBin)
		}
		skip("kubeenv: kube-apiserver not found at %s; build it with `make kube-tools` (several minutes the first time) or set KUBE_APISERVER", apiBin)
	}
	return etcdBin, apiBin
}

// APIServerPath is where `make kube-tools` puts kube-apiserver:
// $XDG_CACHE_HOME/chokepoint/bin/kube-apiserver, or
// $HOME/.cache/chokepoint/bin/kube-apiserver.
func APIServerPath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "chokepoint", "bin", "kube-apiserver")
}

// etcdDataDir prefers memory-backed storage: etcd syncs every write and
// the API server's startup writes a few hundred objects, which takes seconds
// longer on disk. The directory name carries the test process's pid so that
// one left behind by a killed test is removed by the next Start.
func etcdDataDir(t testing.TB) string {
	const shm = "/dev/shm"
	if info, err := os.Stat(shm); err != nil || !info.IsDir() {
		return filepath.Join(t.TempDir(), "etcd")
	}
	removeOrphans(shm)
	dir, err := os.MkdirTemp(shm, fmt.Sprintf("kubeenv-etcd-%d-", os.Getpid()))
	if err != nil {
		return filepath.Join(t.TempDir(), "etcd")
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func removeOrphans(shm string) {
	dirs, _ := filepath.Glob(filepath.Join(shm, "kubeenv-etcd-*-*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.Split(filepath.Base(dir), "-")[2])
		if err == nil && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}

func (e *Env) apiServerArgs(etcdURL string, port int) ([]string, error) {
	files := map[string][]byte{
		"ca.crt": e.ca.certPEM,
	}
	var err error
	if files["serving.crt"], files["serving.key"], err = e.ca.servingCert(); err != nil {
		return nil, err
	}
	if files["sa.key"], err = newPrivateKeyPEM(); err != nil {
		return nil, err
	}
	pki := filepath.Join(e.dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return nil, err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(pki, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	return []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + filepath.Join(pki, "serving.crt"),
		"--tls-private-key-file=" + filepath.Join(pki, "serving.key"),
		"--client-ca-file=" + filepath.Join(pki, "ca.crt"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(pki, "sa.key"),
		"--service-account-signing-key-file=" + filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		// No controller-manager creates the default ServiceAccount that this
		// plugin would demand of every Pod.
		"--disable-admission-plugins=ServiceAccount",
		"--profiling=false",
	}, nil
}

// StartAPIServer starts kube-apiserver (again) on the same address and etcd
// and waits until it is ready. It does nothing when the server is running.
func (e *Env) StartAPIServer(t testing.TB) {
	t.Helper()
	if e.api != nil && !e.api.exited() {
		return
	}
	var err error
	e.api, err = startProcess("kube-apiserver", filepath.Join(e.dir, "kube-apiserver.log"), e.apiBin, e.apiArgs...)
	if err != nil {
		t.Fatalf("kubeenv: %v", err)
	}
	client, err := rest.HTTPClientFor(e.Config)
	if err != nil {
		t.Fatalf("kubeenv: %v", err)
	}
	client.Timeout = 5 * time.Second
	if err := waitReady(e.api, client, e.URL+"/readyz"); err != nil {
		t.Fatalf("kubeenv: kube-apiserver at %s: %v", e.URL, err)
	}
}

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after a few
// seconds) and returns once it has exited and its port is closed. etcd keeps
// running, so StartAPIServer brings back the same objects.
func (e *Env) StopAPIServer(t testing.TB) {
	t.Helper()
	if e.api == nil {
		return
	}
	if err := e.api.stop(5 * time.Second); err != nil {
		t.Fatalf("kubeenv: stop kube-apiserver: %v", err)
	}
}

// APIServerLog returns the path of kube-apiserver's log (stdout and stderr of
// every run, appended).
func (e *Env) APIServerLog() string { return filepath.Join(e.dir, "kube-apiserver.log") }

func (e *Env) stop() {
	for _, p := range []*process{e.api, e.etcd} {
		if p != nil {
			_ = p.stop(5 * time.Second)
		}
	}
}

// waitReady polls url until it answers 200, the process exits, or
// startTimeout passes.
func waitReady(p *process, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-p.done:
			return fmt.Errorf("exited before ready (%v); log %s:\n%s", p.err, p.logPath, tail(p.logPath, 30))
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s (last: %v); log %s:\n%s", startTimeout, last, p.logPath, tail(p.logPath, 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
