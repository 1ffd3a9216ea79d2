package translate

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

const (
	unspecifiedIP = "0.0.0.0"
	meshGateway   = "mesh"
)

type resolution int

const (
	resolveEDS         resolution = iota // STATIC ServiceEntry, Kubernetes Service: EDS
	resolveDNS                           // STRICT_DNS
	resolveDNSRR                         // LOGICAL_DNS
	resolvePassthrough                   // NONE, headless: ORIGINAL_DST
)

// service is one entry of the registry: a ServiceEntry host (per address)
// or a Kubernetes Service, as istiod's model.Service.
type service struct {
	hostname  string
	namespace string
	address   string // 0.0.0.0, an IP, or a CIDR
	ports     []*svcPort
	res       resolution
	external  bool
	kube      bool
	exportTo  []string
	endpoints []*svcEndpoint
	// kubeEndpoints: endpoints come from Endpoints/EndpointSlices by port name.
	selector map[string]string
	source   inputs.Object
	created  time.Time
	// seName is the ServiceEntry or Service name, for cluster metadata.
	objName string
	// plain holds each port's cluster for proxies no DestinationRule
	// applies to, built once by the Index.
	plain map[uint32]plainCluster
	kind  string // "Kind namespace/name" of the source
	// endpointsHash covers the Endpoints and EndpointSlices of a Kubernetes
	// Service.
	endpointsHash uint64
}

type svcPort struct {
	number     uint32
	name       string
	protocol   protocol
	targetPort uint32
}

type svcEndpoint struct {
	address  string
	ports    map[string]uint32 // by port name; empty for "use the service port"
	labels   map[string]string
	weight   uint32
	locality string
}

func (s *service) port(n uint32) *svcPort {
	for _, p := range s.ports {
		if p.number == n {
			return p
		}
	}
	return nil
}

// endpointPort is the port an endpoint listens on for service port p.
func (s *service) endpointPort(ep *svcEndpoint, p *svcPort) uint32 {
	if n, ok := ep.ports[p.name]; ok && n != 0 {
		return n
	}
	if p.targetPort != 0 {
		return p.targetPort
	}
	return p.number
}

type vsEntry struct {
	obj      *inputs.VirtualService
	spec     *networking.VirtualService
	hosts    []string        // FQDN
	gateways map[string]bool // "mesh" or "ns/name"
	exportTo []string
	config   string // istio.config metadata value
	// meta and kind are built once and shared by every chain and route
	// the VirtualService makes.
	meta *core.Metadata
	kind string
	// gwRef resolves every gateway name the VirtualService uses (spec and
	// matches) to "ns/name" or "mesh", once.
	gwRef map[string]string
	// tls and tcp are the spec's rules, resolved.
	tls, tcp []l4Rule
}

// l4Rule is a VirtualService tls or tcp rule resolved once for every proxy:
// hosts made fully qualified, gateways resolved, match keys precomputed.
type l4Rule struct {
	index   int
	matches []l4Match
	dests   []destRef
}

type l4Match struct {
	sni      []string
	subnets  []string
	gateways []string // resolved "ns/name" or "mesh"
	labels   map[string]string
	ns       string
	port     uint32
	key      string // SNI and subnets, sorted: istiod's duplicate check
}

// destRef is a route destination with its host fully qualified.
type destRef struct {
	host   string
	port   uint32 // 0: not given
	subset string
	weight int32
}

func (x *Index) destRefOf(d *networking.Destination, weight int32, ns string) destRef {
	r := destRef{host: fqdn(d.GetHost(), ns, x.domainSuffix), subset: d.GetSubset(), weight: weight}
	if d.GetPort() != nil {
		r.port = d.GetPort().GetNumber()
	}
	return r
}

