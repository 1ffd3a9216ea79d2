package analyze

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/translate"
)

const meshGateway = "mesh"

// service is one registry entry: a ServiceEntry host or a Kubernetes
// Service.
type service struct {
	host      string
	namespace string
	obj       inputs.Object
	ports     []port
	addresses []string // ServiceEntry addresses, normalised; none for 0.0.0.0
	kube      *inputs.Service
	// workload is what the pods behind a Kubernetes Service are taken to
	// carry: the Service's own labels under its selector (the istio/gateway
	// chart labels both alike). Empty for Services without a selector.
	workload map[string]string
}

type port struct {
	number     uint32
	name       string
	protocol   string // upper case; "" when unset
	targetPort uint32 // 0: the port itself, or a named targetPort
	targetName string
}

func (s *service) port(n uint32) *port {
	for i := range s.ports {
		if s.ports[i].number == n {
			return &s.ports[i]
		}
	}
	return nil
}

// workloadPort is the port the pods listen on for Service port p (0 when it
// is a name only the pods know).
func (p *port) workloadPort() uint32 {
	switch {
	case p.targetPort != 0:
		return p.targetPort
	case p.targetName != "":
		return 0
	}
	return p.number
}

func (s *service) portList() string {
	var parts []string
	for _, p := range s.ports {
		wp := p.workloadPort()
		switch {
		case wp == p.number:
			parts = append(parts, strconv.Itoa(int(p.number)))
		case wp == 0:
			parts = append(parts, fmt.Sprintf("%d->%s", p.number, p.targetName))
		default:
			parts = append(parts, fmt.Sprintf("%d->%d", p.number, wp))
		}
	}
	return strings.Join(parts, ", ")
}

type analyzer struct {
	in   *inputs.Inputs
	mesh *meshconfig.MeshConfig
	// rejected objects ("Kind ns/name") are left out of the model, as the
	// translator leaves them out.
	rejected map[string]bool
	sources  map[string]inputs.Source

	services []*service
	byHost   map[string][]*service
	// wildServices are the registry entries with wildcard hosts.
	wildServices []*service
	// drByHost indexes DestinationRules by fully qualified host; drWild
	// lists those with wildcard hosts.
	drByHost map[string][]*inputs.DestinationRule
	drWild   []*inputs.DestinationRule
	// serverHostSets caches a Gateway server's hosts as seen from one
	// namespace.
	serverHostSets map[serverKey]translate.HostSet
	port80         *bool                      // see httpPort80
	gws            map[string]*inputs.Gateway // ns/name
	// gwServices are the Services in front of Istio gateway workloads.
	gwServices []*service
	vss        []*vsInfo
	msgs       []Message
}

func newAnalyzer(in *inputs.Inputs, idx *translate.Index) *analyzer {
	a := &analyzer{in: in, mesh: idx.Mesh(), rejected: map[string]bool{}, sources: map[string]inputs.Source{},
		byHost: map[string][]*service{}, gws: map[string]*inputs.Gateway{},
		drByHost: map[string][]*inputs.DestinationRule{}, serverHostSets: map[serverKey]translate.HostSet{}}
	for _, p := range idx.Problems() {
		if p.Severity == inputs.SeverityError && p.Object != "" {
			a.rejected[p.Object] = true
		}
	}
	for _, o := range in.Objects() {
		a.sources[o.KindName()] = o.GetSource()
	}
	for _, se := range in.ServiceEntries {
		if a.rejected[se.KindName()] {
			continue
		}
		var ports []port
		for _, p := range se.Spec.Ports {
			ports = append(ports, port{number: p.Number, name: p.Name, protocol: strings.ToUpper(p.Protocol), targetPort: p.TargetPort})
		}
		var addrs []string
		for _, ad := range se.Spec.Addresses {
			addrs = append(addrs, normalAddress(ad))
		}
		for _, h := range se.Spec.Hosts {
			a.services = append(a.services, &service{host: strings.ToLower(h), namespace: se.Namespace, obj: se, ports: ports, addresses: addrs})
		}
	}
	for _, svc := range in.Services {
		if a.rejected[svc.KindName()] {
			continue
		}
		s := &service{host: svc.Name + "." + svc.Namespace + ".svc.cluster.local", namespace: svc.Namespace, obj: svc, kube: svc}
		for _, p := range svc.Spec.Ports {
			kp := port{number: uint32(p.Port), name: p.Name, protocol: kubeProtocol(p.Name, p.AppProtocol, string(p.Protocol))}
			if n := p.TargetPort.IntValue(); n > 0 {
				kp.targetPort = uint32(n)
			} else if name := p.TargetPort.String(); name != "" && name != "0" {
				kp.targetName = name
			}
			s.ports = append(s.ports, kp)
		}
		sort.Slice(s.ports, func(i, j int) bool { return s.ports[i].number < s.ports[j].number })
		if len(svc.Spec.Selector) > 0 {
			s.workload = map[string]string{}
			for k, v := range svc.Labels {
				s.workload[k] = v
			}
			for k, v := range svc.Spec.Selector {
				s.workload[k] = v
			}
		}
		a.services = append(a.services, s)
	}
	for _, s := range a.services {
		a.byHost[s.host] = append(a.byHost[s.host], s)
		if strings.HasPrefix(s.host, "*") {
			a.wildServices = append(a.wildServices, s)
		}
	}
	for _, dr := range in.DestinationRules {
		if a.rejected[dr.KindName()] || dr.Spec.Host == "" {
			continue
		}
		h := translate.FQDN(dr.Spec.Host, dr.Namespace)
		if strings.HasPrefix(h, "*") {
			a.drWild = append(a.drWild, dr)
		} else {
			a.drByHost[h] = append(a.drByHost[h], dr)
		}
	}
	for _, gw := range in.Gateways {
		if !a.rejected[gw.KindName()] {
			a.gws[gw.Namespace+"/"+gw.Name] = gw
		}
	}
	for _, s := range a.services {
		if s.kube != nil && s.workload != nil && a.isGatewayService(s) {
			a.gwServices = append(a.gwServices, s)
		}
	}
	for _, vs := range in.VirtualServices {
		if !a.rejected[vs.KindName()] {
			a.vss = append(a.vss, a.newVSInfo(vs))
		}
	}
	return a
}

