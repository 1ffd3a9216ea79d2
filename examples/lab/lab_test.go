package lab

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrap "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// The two proxies of the lab, as the README and the scripts describe them.
var proxies = []struct {
	file       string
	id         string
	cluster    string
	namespace  string
	labels     map[string]string
	ipVar      string // lab.env variable holding the address in the node id
	adminVar   string // lab.env variable holding the admin port
	proxyIDVar string // lab.env variable holding POD.NAMESPACE
	wantCDS    []string
	wantLDS    []string
}{
	{
		file:       "sidecar.yaml",
		id:         "sidecar~10.244.2.7~sleep-6d8f.mesh-test~mesh-test.svc.cluster.local",
		cluster:    "sleep.mesh-test",
		namespace:  "mesh-test",
		labels:     map[string]string{"app": "sleep"},
		ipVar:      "SLEEP_IP",
		adminVar:   "SIDECAR_ADMIN_PORT",
		proxyIDVar: "SIDECAR_PROXY_ID",
		wantCDS:    []string{"outbound|443|httpbin|istio-egressgateway.istio-system.svc.cluster.local", "BlackHoleCluster"},
		wantLDS:    []string{"virtualOutbound", "0.0.0.0_443"},
	},
	{
		file:       "egress-gateway.yaml",
		id:         "router~10.244.1.20~istio-egressgateway-7c9d.istio-system~istio-system.svc.cluster.local",
		cluster:    "istio-egressgateway.istio-system",
		namespace:  "istio-system",
		labels:     map[string]string{"app": "istio-egressgateway", "istio": "egressgateway"},
		ipVar:      "GATEWAY_IP",
		adminVar:   "GATEWAY_ADMIN_PORT",
		proxyIDVar: "GATEWAY_PROXY_ID",
		wantCDS:    []string{"outbound|443||httpbin.org"},
		wantLDS:    []string{"0.0.0.0_8443"},
	},
}

var scripts = []string{"up.sh", "down.sh", "prove.sh", "certs.sh", "lab.env"}

// labEnv reads the defaults of lab.env: NAME=${NAME:-value} and NAME=value.
func labEnv(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("lab.env")
	if err != nil {
		t.Fatal(err)
	}
	withDefault := regexp.MustCompile(`^([A-Z0-9_]+)=\$\{([A-Z0-9_]+):-(.*)\}$`)
	plain := regexp.MustCompile(`^([A-Z0-9_]+)='?([^'$]*)'?$`)
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if m := withDefault.FindStringSubmatch(line); m != nil && m[1] == m[2] {
			env[m[1]] = m[3]
		} else if m := plain.FindStringSubmatch(line); m != nil {
			env[m[1]] = m[2]
		}
	}
	return env
}