func (x *Index) l4Rules(e *vsEntry, tls []*networking.TLSRoute, tcp []*networking.TCPRoute) []l4Rule {
	var out []l4Rule
	dests := func(routes []*networking.RouteDestination) []destRef {
		ds := make([]destRef, 0, len(routes))
		for _, r := range routes {
			ds = append(ds, x.destRefOf(r.Destination, r.Weight, e.obj.Namespace))
		}
		return ds
	}
	gws := func(refs []string) []string {
		out := make([]string, 0, len(refs))
		for _, g := range refs {
			out = append(out, e.gwRef[g])
		}
		return out
	}
	for i, r := range tls {
		rule := l4Rule{index: i, dests: dests(r.Route)}
		for _, m := range r.Match {
			rule.matches = append(rule.matches, l4Match{sni: m.SniHosts, subnets: m.DestinationSubnets, gateways: gws(m.Gateways),
				labels: m.SourceLabels, ns: m.SourceNamespace, port: m.Port,
				key: joinSorted(m.SniHosts) + "|" + joinSorted(m.DestinationSubnets)})
		}
		out = append(out, rule)
	}
	for i, r := range tcp {
		rule := l4Rule{index: i, dests: dests(r.Route)}
		for _, m := range r.Match {
			rule.matches = append(rule.matches, l4Match{subnets: m.DestinationSubnets, gateways: gws(m.Gateways),
				labels: m.SourceLabels, ns: m.SourceNamespace, port: m.Port, key: "|" + joinSorted(m.DestinationSubnets)})
		}
		out = append(out, rule)
	}
	return out
}

// gatewayOf resolves a gateway reference made inside this VirtualService.
func (vs *vsEntry) gatewayOf(x *Index, ref string) string {
	if k, ok := vs.gwRef[ref]; ok {
		return k
	}
	return x.gatewayKey(ref, vs.obj.Namespace)
}

type drEntry struct {
	obj      *inputs.DestinationRule
	spec     *networking.DestinationRule
	host     string
	exportTo []string
	config   string
}

type gwEntry struct {
	obj  *inputs.Gateway
	spec *networking.Gateway
	key  string // ns/name
}

// Index is the registry built once from inputs and shared by every proxy's
// translation.
type Index struct {
	in   *inputs.Inputs
	mesh *meshconfig.MeshConfig

	services []*service
	// byHost lists every service with a hostname, oldest first.
	byHost map[string][]*service

	virtualServices  []*vsEntry
	destinationRules []*drEntry
	drByHost         map[string][]*drEntry
	drWildcard       []*drEntry
	gateways         []*gwEntry
	gatewayByKey     map[string]*gwEntry
	sidecars         []*inputs.Sidecar

	domainSuffix string
	problems     []inputs.Problem

	// tcpProxies are TCP proxy filter configs, marshalled once and shared
	// by every translation of this index (a sidecar's thousands of SNI
	// chains are mostly the same in every proxy class).
	tcpMu      sync.Mutex
	tcpProxies map[tcpProxyKey]*anypb.Any

	// Content hashes for Fingerprint.
	meshHash uint64
	hashMu   sync.Mutex
	hashes   map[inputs.Object]uint64
}

func (x *Index) warn(obj inputs.Object, field, format string, args ...any) {
	x.problems = append(x.problems, inputs.ProblemFor(inputs.SeverityWarning, obj, field, format, args...))
}

func (x *Index) fail(obj inputs.Object, field, format string, args ...any) {
	x.problems = append(x.problems, inputs.ProblemFor(inputs.SeverityError, obj, field, format, args...))
}

// Problems are the input-wide problems found while indexing (load problems
// included).
func (x *Index) Problems() []inputs.Problem {
	out := append([]inputs.Problem(nil), x.in.Problems...)
	return append(out, x.problems...)
}

// Inputs returns the inputs the index was built from.
func (x *Index) Inputs() *inputs.Inputs { return x.in }

// Mesh returns the mesh config in effect.
func (x *Index) Mesh() *meshconfig.MeshConfig { return x.mesh }

