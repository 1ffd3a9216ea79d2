package trace

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/translate"
)

// Kind is how a traced call ends.
type Kind string

const (
	// External: the last proxy connects to a host outside the mesh.
	External Kind = "external"
	// Service: the last proxy connects to the endpoints of a Kubernetes
	// Service (an in-mesh workload).
	Service Kind = "service"
	// Passthrough: PassthroughCluster, the original destination, with no
	// egress control.
	Passthrough Kind = "passthrough"
	// Blackhole: BlackHoleCluster: reset (curl 000), HTTP 503.
	Blackhole Kind = "blackhole"
	// DirectResponse: Envoy answers itself (block_all's 502).
	DirectResponse Kind = "direct_response"
	// Redirect: an HTTP redirect (httpsRedirect).
	Redirect Kind = "redirect"
	// NoFilterChain: no filter chain matched: the connection is closed.
	NoFilterChain Kind = "no_filter_chain"
	// NoRoute: no virtual host or route matched: 404.
	NoRoute Kind = "no_route"
	// NoListener: nothing listens on the port: connection refused.
	NoListener Kind = "no_listener"
	// NoEndpoints: the cluster exists but has no endpoints: 503 (UH) or reset.
	NoEndpoints Kind = "no_endpoints"
	// UnknownCluster: the route names a cluster the proxy does not have:
	// 503 (NC) or closed.
	UnknownCluster Kind = "unknown_cluster"
	// Loop: the call came back to a proxy in the state it had already
	// reached it in (or crossed too many hops).
	Loop Kind = "loop"
)

// MaxHops bounds a trace when Options.MaxHops is 0.
const MaxHops = 8

// Options tune a trace.
type Options struct {
	// Config returns the config a proxy has; nil translates it from the
	// index. /debug/trace uses it to walk the snapshot a proxy was served.
	Config func(translate.Proxy) *translate.Resources
	// MaxHops bounds the number of proxies crossed (MaxHops if 0).
	MaxHops int
}

// Proxy names the proxy a hop runs on.
type Proxy struct {
	Node      string             `json:"node"`
	Type      translate.NodeType `json:"type"`
	Namespace string             `json:"namespace"`
	Labels    map[string]string  `json:"labels,omitempty"`
	// Via says where a gateway proxy's identity came from (the Service and
	// Gateways it was synthesised from); empty for the starting proxy.
	Via []string `json:"via,omitempty"`
}

// Name is the proxy's short ID (POD.NAMESPACE).
func (p Proxy) Name() string {
	parts := strings.Split(p.Node, "~")
	if len(parts) == 4 {
		return parts[2]
	}
	return p.Node
}

// Hop is the path of the call through one proxy.
type Hop struct {
	Proxy Proxy `json:"proxy"`
	// Call is the connection as it arrives at this proxy.
	Call             sim.Call    `json:"call"`
	Listener         string      `json:"listener,omitempty"`
	FilterChain      string      `json:"filterChain,omitempty"`
	RouteConfig      string      `json:"routeConfig,omitempty"`
	VirtualHost      string      `json:"virtualHost,omitempty"`
	Route            string      `json:"route,omitempty"`
	Cluster          string      `json:"cluster,omitempty"`
	WeightedClusters []string    `json:"weightedClusters,omitempty"`
	Outcome          sim.Outcome `json:"outcome"`
	Status           uint32      `json:"status,omitempty"`
	RedirectTo       string      `json:"redirectTo,omitempty"`
	// Sources are the Istio objects that made this hop, as istio.config
	// metadata paths: the chain's and route's VirtualService, the cluster's
	// DestinationRule and service, a gateway's Gateways.
	Sources []string `json:"sources,omitempty"`
	// Next is set when the cluster is a gateway's Service and the call
	// continues there.
	Next *Forward `json:"next,omitempty"`
}