func loadBootstrap(t *testing.T, file string) *bootstrap.Bootstrap {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	b := &bootstrap.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		t.Fatalf("%s is not an Envoy v3 Bootstrap: %v", file, err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return b
}

// TestBootstraps parses both bootstraps as Envoy would (v3 Bootstrap, typed
// configs resolved, protoc-gen-validate rules) and checks that they agree
// with the node identities chokepoint expects and with the addresses the
// scripts set up.
func TestBootstraps(t *testing.T) {
	env := labEnv(t)
	for _, k := range []string{"XDS_IP", "XDS_PORT", "SLEEP_IP", "GATEWAY_IP", "GATEWAY_PORT", "SIDECAR_ADMIN_PORT", "GATEWAY_ADMIN_PORT"} {
		if env[k] == "" {
			t.Fatalf("lab.env has no default for %s", k)
		}
	}
	gatewayEndpoint := endpointsAddress(t)
	if want := env["GATEWAY_IP"] + ":" + env["GATEWAY_PORT"]; gatewayEndpoint != want {
		t.Errorf("examples/httpbin-passthrough Endpoints say the gateway's https port is %s; lab.env says %s", gatewayEndpoint, want)
	}
	admins := map[string]bool{}
	for _, p := range proxies {
		t.Run(p.file, func(t *testing.T) {
			b := loadBootstrap(t, p.file)
			n := b.GetNode()
			if n.GetId() != p.id {
				t.Errorf("node.id = %q, want %q", n.GetId(), p.id)
			}
			if parts := strings.Split(n.GetId(), "~"); len(parts) != 4 || parts[1] != env[p.ipVar] ||
				parts[2] != env[p.proxyIDVar] || parts[3] != p.namespace+".svc.cluster.local" {
				t.Errorf("node.id %q does not match lab.env (%s=%s, %s=%s)", n.GetId(), p.ipVar, env[p.ipVar], p.proxyIDVar, env[p.proxyIDVar])
			}
			if n.GetCluster() != p.cluster {
				t.Errorf("node.cluster = %q, want %q", n.GetCluster(), p.cluster)
			}
			md := n.GetMetadata().GetFields()
			if got := md["NAMESPACE"].GetStringValue(); got != p.namespace {
				t.Errorf("node.metadata.NAMESPACE = %q, want %q", got, p.namespace)
			}
			labels := map[string]string{}
			for k, v := range md["LABELS"].GetStructValue().GetFields() {
				labels[k] = v.GetStringValue()
			}
			if fmt.Sprint(labels) != fmt.Sprint(p.labels) {
				t.Errorf("node.metadata.LABELS = %v, want %v", labels, p.labels)
			}

			ads := b.GetDynamicResources().GetAdsConfig()
			if ads.GetApiType() != core.ApiConfigSource_GRPC || ads.GetTransportApiVersion() != core.ApiVersion_V3 {
				t.Errorf("ads_config: api_type %v transport %v, want GRPC V3", ads.GetApiType(), ads.GetTransportApiVersion())
			}
			if !ads.GetSetNodeOnFirstMessageOnly() {
				t.Errorf("ads_config.set_node_on_first_message_only is not set")
			}
			if gs := ads.GetGrpcServices(); len(gs) != 1 || gs[0].GetEnvoyGrpc().GetClusterName() != "xds-grpc" {
				t.Errorf("ads_config.grpc_services = %v, want envoy_grpc xds-grpc", gs)
			}
			for name, src := range map[string]*core.ConfigSource{
				"cds_config": b.GetDynamicResources().GetCdsConfig(),
				"lds_config": b.GetDynamicResources().GetLdsConfig(),
			} {
				if src.GetAds() == nil || src.GetResourceApiVersion() != core.ApiVersion_V3 {
					t.Errorf("%s = %v, want ads with resource_api_version V3", name, src)
				}
			}

			clusters := b.GetStaticResources().GetClusters()
			if len(clusters) != 1 || clusters[0].GetName() != "xds-grpc" {
				t.Fatalf("static_resources.clusters should be the single xds-grpc cluster, got %d", len(clusters))
			}
			c := clusters[0]
			if c.GetType() != cluster.Cluster_STATIC {
				t.Errorf("xds-grpc type = %v, want STATIC", c.GetType())
			}
			lbs := c.GetLoadAssignment().GetEndpoints()
			if len(lbs) != 1 || len(lbs[0].GetLbEndpoints()) != 1 {
				t.Fatalf("xds-grpc should have exactly one endpoint")
			}
			sa := lbs[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			if got, want := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()), env["XDS_IP"]+":"+env["XDS_PORT"]; got != want {
				t.Errorf("xds-grpc endpoint = %s, want %s (lab.env XDS_IP:XDS_PORT, where up.sh starts chokepoint)", got, want)
			}
			po := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
			if po == nil {
				t.Fatalf("xds-grpc has no typed_extension_protocol_options for HTTP/2")
			}
			opts := &upstreamhttp.HttpProtocolOptions{}
			if err := po.UnmarshalTo(opts); err != nil {
				t.Fatalf("xds-grpc protocol options: %v", err)
			}
			if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
				t.Errorf("xds-grpc does not speak HTTP/2 (explicit_http_config.http2_protocol_options)")
			}

			admin := b.GetAdmin().GetAddress().GetSocketAddress()
			if admin.GetAddress() != "127.0.0.1" {
				t.Errorf("admin address %q, want loopback", admin.GetAddress())
			}
			port := fmt.Sprint(admin.GetPortValue())
			if port != env[p.adminVar] {
				t.Errorf("admin port %s, lab.env %s says %s", port, p.adminVar, env[p.adminVar])
			}
			if port == "15001" || port == env["GATEWAY_PORT"] {
				t.Errorf("admin port %s collides with a listener the proxy is served", port)
			}
			if admins[port] {
				t.Errorf("admin port %s used by both proxies", port)
			}
			admins[port] = true
		})
	}
}