// configPath is istiod's source-object metadata value.
func configPath(kind, namespace, name string) string {
	return "/apis/networking.istio.io/v1/namespaces/" + namespace + "/" + kind + "/" + name
}

// NewIndex resolves the inputs into a registry. It never fails: invalid
// objects are reported in Problems and left out.
func NewIndex(in *inputs.Inputs) *Index {
	mesh := in.Mesh
	if mesh == nil {
		mesh = inputs.DefaultMesh()
	}
	x := &Index{
		in: in, mesh: mesh,
		byHost: map[string][]*service{}, drByHost: map[string][]*drEntry{},
		gatewayByKey: map[string]*gwEntry{},
		domainSuffix: "cluster.local",
		hashes:       map[inputs.Object]uint64{},
	}
	if b, err := (proto.MarshalOptions{Deterministic: true}).Marshal(mesh); err == nil {
		x.meshHash = fnv64(b)
	}
	for _, se := range in.ServiceEntries {
		x.addServiceEntry(se)
	}
	kubeEndpoints, epSources := x.indexKubeEndpoints()
	for _, svc := range in.Services {
		x.addKubeService(svc, kubeEndpoints)
	}
	for _, s := range x.services {
		if s.kube {
			for _, src := range epSources[kubeEndpointKey{s.namespace, strings.TrimSuffix(s.hostname, "."+s.namespace+".svc."+x.domainSuffix)}] {
				s.endpointsHash = s.endpointsHash*31 + x.hashOf(src)
			}
		}
	}
	for _, s := range x.services {
		s.kind = s.source.KindName()
	}
	sort.SliceStable(x.services, func(i, j int) bool {
		a, b := x.services[i], x.services[j]
		if a.hostname != b.hostname {
			return a.hostname < b.hostname
		}
		return olderThan(a, b)
	})
	for _, s := range x.services {
		x.byHost[s.hostname] = append(x.byHost[s.hostname], s)
	}
	x.reportHostConflicts()

	for _, gw := range in.Gateways {
		x.addGateway(gw)
	}
	for _, vs := range in.VirtualServices {
		x.addVirtualService(vs)
	}
	// Oldest first, as istiod orders configs: every per-proxy list filtered
	// from this one keeps the order without sorting again.
	sort.SliceStable(x.virtualServices, func(i, j int) bool { return inputs.Older(x.virtualServices[i].obj, x.virtualServices[j].obj) })
	for _, dr := range in.DestinationRules {
		x.addDestinationRule(dr)
	}
	x.sidecars = append(x.sidecars, in.Sidecars...)
	sort.SliceStable(x.sidecars, func(i, j int) bool { return inputs.Older(x.sidecars[i], x.sidecars[j]) })
	x.checkReferences()
	x.precomputeClusters()
	return x
}

// olderThan orders services as istiod's SortServicesByCreationTime does:
// creation time, then name, then namespace. A Kubernetes Service goes first
// so a ServiceEntry cannot squat its hostname.
func olderThan(a, b *service) bool {
	if a.kube != b.kube {
		return a.kube
	}
	if !a.created.Equal(b.created) {
		return a.created.Before(b.created)
	}
	if a.objName != b.objName {
		return a.objName < b.objName
	}
	return a.namespace < b.namespace
}

