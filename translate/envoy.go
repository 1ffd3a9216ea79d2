package translate

// Pure constructors for the Envoy protos chokepoint emits. Only upstream
// Envoy extensions appear here.

import (
	"strconv"

	accesslog "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	fileal "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	httpinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Istio's names, verbatim (SPEC §3).
const (
	BlackHoleCluster   = "BlackHoleCluster"
	PassthroughCluster = "PassthroughCluster"
	VirtualOutbound    = "virtualOutbound"
	allowAnyVHost      = "allow_any"
	blockAllVHost      = "block_all"
	passthroughChain   = "PassthroughFilterChain"
	voBlackholeChain   = "virtualOutbound-blackhole"
	voCatchAllChain    = "virtualOutbound-catchall-tcp"
	tlsTransport       = "tls"
	rawBufferTransport = "raw_buffer"
)

// EnvoyTextLogFormat is Istio's default text access log format: an L4 line
// shows the SNI (%REQUESTED_SERVER_NAME%), bytes, duration, response flags and
// the upstream cluster.
const EnvoyTextLogFormat = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% " +
	"%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% " +
	"%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% " +
	"\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% " +
	"%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" " +
	"\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" " +
	"%UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% " +
	"%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"

var (
	plaintextHTTPALPNs = []string{"http/1.0", "http/1.1", "h2c"}
	zeroDuration       = durationpb.New(0)
)

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err) // only on a nil or unregistered message: a bug
	}
	return a
}

// clusterName is istiod's outbound|PORT|SUBSET|HOST.
func clusterName(port uint32, subset, host string) string {
	return "outbound|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + host
}

func socketAddress(addr string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: addr, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}

// istioMetadata builds filter_metadata {istio: fields}.
func istioMetadata(fields map[string]any) *core.Metadata {
	s, err := structpb.NewStruct(fields)
	if err != nil {
		panic(err)
	}
	return &core.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": s}}
}

func configMetadata(config string) *core.Metadata {
	if config == "" {
		return nil
	}
	return istioMetadata(map[string]any{"config": config})
}

func fileAccessLog(path string, filter *accesslog.AccessLogFilter) *accesslog.AccessLog {
	return &accesslog.AccessLog{
		Name:   wellknown.FileAccessLog,
		Filter: filter,
		ConfigType: &accesslog.AccessLog_TypedConfig{TypedConfig: mustAny(&fileal.FileAccessLog{
			Path: path,
			AccessLogFormat: &fileal.FileAccessLog_LogFormat{LogFormat: &core.SubstitutionFormatString{
				Format: &core.SubstitutionFormatString_TextFormatSource{TextFormatSource: &core.DataSource{
					Specifier: &core.DataSource_InlineString{InlineString: EnvoyTextLogFormat},
				}},
			}},
		})},
	}
}

// noRouteAccessLog logs connections no filter chain accepted (response flag
// NR), so a closed connection on a gateway leaves a trace.
func noRouteAccessLog(path string) *accesslog.AccessLog {
	return fileAccessLog(path, &accesslog.AccessLogFilter{FilterSpecifier: &accesslog.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslog.ResponseFlagFilter{Flags: []string{"NR"}},
	}})
}

// tcpProxyFilter sends the connection to one cluster.
type tcpProxyKey struct {
	statPrefix, cluster, accessLog string
	idle                           bool
	idleSeconds                    int64
	idleNanos                      int32
}

// tcpProxy is tcpProxyFilter with this proxy's access log, its config
// shared through the index.
func (t *translation) tcpProxy(statPrefix, cluster string, idle *durationpb.Duration) *listener.Filter {
	k := tcpProxyKey{statPrefix: statPrefix, cluster: cluster, accessLog: t.accessLog, idle: idle != nil,
		idleSeconds: idle.GetSeconds(), idleNanos: idle.GetNanos()}
	x := t.x
	x.tcpMu.Lock()
	a, ok := x.tcpProxies[k]
	x.tcpMu.Unlock()
	if !ok {
		a = tcpProxyFilter(statPrefix, cluster, t.log(), idle).GetTypedConfig()
		x.tcpMu.Lock()
		if x.tcpProxies == nil {
			x.tcpProxies = map[tcpProxyKey]*anypb.Any{}
		}
		x.tcpProxies[k] = a
		x.tcpMu.Unlock()
	}
	return &listener.Filter{Name: wellknown.TCPProxy, ConfigType: &listener.Filter_TypedConfig{TypedConfig: a}}
}

func tcpProxyFilter(statPrefix, cluster string, log *accesslog.AccessLog, idle *durationpb.Duration) *listener.Filter {
	tp := &tcp.TcpProxy{StatPrefix: statPrefix, ClusterSpecifier: &tcp.TcpProxy_Cluster{Cluster: cluster}, IdleTimeout: idle}
	if log != nil {
		tp.AccessLog = []*accesslog.AccessLog{log}
	}
	return &listener.Filter{Name: wellknown.TCPProxy, ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(tp)}}
}

type weightedCluster struct {
	name   string
	weight uint32
}

// tcpProxyWeighted splits connections over several clusters.
func tcpProxyWeighted(statPrefix string, clusters []weightedCluster, log *accesslog.AccessLog, idle *durationpb.Duration) *listener.Filter {
	wc := &tcp.TcpProxy_WeightedCluster{}
	for _, c := range clusters {
		wc.Clusters = append(wc.Clusters, &tcp.TcpProxy_WeightedCluster_ClusterWeight{Name: c.name, Weight: c.weight})
	}
	tp := &tcp.TcpProxy{StatPrefix: statPrefix, ClusterSpecifier: &tcp.TcpProxy_WeightedClusters{WeightedClusters: wc}, IdleTimeout: idle}
	if log != nil {
		tp.AccessLog = []*accesslog.AccessLog{log}
	}
	return &listener.Filter{Name: wellknown.TCPProxy, ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(tp)}}
}

// hcmFilter is an HTTP connection manager reading its routes by RDS over
// ADS, with the router filter.
func hcmFilter(statPrefix, rdsName string, log *accesslog.AccessLog, gateway bool) *listener.Filter {
	m := &hcm.HttpConnectionManager{
		StatPrefix: statPrefix,
		CodecType:  hcm.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			RouteConfigName: rdsName,
			ConfigSource: &core.ConfigSource{
				ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
				InitialFetchTimeout:   zeroDuration,
				ResourceApiVersion:    core.ApiVersion_V3,
			},
		}},
		HttpFilters: []*hcm.HttpFilter{{
			Name:       wellknown.Router,
			ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(&router.Router{})},
		}},
		UseRemoteAddress:             wrapperspb.Bool(gateway),
		NormalizePath:                wrapperspb.Bool(true),
		PathWithEscapedSlashesAction: hcm.HttpConnectionManager_KEEP_UNCHANGED,
		StreamIdleTimeout:            zeroDuration,
	}
	if gateway {
		m.ForwardClientCertDetails = hcm.HttpConnectionManager_SANITIZE_SET
	}
	if log != nil {
		m.AccessLog = []*accesslog.AccessLog{log}
	}
	return &listener.Filter{Name: wellknown.HTTPConnectionManager, ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(m)}}
}

func tlsInspector() *listener.ListenerFilter {
	return &listener.ListenerFilter{Name: wellknown.TlsInspector, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspector.TlsInspector{})}}
}

func httpInspector() *listener.ListenerFilter {
	return &listener.ListenerFilter{Name: wellknown.HttpInspector, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: mustAny(&httpinspector.HttpInspector{})}}
}
