package translate

import (
	"math"
	"sort"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpopts "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// systemCABundle is where stock Envoy images keep the system roots; used for
// TLS origination without caCertificates, where istio-proxy would use its
// agent's "file-root:system" SDS secret.
const systemCABundle = "/etc/ssl/certs/ca-certificates.crt"

// buildClusters renders one cluster per visible service port, one per
// DestinationRule subset, and the catch-all clusters.
func (t *translation) buildClusters() {
	done := map[string]bool{}
	for _, svc := range t.sc.services {
		if done[svc.hostname] {
			continue // another address of the same ServiceEntry host
		}
		done[svc.hostname] = true
		dr := t.sc.destinationRule(svc.hostname)
		for _, p := range svc.ports {
			if p.protocol == protoUDP {
				continue
			}
			if dr == nil {
				t.addPlainCluster(svc, p)
				continue
			}
			t.addCluster(t.buildCluster(svc, p, dr, nil))
			for _, ss := range dr.spec.Subsets {
				t.addCluster(t.buildCluster(svc, p, dr, ss))
			}
		}
	}
	t.addCluster(&cluster.Cluster{
		Name:                 BlackHoleCluster,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout:       t.connectTimeout(),
		LbPolicy:             cluster.Cluster_ROUND_ROBIN,
	})
	if t.proxy.Type == Sidecar {
		t.addCluster(&cluster.Cluster{
			Name:                 PassthroughCluster,
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
			ConnectTimeout:       t.connectTimeout(),
			LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
			CircuitBreakers:      defaultCircuitBreakers(),
			TypedExtensionProtocolOptions: map[string]*anypb.Any{
				httpProtocolOptionsKey: mustAny(&httpopts.HttpProtocolOptions{
					UpstreamProtocolOptions: &httpopts.HttpProtocolOptions_UseDownstreamProtocolConfig{
						UseDownstreamProtocolConfig: &httpopts.HttpProtocolOptions_UseDownstreamHttpConfig{
							HttpProtocolOptions:  &core.Http1ProtocolOptions{},
							Http2ProtocolOptions: &core.Http2ProtocolOptions{},
						},
					},
				}),
			},
		})
	}
}

// plainCluster is a service port's cluster when no DestinationRule applies:
// the same for every sidecar, so the Index builds it once and translations
// share it (read-only).
type plainCluster struct {
	cluster *cluster.Cluster
	cla     *endpoint.ClusterLoadAssignment
}

// precomputeClusters builds every service port's plain cluster.
func (x *Index) precomputeClusters() {
	t := &translation{x: x, proxy: &Proxy{Type: Sidecar}, out: &Resources{}, clusterSet: map[string]bool{}}
	for _, svc := range x.services {
		svc.plain = make(map[uint32]plainCluster, len(svc.ports))
		for _, p := range svc.ports {
			if p.protocol == protoUDP {
				continue
			}
			t.out.Endpoints = t.out.Endpoints[:0]
			pc := plainCluster{cluster: t.buildCluster(svc, p, nil, nil)}
			if len(t.out.Endpoints) > 0 {
				pc.cla = t.out.Endpoints[0]
			}
			svc.plain[p.number] = pc
		}
	}
}

func (t *translation) addPlainCluster(svc *service, p *svcPort) {
	pc, ok := svc.plain[p.number]
	if !ok || (svc.res == resolvePassthrough && t.proxy.Type == Router) {
		t.addCluster(t.buildCluster(svc, p, nil, nil))
		return
	}
	if pc.cluster == nil || t.clusterSet[pc.cluster.Name] {
		return
	}
	t.addCluster(pc.cluster)
	if pc.cla != nil {
		t.out.Endpoints = append(t.out.Endpoints, pc.cla)
	}
}

func (t *translation) addCluster(c *cluster.Cluster) {
	if c == nil {
		return
	}
	if t.clusterSet[c.Name] {
		return
	}
	t.clusterSet[c.Name] = true
	t.out.Clusters = append(t.out.Clusters, c)
}

func (t *translation) connectTimeout() *durationpb.Duration {
	if d := t.x.mesh.GetConnectTimeout(); d != nil {
		return d
	}
	return durationpb.New(10e9)
}

var weightOne = wrapperspb.UInt32(1)

func weightValue(w uint32) *wrapperspb.UInt32Value {
	if w == 1 {
		return weightOne // read-only, shared
	}
	return wrapperspb.UInt32(w)
}

// sharedProtos are read-only messages many resources of one translation
// point at; marshalling does not care that they are shared.
type sharedProtos struct {
	circuitBreakers *cluster.CircuitBreakers
	adsSource       *core.ConfigSource
	svcMeta         map[*service]*structpb.Value
}

func (t *translation) shared() *sharedProtos {
	if t.sharedP == nil {
		t.sharedP = &sharedProtos{
			circuitBreakers: defaultCircuitBreakers(),
			adsSource: &core.ConfigSource{
				ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
				InitialFetchTimeout:   zeroDuration,
				ResourceApiVersion:    core.ApiVersion_V3,
			},
			svcMeta: map[*service]*structpb.Value{},
		}
	}
	return t.sharedP
}

func defaultCircuitBreakers() *cluster.CircuitBreakers {
	return &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{{
		MaxConnections:     wrapperspb.UInt32(math.MaxUint32),
		MaxPendingRequests: wrapperspb.UInt32(math.MaxUint32),
		MaxRequests:        wrapperspb.UInt32(math.MaxUint32),
		MaxRetries:         wrapperspb.UInt32(math.MaxUint32),
		TrackRemaining:     true,
	}}}
}