func (x *Index) addServiceEntry(se *inputs.ServiceEntry) {
	spec := &se.Spec
	if len(spec.Hosts) == 0 {
		x.fail(se, "spec.hosts", "required field is missing: a ServiceEntry needs at least one host")
		return
	}
	for i, h := range spec.Hosts {
		if h == "" || h == "*" {
			x.fail(se, fmt.Sprintf("spec.hosts[%d]", i), "host %q is not allowed (use a name or a wildcard such as *.example.com)", h)
			return
		}
	}
	if len(spec.Ports) == 0 {
		x.fail(se, "spec.ports", "required field is missing: a ServiceEntry needs at least one port")
		return
	}
	var ports []*svcPort
	seen := map[uint32]bool{}
	for i, p := range spec.Ports {
		field := fmt.Sprintf("spec.ports[%d]", i)
		if p.Number == 0 || p.Number > 65535 {
			x.fail(se, field+".number", "port number %d is out of range 1-65535", p.Number)
			return
		}
		if seen[p.Number] {
			x.fail(se, field+".number", "port %d is listed twice", p.Number)
			return
		}
		seen[p.Number] = true
		if p.Protocol == "" {
			x.warn(se, field+".protocol", "no protocol: treated as unknown (sniffed), as istiod does")
		}
		name := p.Name
		if name == "" {
			name = fmt.Sprintf("port-%d", p.Number)
		}
		ports = append(ports, &svcPort{number: p.Number, name: name, protocol: parseProtocol(p.Protocol), targetPort: p.TargetPort})
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].number < ports[j].number })

	res := resolvePassthrough
	switch spec.Resolution {
	case networking.ServiceEntry_STATIC:
		res = resolveEDS
	case networking.ServiceEntry_DNS:
		res = resolveDNS
	case networking.ServiceEntry_DNS_ROUND_ROBIN:
		res = resolveDNSRR
	case networking.ServiceEntry_DYNAMIC_DNS:
		x.fail(se, "spec.resolution", "DYNAMIC_DNS needs istio-proxy's dynamic forward proxy integration and is not supported")
		return
	}
	var eps []*svcEndpoint
	for i, we := range spec.Endpoints {
		if we.Address == "" {
			x.fail(se, fmt.Sprintf("spec.endpoints[%d].address", i), "required field is missing")
			return
		}
		if strings.HasPrefix(we.Address, "unix://") {
			x.fail(se, fmt.Sprintf("spec.endpoints[%d].address", i), "unix domain socket endpoints are not supported")
			return
		}
		if res == resolveEDS {
			if _, err := netip.ParseAddr(we.Address); err != nil {
				x.fail(se, fmt.Sprintf("spec.endpoints[%d].address", i), "resolution STATIC needs IP addresses, got %q", we.Address)
				return
			}
		}
		w := we.Weight
		if w == 0 {
			w = 1
		}
		eps = append(eps, &svcEndpoint{address: we.Address, ports: we.Ports, labels: we.Labels, weight: w, locality: we.Locality})
	}
	if res == resolveEDS && len(eps) == 0 && spec.WorkloadSelector == nil {
		x.warn(se, "spec.endpoints", "resolution STATIC without endpoints: the cluster has no endpoints")
	}
	if res == resolveDNS || res == resolveDNSRR {
		for i, h := range spec.Hosts {
			if isWildcard(h) && len(eps) == 0 {
				x.fail(se, fmt.Sprintf("spec.hosts[%d]", i), "wildcard host %q with resolution %s needs endpoints: there is no name to resolve", h, spec.Resolution)
				return
			}
		}
	}
	var addrs []string
	for i, a := range spec.Addresses {
		if ip, err := netip.ParseAddr(a); err == nil {
			addrs = append(addrs, ip.String())
		} else if pfx, err := netip.ParsePrefix(a); err == nil {
			if pfx.Bits() == pfx.Addr().BitLen() {
				addrs = append(addrs, pfx.Addr().String())
			} else {
				addrs = append(addrs, pfx.Masked().String())
			}
		} else {
			x.fail(se, fmt.Sprintf("spec.addresses[%d]", i), "%q is neither an IP address nor a CIDR", a)
			return
		}
	}
	if len(addrs) == 0 {
		addrs = []string{unspecifiedIP}
	}
	if spec.WorkloadSelector != nil {
		x.warn(se, "spec.workloadSelector", "workloadSelector selects WorkloadEntries and pods, which chokepoint does not read: the service has no endpoints")
	}
	for _, h := range spec.Hosts {
		for _, a := range addrs {
			x.services = append(x.services, &service{
				hostname: strings.ToLower(h), namespace: se.Namespace, address: a, ports: ports,
				res: res, external: spec.Location == networking.ServiceEntry_MESH_EXTERNAL,
				exportTo: spec.ExportTo, endpoints: eps, source: se,
				created: se.CreationTimestamp.Time, objName: se.Name,
			})
		}
	}
}