// isGatewayService recognises the Service of an Istio gateway: one a
// Gateway selects, or one that looks like the istio/gateway chart's (an
// "istio" label, the 15021 status port).
func (a *analyzer) isGatewayService(s *service) bool {
	for _, gw := range a.in.Gateways {
		if len(gw.Spec.Selector) > 0 && translate.LabelsMatch(gw.Spec.Selector, s.workload) {
			return true
		}
	}
	if _, ok := s.workload["istio"]; ok {
		return true
	}
	return s.port(15021) != nil
}

func normalAddress(a string) string {
	if ip, err := netip.ParseAddr(a); err == nil {
		return ip.String()
	}
	if p, err := netip.ParsePrefix(a); err == nil {
		if p.Bits() == p.Addr().BitLen() {
			return p.Addr().String()
		}
		return p.Masked().String()
	}
	return a
}

// kubeProtocol is istiod's protocol of a Service port: appProtocol, else
// the port name's prefix.
func kubeProtocol(name string, appProtocol *string, l4 string) string {
	if strings.EqualFold(l4, "UDP") {
		return "UDP"
	}
	if appProtocol != nil && *appProtocol != "" {
		return strings.ToUpper(*appProtocol)
	}
	prefix, _, _ := strings.Cut(name, "-")
	return strings.ToUpper(prefix)
}

func isTLSProtocol(p string) bool { return p == "TLS" || p == "HTTPS" }

func isHTTPProtocol(p string) bool {
	switch p {
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY":
		return true
	}
	return false
}

// sniffed reports whether istiod detects the protocol of a port with this
// declared protocol (unset or unknown), so http rules may apply.
func sniffed(p string) bool {
	switch p {
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY", "HTTPS", "TLS", "TCP", "UDP", "MONGO", "REDIS", "MYSQL":
		return false
	}
	return true
}

// registered reports whether a host has a registry entry of its own (route
// destinations name clusters by exact host).
func (a *analyzer) registered(host string) bool { return len(a.byHost[host]) > 0 }

// covering lists the registry entries a VirtualService host reaches:
// sidecars build chains and virtual hosts for those.
func (a *analyzer) covering(host string) []*service {
	if strings.HasPrefix(host, "*") {
		var out []*service
		for _, s := range a.services {
			if translate.HostMatches(host, s.host) {
				out = append(out, s)
			}
		}
		return out
	}
	out := a.byHost[host]
	for _, s := range a.wildServices {
		if translate.HostMatches(host, s.host) {
			out = append(out[:len(out):len(out)], s)
		}
	}
	return out
}

// wildcardFor lists ServiceEntry wildcard hosts that match host.
func (a *analyzer) wildcardFor(host string) []*service {
	var out []*service
	for _, s := range a.wildServices {
		if translate.HostSubsetOf(host, s.host) {
			out = append(out, s)
		}
	}
	return out
}