// endpointsAddress is the https address of the egress gateway's Endpoints in
// the embedded example: where hop 1 connects, so where the lab puts the gateway.
func endpointsAddress(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../httpbin-passthrough/egress-gateway-service.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---") {
		var ep struct {
			Kind    string
			Subsets []struct {
				Addresses []struct{ IP string }
				Ports     []struct {
					Name string
					Port int
				}
			}
		}
		if err := yaml.Unmarshal([]byte(doc), &ep); err != nil {
			t.Fatal(err)
		}
		if ep.Kind != "Endpoints" {
			continue
		}
		for _, s := range ep.Subsets {
			for _, p := range s.Ports {
				if p.Name == "https" && len(s.Addresses) > 0 {
					return fmt.Sprintf("%s:%d", s.Addresses[0].IP, p.Port)
				}
			}
		}
	}
	t.Fatal("no Endpoints with an https port in egress-gateway-service.yaml")
	return ""
}

// TestScriptsParse runs bash -n on every script.
func TestScriptsParse(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not found")
	}
	for _, s := range scripts {
		if out, err := exec.Command(bash, "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
	}
	for _, s := range []string{"up.sh", "down.sh", "prove.sh", "certs.sh", "fake-httpbin.py", "hops.py"} {
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", s)
		}
	}
}