type kubeEndpointKey struct{ ns, name string }

func (x *Index) indexKubeEndpoints() (map[kubeEndpointKey][]*svcEndpoint, map[kubeEndpointKey][]inputs.Object) {
	out := map[kubeEndpointKey][]*svcEndpoint{}
	sources := map[kubeEndpointKey][]inputs.Object{}
	for _, e := range x.in.Endpoints {
		k := kubeEndpointKey{e.Namespace, e.Name}
		sources[k] = append(sources[k], e)
		for _, ss := range e.Subsets {
			ports := map[string]uint32{}
			for _, p := range ss.Ports {
				ports[p.Name] = uint32(p.Port)
			}
			for _, a := range ss.Addresses {
				out[k] = append(out[k], &svcEndpoint{address: a.IP, ports: ports, weight: 1})
			}
		}
	}
	for _, es := range x.in.EndpointSlices {
		name := es.Labels["kubernetes.io/service-name"]
		if name == "" {
			x.warn(es, "metadata.labels", "no kubernetes.io/service-name label: the slice belongs to no Service")
			continue
		}
		k := kubeEndpointKey{es.Namespace, name}
		sources[k] = append(sources[k], es)
		ports := map[string]uint32{}
		for _, p := range es.Ports {
			if p.Port == nil {
				continue
			}
			n := ""
			if p.Name != nil {
				n = *p.Name
			}
			ports[n] = uint32(*p.Port)
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				out[k] = append(out[k], &svcEndpoint{address: a, ports: ports, weight: 1})
			}
		}
	}
	return out, sources
}

func (x *Index) addKubeService(svc *inputs.Service, eps map[kubeEndpointKey][]*svcEndpoint) {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		x.warn(svc, "spec.type", "ExternalName services are not translated")
		return
	}
	var ports []*svcPort
	for i, p := range svc.Spec.Ports {
		if p.Port <= 0 {
			x.fail(svc, fmt.Sprintf("spec.ports[%d].port", i), "port number %d is out of range 1-65535", p.Port)
			return
		}
		tp := uint32(p.Port)
		if p.TargetPort.IntValue() > 0 {
			tp = uint32(p.TargetPort.IntValue())
		} else if p.TargetPort.String() != "" && p.TargetPort.String() != "0" {
			// A named targetPort resolves per pod; without pods, use the
			// endpoint's port of the same name (EDS) and the port itself for
			// gateway listeners.
			tp = uint32(p.Port)
		}
		ports = append(ports, &svcPort{number: uint32(p.Port), name: p.Name, protocol: kubePortProtocol(p.Name, p.AppProtocol, string(p.Protocol)), targetPort: tp})
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].number < ports[j].number })
	addr := unspecifiedIP
	res := resolveEDS
	switch ip := svc.Spec.ClusterIP; {
	case ip == corev1.ClusterIPNone:
		res = resolvePassthrough
	case ip != "":
		if _, err := netip.ParseAddr(ip); err != nil {
			x.fail(svc, "spec.clusterIP", "%q is not an IP address", ip)
			return
		}
		addr = ip
	}
	var exportTo []string
	if v := svc.Annotations["networking.istio.io/exportTo"]; v != "" {
		for _, e := range strings.Split(v, ",") {
			exportTo = append(exportTo, strings.TrimSpace(e))
		}
	}
	x.services = append(x.services, &service{
		hostname: svc.Name + "." + svc.Namespace + ".svc." + x.domainSuffix, namespace: svc.Namespace,
		address: addr, ports: ports, res: res, kube: true, exportTo: exportTo,
		endpoints: eps[kubeEndpointKey{svc.Namespace, svc.Name}], selector: svc.Spec.Selector,
		source: svc, created: svc.CreationTimestamp.Time, objName: svc.Name,
	})
}