type serverKey struct {
	server *networking.Server
	ns     string
}

func (a *analyzer) serverHostSet(gw *inputs.Gateway, s *networking.Server, ns string) translate.HostSet {
	k := serverKey{s, ns}
	if hs, ok := a.serverHostSets[k]; ok {
		return hs
	}
	hs := translate.NewHostSet(translate.ServerHosts(s.Hosts, gw.Namespace, ns))
	a.serverHostSets[k] = hs
	return hs
}

// gatewayWorkloads are the gateway Services whose workload a Gateway
// selects.
func (a *analyzer) gatewayWorkloads(gw *inputs.Gateway) []*service {
	var out []*service
	for _, s := range a.gwServices {
		if translate.LabelsMatch(gw.Spec.Selector, s.workload) {
			out = append(out, s)
		}
	}
	return out
}

// gatewaysOn lists the Gateways that select a gateway Service's workload.
func (a *analyzer) gatewaysOn(s *service) []*inputs.Gateway {
	var out []*inputs.Gateway
	for _, gw := range a.in.Gateways {
		if !a.rejected[gw.KindName()] && len(gw.Spec.Selector) > 0 && translate.LabelsMatch(gw.Spec.Selector, s.workload) {
			out = append(out, gw)
		}
	}
	return out
}

// resolvePort is istiod's mapping of a Gateway server port to the port the
// workload listens on: a Service port with that number means its
// targetPort, anything else is taken as it is.
func resolvePort(n uint32, svcs []*service) uint32 {
	for _, s := range svcs {
		if p := s.port(n); p != nil && p.workloadPort() != 0 {
			return p.workloadPort()
		}
	}
	return n
}

// policy is the outbound traffic policy in effect for a namespace's
// workloads and what set it.
type policy struct {
	registryOnly bool
	source       string
}

func (p policy) String() string {
	mode := "ALLOW_ANY"
	if p.registryOnly {
		mode = "REGISTRY_ONLY"
	}
	return mode + " (" + p.source + ")"
}

// policyFor follows istiod's choice of Sidecar for a workload without a
// Sidecar of its own: the namespace's default Sidecar, else the root
// namespace's, else the mesh config.
func (a *analyzer) policyFor(ns string) policy {
	var nsDefault, rootDefault *inputs.Sidecar
	for _, s := range a.in.Sidecars {
		if a.rejected[s.KindName()] || (s.Spec.WorkloadSelector != nil && len(s.Spec.WorkloadSelector.Labels) > 0) {
			continue
		}
		switch {
		case s.Namespace == ns && (nsDefault == nil || s.Name < nsDefault.Name):
			nsDefault = s
		case s.Namespace == a.mesh.GetRootNamespace() && (rootDefault == nil || s.Name < rootDefault.Name):
			rootDefault = s
		}
	}
	sc := nsDefault
	if sc == nil {
		sc = rootDefault
	}
	if sc != nil && sc.Spec.OutboundTrafficPolicy != nil {
		return policy{registryOnly: sc.Spec.OutboundTrafficPolicy.Mode == networking.OutboundTrafficPolicy_REGISTRY_ONLY, source: sc.KindName()}
	}
	src := "mesh config"
	if a.in.MeshSource == (inputs.Source{}) {
		src = "Istio's default: no mesh config in the inputs"
	}
	return policy{registryOnly: a.mesh.GetOutboundTrafficPolicy().GetMode() == meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY, source: src}
}

// gatewayKey resolves a VirtualService's gateway reference to "ns/name".
func gatewayKey(ref, vsNamespace string) string {
	if ref == meshGateway {
		return meshGateway
	}
	ns, name := vsNamespace, ref
	if i := strings.IndexByte(ref, '/'); i >= 0 {
		ns, name = ref[:i], ref[i+1:]
		if ns == "." {
			ns = vsNamespace
		}
	}
	if parts := strings.Split(name, "."); len(parts) > 2 && strings.HasSuffix(name, ".svc.cluster.local") {
		ns, name = parts[1], parts[0]
	}
	return ns + "/" + name
}

func isPassthrough(s *networking.Server) bool {
	return s.Tls != nil && s.Tls.Mode == networking.ServerTLSSettings_PASSTHROUGH && !isHTTPProtocol(strings.ToUpper(s.GetPort().GetProtocol()))
}

func clusterName(port uint32, subset, host string) string {
	p := "PORT"
	if port != 0 {
		p = strconv.Itoa(int(port))
	}
	return "outbound|" + p + "|" + subset + "|" + host
}

func quoteList(xs []string) string { return "[" + strings.Join(xs, ", ") + "]" }