// TestFakeHTTPBin runs the lab's certificate script and fake httpbin.org on
// loopback and calls it as curl does in the sleep pod: TLS with SNI
// httpbin.org, verified against the lab's CA.
func TestFakeHTTPBin(t *testing.T) {
	for _, tool := range []string{"bash", "openssl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	dir := t.TempDir()
	if out, err := exec.Command("bash", "certs.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("certs.sh: %v\n%s", err, out)
	}
	for _, f := range []string{"ca.crt", "httpbin.crt", "httpbin.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.Command("python3", "fake-httpbin.py", "--cert", filepath.Join(dir, "httpbin.crt"),
		"--key", filepath.Join(dir, "httpbin.key"), "--bind", "127.0.0.1", "--port", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("fake-httpbin.py did not start: %v", err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))

	pem, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.crt holds no certificate")
	}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
	}
	resp, err := client.Get("https://httpbin.org/get")
	if err != nil {
		t.Fatalf("GET https://httpbin.org/get (at %s): %v", addr, err)
	}
	defer resp.Body.Close()
	var body struct {
		Origin string `json:"origin"`
		SNI    string `json:"sni"`
		URL    string `json:"url"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body.Origin != "127.0.0.1" || body.SNI != "httpbin.org" || body.URL != "https://httpbin.org/get" {
		t.Errorf("got %d %+v, want 200 with origin 127.0.0.1, sni httpbin.org", resp.StatusCode, body)
	}
}

// TestHopsScript feeds hops.py an Envoy-style (snake_case) config dump.
func TestHopsScript(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found")
	}
	dump := `{"configs":[
 {"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump","dynamic_listeners":[{"name":"0.0.0.0_443","active_state":{"listener":{
   "name":"0.0.0.0_443","address":{"socket_address":{"address":"0.0.0.0","port_value":443}},"bind_to_port":false,
   "filter_chains":[{"filter_chain_match":{"server_names":["httpbin.org"]},"filters":[{"name":"envoy.filters.network.tcp_proxy",
     "typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy","cluster":"outbound|443|httpbin|istio-egressgateway.istio-system.svc.cluster.local"}}]}],
   "default_filter_chain":{"name":"PassthroughFilterChain","filters":[{"name":"envoy.filters.network.tcp_proxy","typed_config":{"cluster":"BlackHoleCluster"}}]}}}}]},
 {"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump","dynamic_active_clusters":[{"cluster":{"name":"BlackHoleCluster","type":"STATIC"}}]}]}`
	cmd := exec.Command("python3", "hops.py")
	cmd.Stdin = strings.NewReader(dump)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hops.py: %v\n%s", err, out)
	}
	for _, want := range []string{
		"listener 0.0.0.0_443  0.0.0.0:443  bind_to_port=false",
		"sni httpbin.org",
		"tcp_proxy -> outbound|443|httpbin|istio-egressgateway.istio-system.svc.cluster.local",
		"(default) PassthroughFilterChain",
		"tcp_proxy -> BlackHoleCluster",
		"cluster BlackHoleCluster",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("hops.py output lacks %q:\n%s", want, out)
		}
	}
}

// buildChokepoint builds ./cmd/chokepoint into a temporary directory.
func buildChokepoint(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not found")
	}
	bin := filepath.Join(t.TempDir(), "chokepoint")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/chokepoint")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/chokepoint: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeAnswersBootstrapNodes starts `chokepoint serve` on the embedded
// example, as up.sh does, and asks it for clusters and listeners over ADS
// with the node of each bootstrap: the sidecar must get hop 1, the gateway
// hop 2. This is what the Envoys of the lab will see, minus Envoy.
func TestServeAnswersBootstrapNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs chokepoint serve")
	}
	bin := buildChokepoint(t)
	xdsAddr, adminAddr := freePort(t), freePort(t)
	var logs strings.Builder
	cmd := exec.Command(bin, "serve", "-f", "../httpbin-passthrough", "--xds-address", xdsAddr, "--admin-address", adminAddr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("chokepoint serve log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("chokepoint serve not ready at %s/readyz: %v", adminAddr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const (
		cdsType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
		ldsType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	)
	for _, p := range proxies {
		t.Run(p.file, func(t *testing.T) {
			node := loadBootstrap(t, p.file).GetNode()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// As Envoy with set_node_on_first_message_only: the node on the first request only.
			if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: cdsType}); err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: ldsType}); err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for len(got[cdsType]) == 0 || len(got[ldsType]) == 0 {
				resp, err := stream.Recv()
				if err != nil {
					t.Fatalf("ADS stream for %s: %v (got so far %v)", node.GetId(), err, got)
				}
				for _, r := range resp.GetResources() {
					switch resp.GetTypeUrl() {
					case cdsType:
						c := &cluster.Cluster{}
						if err := r.UnmarshalTo(c); err != nil {
							t.Fatal(err)
						}
						got[cdsType] = append(got[cdsType], c.GetName())
					case ldsType:
						l := &listener.Listener{}
						if err := r.UnmarshalTo(l); err != nil {
							t.Fatal(err)
						}
						got[ldsType] = append(got[ldsType], l.GetName())
					}
				}
			}
			for _, want := range p.wantCDS {
				if !slices.Contains(got[cdsType], want) {
					t.Errorf("%s: CDS lacks %s; got %v", p.file, want, got[cdsType])
				}
			}
			for _, want := range p.wantLDS {
				if !slices.Contains(got[ldsType], want) {
					t.Errorf("%s: LDS lacks %s; got %v", p.file, want, got[ldsType])
				}
			}
		})
	}
}

// TestLab runs the whole lab: up.sh, prove.sh, down.sh. It needs root, a stock
// Envoy on PATH and the tools the scripts use, and skips otherwise.
func TestLab(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root (network namespaces, veth pairs, iptables); run: sudo go test ./examples/lab/ -run TestLab -v")
	}
	var missing []string
	for _, tool := range []string{"envoy", "ip", "iptables", "openssl", "dnsmasq", "curl", "python3", "setpriv", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Skipf("the lab needs %s on PATH (see examples/lab/README.md, Prerequisites)", strings.Join(missing, ", "))
	}
	env := labEnv(t)
	for _, ns := range []string{env["NS_SLEEP"], env["NS_GATEWAY"], env["NS_INTERNET"], env["NS_PODNET"]} {
		if _, err := os.Stat("/var/run/netns/" + ns); err == nil {
			t.Skipf("network namespace %s exists: a lab is already up; run examples/lab/down.sh first", ns)
		}
	}
	bin := buildChokepoint(t)
	runScript := func(name string) error {
		cmd := exec.Command("bash", name)
		cmd.Env = append(os.Environ(), "CHOKEPOINT="+bin)
		out, err := cmd.CombinedOutput()
		t.Logf("%s:\n%s", name, out)
		return err
	}
	t.Cleanup(func() {
		if err := runScript("down.sh"); err != nil {
			t.Errorf("down.sh: %v", err)
		}
		for _, ns := range []string{env["NS_SLEEP"], env["NS_GATEWAY"], env["NS_INTERNET"], env["NS_PODNET"]} {
			if _, err := os.Stat("/var/run/netns/" + ns); err == nil {
				t.Errorf("down.sh left namespace %s behind", ns)
			}
		}
	})
	if err := runScript("up.sh"); err != nil {
		t.Fatalf("up.sh: %v", err)
	}
	if err := runScript("prove.sh"); err != nil {
		t.Fatalf("prove.sh: %v", err)
	}
}