func (t *translation) buildCluster(svc *service, p *svcPort, dr *drEntry, subset *networking.Subset) *cluster.Cluster {
	subsetName := ""
	if subset != nil {
		subsetName = subset.Name
	}
	name := clusterName(p.number, subsetName, svc.hostname)
	c := &cluster.Cluster{
		Name:           name,
		ConnectTimeout: t.connectTimeout(),
		LbPolicy:       cluster.Cluster_LEAST_REQUEST,
		CommonLbConfig: &cluster.Cluster_CommonLbConfig{},
	}
	c.Metadata = clusterMetadata(t.serviceMeta(svc), p.number, subsetName, dr)

	eps := svc.endpoints
	if subset != nil && len(subset.Labels) > 0 {
		eps = nil
		for _, ep := range svc.endpoints {
			if labelsMatch(subset.Labels, ep.labels) {
				eps = append(eps, ep)
			}
		}
	}
	res := svc.res
	if res == resolvePassthrough && t.proxy.Type == Router {
		res = resolveEDS // gateways cannot use original destination
	}
	switch res {
	case resolveDNS, resolveDNSRR:
		typ := cluster.Cluster_STRICT_DNS
		if res == resolveDNSRR {
			typ = cluster.Cluster_LOGICAL_DNS
		}
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: typ}
		c.DnsLookupFamily = cluster.Cluster_V4_ONLY
		c.RespectDnsTtl = true
		c.DnsRefreshRate = t.x.mesh.GetDnsRefreshRate()
		var lbEps []*endpoint.LbEndpoint
		if len(svc.endpoints) == 0 {
			lbEps = append(lbEps, lbEndpoint(svc.hostname, targetPortOf(p), 1))
		}
		for _, ep := range eps {
			lbEps = append(lbEps, lbEndpoint(ep.address, svc.endpointPort(ep, p), ep.weight))
		}
		if len(lbEps) == 0 {
			// istiod drops a DNS cluster without endpoints: nothing to resolve.
			t.warnSvc(svc, "subset %q of %s selects no endpoints: cluster %s is not built", subsetName, svc.hostname, name)
			return nil
		}
		if typ == cluster.Cluster_LOGICAL_DNS {
			lbEps = lbEps[:1] // Envoy takes exactly one name for LOGICAL_DNS
		}
		c.LoadAssignment = &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: lbEps}}}
	case resolvePassthrough:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST}
		c.LbPolicy = cluster.Cluster_CLUSTER_PROVIDED
		c.CommonLbConfig = nil
		if p.targetPort != 0 && p.targetPort != p.number && !svc.kube {
			c.LbConfig = &cluster.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &cluster.Cluster_OriginalDstLbConfig{
				UpstreamPortOverride: wrapperspb.UInt32(p.targetPort),
			}}
		}
	default:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_EDS}
		c.EdsClusterConfig = &cluster.Cluster_EdsClusterConfig{
			ServiceName: name,
			EdsConfig:   t.shared().adsSource,
		}
		cla := &endpoint.ClusterLoadAssignment{ClusterName: name}
		var lbEps []*endpoint.LbEndpoint
		for _, ep := range eps {
			port := svc.endpointPort(ep, p)
			if svc.kube {
				n, ok := ep.ports[p.name]
				if !ok {
					n, ok = ep.ports[""]
				}
				if !ok {
					continue
				}
				port = n
			}
			lbEps = append(lbEps, lbEndpoint(ep.address, port, ep.weight))
		}
		if len(lbEps) > 0 {
			cla.Endpoints = []*endpoint.LocalityLbEndpoints{{LbEndpoints: lbEps}}
		}
		t.out.Endpoints = append(t.out.Endpoints, cla)
	}
	// Shared by every cluster of this translation until a policy changes
	// it (applyPolicy clones first): a fleet of plain clusters allocates one.
	c.CircuitBreakers = t.shared().circuitBreakers

	policy := effectivePolicy(dr, subset, p.number)
	h := &httpOptions{}
	if p.protocol.isHTTP2() {
		h.http2 = true
	}
	t.applyPolicy(c, svc, p, policy, dr, h)
	if h.needed() || p.protocol.isHTTP2() {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: mustAny(h.build())}
	}
	return c
}