// reportHostConflicts warns where two objects define the same host in one
// namespace: istiod keeps the oldest (a Kubernetes Service over any
// ServiceEntry) and ignores the other, silently.
func (x *Index) reportHostConflicts() {
	for host, svcs := range x.byHost {
		first := map[string]*service{}
		for _, s := range svcs {
			f, ok := first[s.namespace]
			if !ok {
				first[s.namespace] = s
				continue
			}
			if f.source == s.source {
				continue // same ServiceEntry, another address
			}
			for _, p := range s.ports {
				if f.port(p.number) != nil {
					x.warn(s.source, "spec.hosts", "host %s port %d is also defined by %s (%s); istiod keeps the older one, %s, and ignores this one",
						host, p.number, f.source.KindName(), f.source.GetSource(), f.source.KindName())
					break
				}
			}
		}
	}
}

func (x *Index) addGateway(gw *inputs.Gateway) {
	for i, s := range gw.Spec.Servers {
		field := fmt.Sprintf("spec.servers[%d]", i)
		if s.Port == nil {
			x.fail(gw, field+".port", "required field is missing")
			return
		}
		if s.Port.Number == 0 || s.Port.Number > 65535 {
			x.fail(gw, field+".port.number", "port number %d is out of range 1-65535", s.Port.Number)
			return
		}
		if len(s.Hosts) == 0 {
			x.fail(gw, field+".hosts", "required field is missing: a server needs at least one host")
			return
		}
		if s.Port.Protocol == "" {
			x.fail(gw, field+".port.protocol", "required field is missing")
			return
		}
		if s.Tls != nil && (s.Tls.Mode == networking.ServerTLSSettings_SIMPLE || s.Tls.Mode == networking.ServerTLSSettings_MUTUAL) {
			if s.Tls.CredentialName == "" && len(s.Tls.CredentialNames) == 0 && (s.Tls.ServerCertificate == "" || s.Tls.PrivateKey == "") {
				x.fail(gw, field+".tls", "mode %s needs credentialName or serverCertificate and privateKey", s.Tls.Mode)
				return
			}
			if s.Tls.Mode == networking.ServerTLSSettings_MUTUAL && s.Tls.CredentialName == "" && s.Tls.CaCertificates == "" {
				x.fail(gw, field+".tls.caCertificates", "mode MUTUAL needs caCertificates (or credentialName)")
				return
			}
		}
	}
	e := &gwEntry{obj: gw, spec: &gw.Spec, key: gw.Namespace + "/" + gw.Name}
	x.gateways = append(x.gateways, e)
	x.gatewayByKey[e.key] = e
}