// Forward is the handover from one proxy to a gateway.
type Forward struct {
	// Service is the gateway's Kubernetes Service (namespace/name) and Port
	// the Service port the cluster names.
	Service string `json:"service"`
	Port    uint32 `json:"port"`
	// TargetPort is the Service's targetPort: where the gateway listens.
	TargetPort uint32 `json:"targetPort"`
	// Address and EndpointPort are the endpoint Envoy connects to.
	Address      string `json:"address"`
	EndpointPort uint32 `json:"endpointPort"`
	// TLS is what happens to TLS on the way: passthrough, terminated,
	// originated, or empty for plain text.
	TLS string `json:"tls,omitempty"`
}

// Outcome is how the call ends.
type Outcome struct {
	Kind Kind `json:"kind"`
	// Cluster is the last cluster chosen, if any.
	Cluster string `json:"cluster,omitempty"`
	// Destination is where the bytes go: host:port (or several).
	Destination string `json:"destination,omitempty"`
	Status      uint32 `json:"status,omitempty"`
	// LoopsTo is the hop (1-based) a loop returns to.
	LoopsTo     int    `json:"loopsTo,omitempty"`
	Explanation string `json:"explanation"`
}

// Trace is a call followed hop by hop.
type Trace struct {
	Call    sim.Call `json:"call"`
	Hops    []Hop    `json:"hops"`
	Outcome Outcome  `json:"outcome"`
}

// Run traces call from proxy start through idx's config.
func Run(idx *translate.Index, start translate.Proxy, call sim.Call, opts Options) *Trace {
	if opts.Config == nil {
		opts.Config = idx.Translate
	}
	if opts.MaxHops <= 0 {
		opts.MaxHops = MaxHops
	}
	if call.Address == "" {
		// A sidecar's call goes to some public address; a gateway is
		// reached on its own.
		call.Address = sim.DefaultAddress
		if start.Type == translate.Router && start.IP != "" {
			call.Address = start.IP
		}
	}
	w := newWorld(idx.Inputs())
	t := &Trace{Call: call}
	p, info := start, proxyInfo(start, nil)
	seen := map[string]int{}
	for {
		key := p.ClassKey() + "\x00" + callKey(call)
		if first, ok := seen[key]; ok {
			t.Outcome = Outcome{Kind: Loop, LoopsTo: first + 1, Explanation: fmt.Sprintf(
				"loop: the call reaches %s again exactly as at hop %d; Envoy would forward it round until a timeout or the connection limit",
				info.Name(), first+1)}
			return t
		}
		if len(t.Hops) >= opts.MaxHops {
			t.Outcome = Outcome{Kind: Loop, Explanation: fmt.Sprintf("gave up after %d hops: the gateways keep handing the call on", opts.MaxHops)}
			return t
		}
		seen[key] = len(t.Hops)
		res := opts.Config(p)
		r := sim.Run(res, p.Type, call)
		hop := Hop{Proxy: info, Call: call, Listener: r.Listener, FilterChain: r.FilterChain, RouteConfig: r.RouteConfig,
			VirtualHost: r.VirtualHost, Route: r.Route, Cluster: r.Cluster, WeightedClusters: r.WeightedClusters,
			Outcome: r.Outcome, Status: r.Status, RedirectTo: r.RedirectTo, Sources: append([]string(nil), r.Sources...)}
		if p.Type == translate.Router {
			hop.Sources = append(hop.Sources, w.gatewaySources(p, call.Port)...)
		}
		var c *cluster.Cluster
		if r.Cluster != "" {
			c = findCluster(res, r.Cluster)
			hop.Sources = append(hop.Sources, w.clusterSources(c)...)
		}
		if (r.Outcome == sim.Blackhole || r.Outcome == sim.Passthrough || r.VirtualHost == "block_all" || r.VirtualHost == "allow_any") && p.Type == translate.Sidecar {
			hop.Sources = append(hop.Sources, policyPath(res.PolicySource)...)
		}
		hop.Sources = dedup(hop.Sources)
		if r.Outcome == sim.ToCluster && c != nil {
			if next, nextCall, fw, ok := w.gatewayHop(c, res, call, r); ok {
				hop.Next = fw
				t.Hops = append(t.Hops, hop)
				p, call = next.proxy, nextCall
				info = proxyInfo(p, next.via)
				continue
			}
		}
		t.Hops = append(t.Hops, hop)
		t.Outcome = w.outcome(res, p, call, r, c)
		return t
	}
}