func (t *translation) warnSvc(svc *service, format string, args ...any) {
	t.problems = append(t.problems, inputs.ProblemFor(inputs.SeverityWarning, svc.source, "", format, args...))
}

func targetPortOf(p *svcPort) uint32 {
	if p.targetPort != 0 {
		return p.targetPort
	}
	return p.number
}

func lbEndpoint(addr string, port, weight uint32) *endpoint.LbEndpoint {
	if weight == 0 {
		weight = 1
	}
	return &endpoint.LbEndpoint{
		HostIdentifier:      &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: socketAddress(addr, port)}},
		LoadBalancingWeight: weightValue(weight),
	}
}

// effectivePolicy merges a DestinationRule's policies for one port and
// subset as istiod does: port-level settings replace the top-level
// component they name, and a subset's policy replaces the rule's.
func effectivePolicy(dr *drEntry, subset *networking.Subset, port uint32) *networking.TrafficPolicy {
	if dr == nil {
		return nil
	}
	out := forPort(dr.spec.TrafficPolicy, port)
	if subset != nil && subset.TrafficPolicy != nil {
		sp := forPort(subset.TrafficPolicy, port)
		if out == nil {
			return sp
		}
		out = overlay(out, sp.ConnectionPool, sp.LoadBalancer, sp.OutlierDetection, sp.Tls)
	}
	return out
}

func forPort(p *networking.TrafficPolicy, port uint32) *networking.TrafficPolicy {
	if p == nil {
		return nil
	}
	out := overlay(p, nil, nil, nil, nil)
	for _, pl := range p.PortLevelSettings {
		if pl.Port != nil && pl.Port.Number == port {
			out = overlay(out, pl.ConnectionPool, pl.LoadBalancer, pl.OutlierDetection, pl.Tls)
		}
	}
	return out
}