func (x *Index) addVirtualService(vs *inputs.VirtualService) {
	spec := &vs.Spec
	if len(spec.Hosts) == 0 {
		x.fail(vs, "spec.hosts", "required field is missing: a VirtualService needs at least one host")
		return
	}
	e := &vsEntry{obj: vs, spec: spec, gateways: map[string]bool{}, exportTo: spec.ExportTo,
		config: configPath("virtual-service", vs.Namespace, vs.Name), kind: vs.KindName()}
	e.meta = configMetadata(e.config)
	for _, h := range spec.Hosts {
		e.hosts = append(e.hosts, fqdn(h, vs.Namespace, x.domainSuffix))
	}
	if len(spec.Gateways) == 0 {
		e.gateways[meshGateway] = true
	}
	e.gwRef = map[string]string{}
	ref := func(g string) {
		if _, ok := e.gwRef[g]; !ok {
			e.gwRef[g] = x.gatewayKey(g, vs.Namespace)
		}
	}
	for _, g := range spec.Gateways {
		ref(g)
		e.gateways[e.gwRef[g]] = true
	}
	for _, r := range spec.Tls {
		for _, m := range r.Match {
			for _, g := range m.Gateways {
				ref(g)
			}
		}
	}
	for _, r := range spec.Tcp {
		for _, m := range r.Match {
			for _, g := range m.Gateways {
				ref(g)
			}
		}
	}
	for _, r := range spec.Http {
		for _, m := range r.Match {
			for _, g := range m.Gateways {
				ref(g)
			}
		}
	}
	e.tls = x.l4Rules(e, spec.Tls, nil)
	e.tcp = x.l4Rules(e, nil, spec.Tcp)
	for i, r := range spec.Tls {
		if len(r.Match) == 0 {
			x.fail(vs, fmt.Sprintf("spec.tls[%d].match", i), "required field is missing: a tls route needs a match with sniHosts")
			return
		}
		for j, m := range r.Match {
			if len(m.SniHosts) == 0 {
				x.fail(vs, fmt.Sprintf("spec.tls[%d].match[%d].sniHosts", i, j), "required field is missing")
				return
			}
		}
		if err := x.checkRoutes(vs, fmt.Sprintf("spec.tls[%d].route", i), r.Route); err {
			return
		}
	}
	for i, r := range spec.Tcp {
		if err := x.checkRoutes(vs, fmt.Sprintf("spec.tcp[%d].route", i), r.Route); err {
			return
		}
	}
	for i, r := range spec.Http {
		field := fmt.Sprintf("spec.http[%d]", i)
		if len(r.Route) == 0 && r.Redirect == nil && r.DirectResponse == nil {
			x.fail(vs, field, "an http route needs route, redirect or directResponse")
			return
		}
		for j, d := range r.Route {
			if d.Destination == nil || d.Destination.Host == "" {
				x.fail(vs, fmt.Sprintf("%s.route[%d].destination.host", field, j), "required field is missing")
				return
			}
		}
		if r.Fault != nil {
			x.warn(vs, field+".fault", "fault injection is not translated yet: the rule routes without it")
		}
		if r.Mirror != nil || len(r.Mirrors) > 0 {
			x.warn(vs, field+".mirror", "traffic mirroring is not translated yet: the rule routes without it")
		}
		if r.CorsPolicy != nil {
			x.warn(vs, field+".corsPolicy", "CORS policies are not translated yet: the rule routes without it")
		}
	}
	x.virtualServices = append(x.virtualServices, e)
}

func (x *Index) checkRoutes(vs *inputs.VirtualService, field string, routes []*networking.RouteDestination) bool {
	if len(routes) == 0 {
		x.fail(vs, field, "required field is missing")
		return true
	}
	for j, d := range routes {
		if d.Destination == nil || d.Destination.Host == "" {
			x.fail(vs, fmt.Sprintf("%s[%d].destination.host", field, j), "required field is missing")
			return true
		}
	}
	return false
}

// gatewayKey resolves a VirtualService's gateway reference to "ns/name".
func (x *Index) gatewayKey(ref, vsNamespace string) string {
	if ref == meshGateway {
		return meshGateway
	}
	ns, name := splitNamespacedHost(ref, vsNamespace)
	// "name.namespace.svc.cluster.local" is a legacy spelling of ns/name.
	if parts := strings.Split(name, "."); len(parts) > 2 && strings.HasSuffix(name, ".svc."+x.domainSuffix) {
		ns, name = parts[1], parts[0]
	}
	return ns + "/" + name
}