func callKey(c sim.Call) string {
	keys := make([]string, 0, len(c.Headers))
	for k, v := range c.Headers {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return strings.Join([]string{string(c.Protocol), c.SNI, c.Host, c.Path, strconv.FormatUint(uint64(c.Port), 10), strings.Join(keys, ",")}, "\x00")
}

func proxyInfo(p translate.Proxy, via []string) Proxy {
	return Proxy{Node: p.String(), Type: p.Type, Namespace: p.Namespace, Labels: p.Labels, Via: via}
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	out := s[:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func findCluster(res *translate.Resources, name string) *cluster.Cluster {
	i := sort.Search(len(res.Clusters), func(i int) bool { return res.Clusters[i].Name >= name })
	if i < len(res.Clusters) && res.Clusters[i].Name == name {
		return res.Clusters[i]
	}
	for _, c := range res.Clusters { // not sorted by name (a caller's own Resources)
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ParseClusterName splits istiod's outbound|PORT|SUBSET|HOST.
func ParseClusterName(name string) (port uint32, subset, host string, ok bool) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || parts[0] != "outbound" {
		return 0, "", "", false
	}
	n, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return 0, "", "", false
	}
	return uint32(n), parts[2], parts[3], true
}

// world is what a trace reads from the inputs: Services and Gateways.
type world struct {
	in       *inputs.Inputs
	services map[string]*inputs.Service // ns/name
}

func newWorld(in *inputs.Inputs) *world {
	w := &world{in: in, services: map[string]*inputs.Service{}}
	if in == nil {
		w.in = &inputs.Inputs{}
		return w
	}
	for _, s := range in.Services {
		w.services[s.Namespace+"/"+s.Name] = s
	}
	return w
}

// serviceOfHost finds the Kubernetes Service NAME.NS.svc.DOMAIN.
func (w *world) serviceOfHost(host string) *inputs.Service {
	parts := strings.SplitN(host, ".", 4)
	if len(parts) < 3 || parts[2] != "svc" {
		return nil
	}
	return w.services[parts[1]+"/"+parts[0]]
}

// gatewaysFor lists the Gateways that select the workloads of a Service
// with this selector: the Gateway's (non-empty) selector is part of the
// Service's, so every endpoint carries it, or the other way round, so
// every workload the Gateway selects is an endpoint. Oldest first.
func (w *world) gatewaysFor(selector map[string]string) []*inputs.Gateway {
	var out []*inputs.Gateway
	for _, g := range w.in.Gateways {
		sel := g.Spec.GetSelector()
		if len(sel) == 0 || !(translate.LabelsMatch(sel, selector) || translate.LabelsMatch(selector, sel)) {
			continue
		}
		out = append(out, g)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	return out
}

type gatewayProxy struct {
	proxy translate.Proxy
	via   []string
}

// gatewayOf decides whether cluster c leads to a gateway of the inputs:
// its host is a Kubernetes Service whose selector some Gateway's selector
// agrees with. The gateway proxy is synthesised from those selectors and
// reached on the cluster's first endpoint.
func (w *world) gatewayOf(c *cluster.Cluster, res *translate.Resources) (gatewayProxy, *Forward, bool) {
	port, _, host, ok := ParseClusterName(c.Name)
	if !ok {
		return gatewayProxy{}, nil, false
	}
	svc := w.serviceOfHost(host)
	if svc == nil || len(svc.Spec.Selector) == 0 {
		return gatewayProxy{}, nil, false
	}
	gws := w.gatewaysFor(svc.Spec.Selector)
	if len(gws) == 0 {
		return gatewayProxy{}, nil, false
	}
	labels := map[string]string{}
	for k, v := range svc.Spec.Selector {
		labels[k] = v
	}
	via := []string{servicePath(svc.Namespace, svc.Name)}
	for _, g := range gws {
		// A selector wider than the Service's adds the labels the
		// Gateway needs to see on the workload.
		for k, v := range g.Spec.Selector {
			labels[k] = v
		}
		via = append(via, configPath("gateway", g.Namespace, g.Name))
	}
	eps := clusterEndpoints(c, res)
	if len(eps) == 0 {
		// Envoy has nowhere to send it: the outcome says no endpoints.
		return gatewayProxy{}, nil, false
	}
	ep := eps[0]
	fw := &Forward{Service: svc.Namespace + "/" + svc.Name, Port: port, TargetPort: targetPort(svc, port, ep.port),
		Address: ep.address, EndpointPort: ep.port}
	p := translate.Proxy{Type: translate.Router, IP: ep.address, ID: svc.Name + "." + svc.Namespace, Namespace: svc.Namespace,
		DNSDomain: svc.Namespace + ".svc.cluster.local", Labels: labels}
	if upstreamTLS(c) != nil {
		fw.TLS = "originated"
	}
	return gatewayProxy{proxy: p, via: via}, fw, true
}

// gatewayHop is gatewayOf plus the call as it arrives at the gateway: the
// endpoint's address and port, SNI and Host carried over, TLS kept unless
// this hop terminated or originated it.
func (w *world) gatewayHop(c *cluster.Cluster, res *translate.Resources, call sim.Call, r sim.Result) (gatewayProxy, sim.Call, *Forward, bool) {
	gp, fw, ok := w.gatewayOf(c, res)
	if !ok {
		return gp, call, nil, false
	}
	next := sim.Call{Protocol: call.Protocol, SNI: call.SNI, Host: call.Host, Path: call.Path, Headers: call.Headers,
		Port: fw.EndpointPort, Address: fw.Address}
	switch {
	case call.Protocol == sim.TLS && r.RouteConfig != "":
		// This proxy terminated TLS and routed the request inside.
		next.Protocol, next.SNI = sim.HTTP, ""
		if next.Host == "" {
			next.Host = call.SNI
		}
		fw.TLS = "terminated"
	case call.Protocol == sim.TLS:
		fw.TLS = "passthrough"
	}
	if up := upstreamTLS(c); up != nil {
		next.Protocol = sim.TLS
		if up.GetSni() != "" {
			next.SNI = up.GetSni()
		} else if next.SNI == "" {
			next.SNI = next.Host
		}
		fw.TLS = "originated"
	}
	return gp, next, fw, true
}

// targetPort is the Service's targetPort for port, or the endpoint port
// when it is named.
func targetPort(svc *inputs.Service, port, endpointPort uint32) uint32 {
	for _, sp := range svc.Spec.Ports {
		if uint32(sp.Port) != port {
			continue
		}
		if n := sp.TargetPort.IntValue(); n > 0 {
			return uint32(n)
		}
		if sp.TargetPort.String() == "" || sp.TargetPort.String() == "0" {
			return port
		}
	}
	return endpointPort
}

// gatewaySources are the Gateways that put a server on port for a gateway
// proxy: its chains carry only the VirtualService.
func (w *world) gatewaySources(p translate.Proxy, port uint32) []string {
	var out []string
	for _, g := range w.in.Gateways {
		if !translate.LabelsMatch(g.Spec.GetSelector(), p.Labels) {
			continue
		}
		for _, s := range g.Spec.GetServers() {
			n := s.GetPort().GetNumber()
			if n == port || w.servicePortFor(p, n) == port {
				out = append(out, configPath("gateway", g.Namespace, g.Name))
				break
			}
		}
	}
	return out
}

// servicePortFor maps a Gateway server port to the workload port through
// the Services that select the gateway proxy (as translate does).
func (w *world) servicePortFor(p translate.Proxy, n uint32) uint32 {
	for _, s := range w.in.Services {
		if s.Namespace != p.Namespace || len(s.Spec.Selector) == 0 || !translate.LabelsMatch(s.Spec.Selector, p.Labels) {
			continue
		}
		for _, sp := range s.Spec.Ports {
			if uint32(sp.Port) == n && sp.TargetPort.IntValue() > 0 {
				return uint32(sp.TargetPort.IntValue())
			}
		}
	}
	return n
}

// clusterSources are the DestinationRule and the service (ServiceEntry or
// Service) behind a cluster, from its istio metadata.
func (w *world) clusterSources(c *cluster.Cluster) []string {
	if c == nil {
		return nil
	}
	md := c.GetMetadata().GetFilterMetadata()["istio"]
	var out []string
	if v := md.GetFields()["config"].GetStringValue(); v != "" {
		out = append(out, v)
	}
	for _, s := range md.GetFields()["services"].GetListValue().GetValues() {
		f := s.GetStructValue().GetFields()
		name, ns, host := f["name"].GetStringValue(), f["namespace"].GetStringValue(), f["host"].GetStringValue()
		if name == "" {
			continue
		}
		if svc := w.services[ns+"/"+name]; svc != nil && w.serviceOfHost(host) == svc {
			out = append(out, servicePath(ns, name))
		} else {
			out = append(out, configPath("service-entry", ns, name))
		}
	}
	return out
}

// configPath is istiod's istio.config metadata form.
func configPath(kind, namespace, name string) string {
	return "/apis/networking.istio.io/v1/namespaces/" + namespace + "/" + kind + "/" + name
}

// servicePath names a Kubernetes Service in the same form.
func servicePath(namespace, name string) string {
	return "/api/v1/namespaces/" + namespace + "/service/" + name
}

// policyPath names the Sidecar that set the outbound traffic policy
// ("Sidecar ns/name"); the mesh config has no path.
func policyPath(source string) []string {
	kn, ok := strings.CutPrefix(source, "Sidecar ")
	if !ok {
		return nil
	}
	ns, name, ok := strings.Cut(kn, "/")
	if !ok {
		return nil
	}
	return []string{configPath("sidecar", ns, name)}
}

// ObjectName turns a source path into "Kind namespace/name".
func ObjectName(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	// apis/GROUP/VERSION/namespaces/NS/KIND/NAME or api/v1/namespaces/NS/KIND/NAME
	if len(parts) < 5 || parts[len(parts)-4] != "namespaces" {
		return path
	}
	ns, kind, name := parts[len(parts)-3], parts[len(parts)-2], parts[len(parts)-1]
	var b strings.Builder
	for _, w := range strings.Split(kind, "-") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String() + " " + ns + "/" + name
}

type hostPort struct {
	address string
	port    uint32
}

func (h hostPort) String() string { return h.address + ":" + strconv.FormatUint(uint64(h.port), 10) }

// clusterEndpoints are the addresses Envoy may connect to for c: its own
// load assignment, or the EDS assignment the proxy was sent.
func clusterEndpoints(c *cluster.Cluster, res *translate.Resources) []hostPort {
	cla := c.GetLoadAssignment()
	if c.GetType() == cluster.Cluster_EDS {
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.Name
		}
		cla = nil
		for _, e := range res.Endpoints {
			if e.ClusterName == name {
				cla = e
			}
		}
	}
	return lbAddresses(cla)
}

func lbAddresses(cla *endpoint.ClusterLoadAssignment) []hostPort {
	var out []hostPort
	for _, le := range cla.GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				continue
			}
			out = append(out, hostPort{sa.GetAddress(), sa.GetPortValue()})
		}
	}
	return out
}

func upstreamTLS(c *cluster.Cluster) *tlsv3.UpstreamTlsContext {
	ts := c.GetTransportSocket()
	if ts == nil {
		return nil
	}
	return unmarshalTLS(ts)
}

func unmarshalTLS(ts *core.TransportSocket) *tlsv3.UpstreamTlsContext {
	msg, err := ts.GetTypedConfig().UnmarshalNew()
	if err != nil {
		return nil
	}
	up, _ := msg.(*tlsv3.UpstreamTlsContext)
	return up
}