// overlay returns base with each component that is set replaced, as
// istiod merges port-level and subset policies: whole components, not
// fields.
func overlay(base *networking.TrafficPolicy, cp *networking.ConnectionPoolSettings, lb *networking.LoadBalancerSettings,
	od *networking.OutlierDetection, tls *networking.ClientTLSSettings,
) *networking.TrafficPolicy {
	out := &networking.TrafficPolicy{
		ConnectionPool: base.ConnectionPool, LoadBalancer: base.LoadBalancer,
		OutlierDetection: base.OutlierDetection, Tls: base.Tls,
	}
	if cp != nil {
		out.ConnectionPool = cp
	}
	if lb != nil {
		out.LoadBalancer = lb
	}
	if od != nil {
		out.OutlierDetection = od
	}
	if tls != nil {
		out.Tls = tls
	}
	return out
}

type httpOptions struct {
	http2       bool
	idle        *durationpb.Duration
	maxRequests uint32
	autoSNI     bool
}

func (h *httpOptions) needed() bool { return h.idle != nil || h.maxRequests > 0 || h.autoSNI }

func (h *httpOptions) build() *httpopts.HttpProtocolOptions {
	o := &httpopts.HttpProtocolOptions{}
	if h.idle != nil || h.maxRequests > 0 {
		o.CommonHttpProtocolOptions = &core.HttpProtocolOptions{IdleTimeout: h.idle}
		if h.maxRequests > 0 {
			o.CommonHttpProtocolOptions.MaxRequestsPerConnection = wrapperspb.UInt32(h.maxRequests)
		}
	}
	if h.autoSNI {
		o.UpstreamHttpProtocolOptions = &core.UpstreamHttpProtocolOptions{AutoSni: true}
	}
	if h.http2 {
		o.UpstreamProtocolOptions = &httpopts.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &core.Http2ProtocolOptions{}},
		}}
	} else {
		o.UpstreamProtocolOptions = &httpopts.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &core.Http1ProtocolOptions{}},
		}}
	}
	return o
}