func (x *Index) addDestinationRule(dr *inputs.DestinationRule) {
	if dr.Spec.Host == "" {
		x.fail(dr, "spec.host", "required field is missing")
		return
	}
	names := map[string]bool{}
	for i, s := range dr.Spec.Subsets {
		if s.Name == "" {
			x.fail(dr, fmt.Sprintf("spec.subsets[%d].name", i), "required field is missing")
			return
		}
		if names[s.Name] {
			x.fail(dr, fmt.Sprintf("spec.subsets[%d].name", i), "subset %q is defined twice", s.Name)
			return
		}
		names[s.Name] = true
	}
	e := &drEntry{obj: dr, spec: &dr.Spec, host: fqdn(dr.Spec.Host, dr.Namespace, x.domainSuffix), exportTo: dr.Spec.ExportTo,
		config: configPath("destination-rule", dr.Namespace, dr.Name)}
	x.destinationRules = append(x.destinationRules, e)
	if isWildcard(e.host) {
		x.drWildcard = append(x.drWildcard, e)
	} else {
		x.drByHost[e.host] = append(x.drByHost[e.host], e)
	}
}

// checkReferences reports references to nothing: VirtualService gateways
// that do not exist, destinations that no service defines, subsets no
// DestinationRule defines.
func (x *Index) checkReferences() {
	for _, vs := range x.virtualServices {
		for i, g := range vs.spec.Gateways {
			k := x.gatewayKey(g, vs.obj.Namespace)
			if k != meshGateway && x.gatewayByKey[k] == nil {
				x.warn(vs.obj, fmt.Sprintf("spec.gateways[%d]", i), "gateway %q not found: the routes for it are not used by any gateway", k)
			}
		}
		check := func(field string, d *networking.Destination) {
			h := fqdn(d.Host, vs.obj.Namespace, x.domainSuffix)
			svcs := x.byHost[h]
			if len(svcs) == 0 {
				x.warn(vs.obj, field+".host", "destination host %s is not in the registry (no ServiceEntry or Service): its cluster does not exist and traffic to it fails", h)
				return
			}
			if d.Port != nil && d.Port.Number != 0 && svcs[0].port(d.Port.Number) == nil {
				x.warn(vs.obj, field+".port.number", "destination %s has no port %d", h, d.Port.Number)
			}
			if d.Subset != "" && !x.subsetDefined(h, d.Subset) {
				x.warn(vs.obj, field+".subset", "subset %q of %s is not defined by any DestinationRule: its cluster does not exist", d.Subset, h)
			}
		}
		for i, r := range vs.spec.Tls {
			for j, d := range r.Route {
				check(fmt.Sprintf("spec.tls[%d].route[%d].destination", i, j), d.Destination)
			}
		}
		for i, r := range vs.spec.Tcp {
			for j, d := range r.Route {
				check(fmt.Sprintf("spec.tcp[%d].route[%d].destination", i, j), d.Destination)
			}
		}
		for i, r := range vs.spec.Http {
			for j, d := range r.Route {
				check(fmt.Sprintf("spec.http[%d].route[%d].destination", i, j), d.Destination)
			}
		}
	}
}

func (x *Index) subsetDefined(host, subset string) bool {
	for _, dr := range x.drByHost[host] {
		for _, s := range dr.spec.Subsets {
			if s.Name == subset {
				return true
			}
		}
	}
	for _, dr := range x.drWildcard {
		if hostSubsetOf(host, dr.host) {
			for _, s := range dr.spec.Subsets {
				if s.Name == subset {
					return true
				}
			}
		}
	}
	return false
}

// visibleTo implements exportTo: "*" (everyone), "." (own namespace), "~"
// (nobody) or namespace names. An empty list uses the mesh default.
func visibleTo(exportTo []string, defaults []string, objNamespace, proxyNamespace string) bool {
	if len(exportTo) == 0 {
		exportTo = defaults
	}
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		switch e {
		case "*":
			return true
		case "~":
		case ".":
			if objNamespace == proxyNamespace {
				return true
			}
		default:
			if e == proxyNamespace {
				return true
			}
		}
	}
	return false
}

func fnv64(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}