func (t *translation) applyPolicy(c *cluster.Cluster, svc *service, p *svcPort, policy *networking.TrafficPolicy, dr *drEntry, h *httpOptions) {
	if policy == nil {
		return
	}
	if cp := policy.ConnectionPool; cp != nil {
		c.CircuitBreakers = proto.Clone(c.CircuitBreakers).(*cluster.CircuitBreakers)
		th := c.CircuitBreakers.Thresholds[0]
		if tcpp := cp.Tcp; tcpp != nil {
			if tcpp.MaxConnections > 0 {
				th.MaxConnections = wrapperspb.UInt32(uint32(tcpp.MaxConnections))
			}
			if tcpp.ConnectTimeout != nil {
				c.ConnectTimeout = tcpp.ConnectTimeout
			}
			if ka := tcpp.TcpKeepalive; ka != nil {
				kc := &core.TcpKeepalive{}
				if ka.Probes > 0 {
					kc.KeepaliveProbes = wrapperspb.UInt32(ka.Probes)
				}
				if ka.Time != nil {
					kc.KeepaliveTime = wrapperspb.UInt32(uint32(ka.Time.AsDuration().Seconds()))
				}
				if ka.Interval != nil {
					kc.KeepaliveInterval = wrapperspb.UInt32(uint32(ka.Interval.AsDuration().Seconds()))
				}
				c.UpstreamConnectionOptions = &cluster.UpstreamConnectionOptions{TcpKeepalive: kc}
			}
		}
		if hp := cp.Http; hp != nil {
			if hp.Http1MaxPendingRequests > 0 {
				th.MaxPendingRequests = wrapperspb.UInt32(uint32(hp.Http1MaxPendingRequests))
			}
			if hp.Http2MaxRequests > 0 {
				th.MaxRequests = wrapperspb.UInt32(uint32(hp.Http2MaxRequests))
			}
			if hp.MaxRetries > 0 {
				th.MaxRetries = wrapperspb.UInt32(uint32(hp.MaxRetries))
			}
			if hp.IdleTimeout != nil {
				h.idle = hp.IdleTimeout
			}
			if hp.MaxRequestsPerConnection > 0 {
				h.maxRequests = uint32(hp.MaxRequestsPerConnection)
			}
			if hp.H2UpgradePolicy == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && p.protocol.isHTTP() {
				h.http2 = true
			}
		}
	}
	if lb := policy.LoadBalancer; lb != nil && c.GetType() != cluster.Cluster_ORIGINAL_DST {
		switch x := lb.LbPolicy.(type) {
		case *networking.LoadBalancerSettings_Simple:
			switch x.Simple {
			case networking.LoadBalancerSettings_ROUND_ROBIN:
				c.LbPolicy = cluster.Cluster_ROUND_ROBIN
			case networking.LoadBalancerSettings_RANDOM:
				c.LbPolicy = cluster.Cluster_RANDOM
			case networking.LoadBalancerSettings_PASSTHROUGH:
				c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST}
				c.LbPolicy = cluster.Cluster_CLUSTER_PROVIDED
				c.EdsClusterConfig, c.LoadAssignment, c.CommonLbConfig = nil, nil, nil
				t.dropEndpoints(c.Name)
			default:
				c.LbPolicy = cluster.Cluster_LEAST_REQUEST
			}
		case *networking.LoadBalancerSettings_ConsistentHash:
			if x.ConsistentHash.GetMaglev() != nil {
				c.LbPolicy = cluster.Cluster_MAGLEV
			} else {
				c.LbPolicy = cluster.Cluster_RING_HASH
				rh := &cluster.Cluster_RingHashLbConfig{}
				if min := x.ConsistentHash.GetRingHash().GetMinimumRingSize(); min > 0 {
					rh.MinimumRingSize = wrapperspb.UInt64(min)
				} else if min := x.ConsistentHash.GetMinimumRingSize(); min > 0 {
					rh.MinimumRingSize = wrapperspb.UInt64(min)
				}
				c.LbConfig = &cluster.Cluster_RingHashLbConfig_{RingHashLbConfig: rh}
			}
		}
	}
	if od := policy.OutlierDetection; od != nil {
		o := &cluster.OutlierDetection{
			EnforcingConsecutive_5Xx:           wrapperspb.UInt32(0),
			EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(0),
			EnforcingSuccessRate:               wrapperspb.UInt32(0),
			EnforcingFailurePercentage:         wrapperspb.UInt32(0),
			Interval:                           od.Interval,
			BaseEjectionTime:                   od.BaseEjectionTime,
			SplitExternalLocalOriginErrors:     od.SplitExternalLocalOriginErrors,
		}
		if v := od.Consecutive_5XxErrors; v != nil {
			o.Consecutive_5Xx = wrapperspb.UInt32(v.Value)
			if v.Value > 0 {
				o.EnforcingConsecutive_5Xx = wrapperspb.UInt32(100)
			}
		}
		if v := od.ConsecutiveGatewayErrors; v != nil {
			o.ConsecutiveGatewayFailure = wrapperspb.UInt32(v.Value)
			if v.Value > 0 {
				o.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
			}
		}
		if od.MaxEjectionPercent > 0 {
			o.MaxEjectionPercent = wrapperspb.UInt32(uint32(od.MaxEjectionPercent))
		}
		if od.MinHealthPercent > 0 && c.CommonLbConfig != nil {
			c.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: float64(od.MinHealthPercent)}
		}
		c.OutlierDetection = o
	}
	if tls := policy.Tls; tls != nil {
		t.applyClientTLS(c, svc, p, tls, dr, h)
	}
}

func (t *translation) dropEndpoints(name string) {
	out := t.out.Endpoints[:0]
	for _, e := range t.out.Endpoints {
		if e.ClusterName != name {
			out = append(out, e)
		}
	}
	t.out.Endpoints = out
}

// applyClientTLS originates TLS (DestinationRule tls SIMPLE or MUTUAL).
func (t *translation) applyClientTLS(c *cluster.Cluster, svc *service, p *svcPort, tls *networking.ClientTLSSettings, dr *drEntry, h *httpOptions) {
	switch tls.Mode {
	case networking.ClientTLSSettings_DISABLE:
		return
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		t.problems = append(t.problems, inputs.ProblemFor(inputs.SeverityWarning, dr.obj, "spec.trafficPolicy.tls.mode",
			"ISTIO_MUTUAL needs istio-proxy's certificates (istio-agent SDS); a stock Envoy has none, so %s is sent without TLS", c.Name))
		return
	}
	common := &tlsv3.CommonTlsContext{}
	if tls.CredentialName != "" {
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsSecret("kubernetes://" + tls.CredentialName)}
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: sdsSecret("kubernetes://" + tls.CredentialName + "-cacert"),
		}
		t.problems = append(t.problems, inputs.ProblemFor(inputs.SeverityWarning, dr.obj, "spec.trafficPolicy.tls.credentialName",
			"credentialName is served by SDS, which chokepoint does not serve yet: cluster %s waits for the secret", c.Name))
	} else {
		if tls.Mode == networking.ClientTLSSettings_MUTUAL {
			if tls.ClientCertificate == "" || tls.PrivateKey == "" {
				t.problems = append(t.problems, inputs.ProblemFor(inputs.SeverityError, dr.obj, "spec.trafficPolicy.tls",
					"mode MUTUAL needs clientCertificate and privateKey (or credentialName): cluster %s is sent without TLS", c.Name))
				return
			}
			common.TlsCertificates = []*tlsv3.TlsCertificate{{
				CertificateChain: fileSource(tls.ClientCertificate),
				PrivateKey:       fileSource(tls.PrivateKey),
			}}
		}
		if !tls.InsecureSkipVerify.GetValue() {
			ca := tls.CaCertificates
			if ca == "" {
				ca = systemCABundle
			}
			vc := &tlsv3.CertificateValidationContext{TrustedCa: fileSource(ca)}
			for _, san := range tls.SubjectAltNames {
				vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
					SanType: tlsv3.SubjectAltNameMatcher_DNS,
					Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: san}},
				})
			}
			common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
	}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: common, Sni: tls.Sni}
	if tls.Sni == "" {
		if p.protocol.isHTTP() {
			h.autoSNI = true // Envoy takes the SNI from the request's Host
		} else if !isWildcard(svc.hostname) {
			ctx.Sni = svc.hostname
		}
	}
	c.TransportSocket = &core.TransportSocket{Name: wellknown.TransportSocketTLS, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
}

func fileSource(path string) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_Filename{Filename: path}}
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &core.ConfigSource{
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
		ResourceApiVersion:    core.ApiVersion_V3,
	}}
}

func sortClusters(cs []*cluster.Cluster) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
}

// serviceMeta is the "services" entry of cluster metadata, built once per
// service and shared by its clusters.
func (t *translation) serviceMeta(svc *service) *structpb.Value {
	sh := t.shared()
	if v, ok := sh.svcMeta[svc]; ok {
		return v
	}
	str := structpb.NewStringValue
	v := structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		"host": str(svc.hostname), "name": str(svc.objName), "namespace": str(svc.namespace),
	}})}})
	sh.svcMeta[svc] = v
	return v
}

// clusterMetadata is istiod's cluster metadata: the service the cluster is
// for, its port, and the DestinationRule that shaped it.
func clusterMetadata(services *structpb.Value, port uint32, subset string, dr *drEntry) *core.Metadata {
	fields := make(map[string]*structpb.Value, 4)
	fields["services"] = services
	fields["default_original_port"] = structpb.NewNumberValue(float64(port))
	if subset != "" {
		fields["subset"] = structpb.NewStringValue(subset)
	}
	if dr != nil {
		fields["config"] = structpb.NewStringValue(dr.config)
	}
	return &core.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": {Fields: fields}}}
}
