package configdiff

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/chokepoint-xds/chokepoint/configdump"
	"github.com/chokepoint-xds/chokepoint/test/scenarios"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

// The fixtures: ours-sleep.json is `chokepoint translate` of
// testdata/config for sleep-6d8f.shop; theirs-istio-proxy.json is the same
// configuration as a real istio-proxy's admin /config_dump shows it:
// snake_case, versions and timestamps, other orders, the bootstrap, static
// resources, secrets and ECDS sections, istio-proxy's own filters
// (metadata exchange, istio.stats, istio.alpn with an Any type no Go
// package defines, peer metadata as TypedStruct), empty fault and CORS
// filters, gRPC stats, auto-mTLS socket matches, the DestinationRule CA
// over istio-agent's file-root: SDS, access logs, tracing, decorators,
// metadata, and the inbound side (virtualInbound, inbound|8080||,
// InboundPassthroughCluster).
const (
	oursFile   = "testdata/ours-sleep.json"
	theirsFile = "testdata/theirs-istio-proxy.json"
	sleepNode  = "sidecar~10.244.2.7~sleep-6d8f.shop~shop.svc.cluster.local"
)

func parseFile(t *testing.T, path string) *Dump {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	d, err := Parse(path, data)
	require.NoError(t, err)
	return d
}

func lines(r *Result) []string {
	var out []string
	for _, d := range r.Differences {
		out = append(out, d.String())
	}
	return out
}

func TestIstioProxyDumpEqualsTranslation(t *testing.T) {
	ours, theirs := parseFile(t, oursFile), parseFile(t, theirsFile)
	require.Equal(t, sleepNode, theirs.Node)
	require.Equal(t, map[Kind]int{KindCluster: 4, KindListener: 2}, theirs.Static)

	r := Compare(ours, theirs, Options{})
	require.Empty(t, lines(r))
	require.True(t, r.Equal())
	require.Equal(t, map[Kind]int{KindCluster: 6, KindListener: 4, KindRoute: 2, KindEndpoints: 1}, r.Compared)
	require.Equal(t, []string{
		"4 Istio-only inbound/ambient resources in theirs not compared (--all compares them)",
		"6 bootstrap (static) resources in theirs not compared (--all compares them)",
	}, r.Notes)
	require.Equal(t, "equal: compared 6 clusters, 4 listeners, 2 route configs, 1 endpoint sets", r.Summary())

	// Both directions agree.
	require.True(t, Compare(theirs, ours, Options{}).Equal())

	// --all: what was skipped is then reported.
	require.Equal(t, []string{
		"cluster InboundPassthroughCluster: only in theirs",
		"cluster agent: only in theirs",
		"cluster inbound|8080||: only in theirs",
		"cluster prometheus_stats: only in theirs",
		"cluster sds-grpc: only in theirs",
		"cluster xds-grpc: only in theirs",
		"listener 0.0.0.0_15021: only in theirs",
		"listener 0.0.0.0_15090: only in theirs",
		"listener virtualInbound: only in theirs",
		"route inbound|8080||: only in theirs",
	}, lines(Compare(ours, theirs, Options{All: true})))
}

// TestUnresolvableAnys: istio-proxy's dump carries Any types that no Go
// package registers; protojson alone cannot read it, Parse can, and keeps
// those configs opaque.
func TestUnresolvableAnys(t *testing.T) {
	data, err := os.ReadFile(theirsFile)
	require.NoError(t, err)
	err = protojson.Unmarshal(data, &adminv3.ConfigDump{})
	require.ErrorContains(t, err, "unable to resolve", "the fixture must hold Anys protojson cannot resolve")

	d, err := Parse(theirsFile, data)
	require.NoError(t, err)
	l := d.Listeners["0.0.0.0_80"]
	require.NotNil(t, l)
	var hcm hcmv3.HttpConnectionManager
	require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
	var types []string
	for _, f := range hcm.GetHttpFilters() {
		types = append(types, f.GetName()+"="+typedName(f.GetTypedConfig()))
	}
	require.Equal(t, []string{
		"istio.metadata_exchange=io.istio.http.peer_metadata.Config",
		"envoy.filters.http.grpc_stats=envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
		"istio.alpn=istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig",
		"envoy.filters.http.fault=envoy.extensions.filters.http.fault.v3.HTTPFault",
		"envoy.filters.http.cors=envoy.extensions.filters.http.cors.v3.Cors",
		"istio.stats=stats.PluginConfig",
		"envoy.filters.http.router=envoy.extensions.filters.http.router.v3.Router",
	}, types)

	// An unknown Any deep inside an otherwise known resource, and a whole
	// unknown section.
	doc := `{"configs": [
	  {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [{"cluster": {
	    "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "c", "type": "EDS", "some_future_field": 1,
	    "typed_extension_protocol_options": {"x.y": {"@type": "type.googleapis.com/x.y.Options", "nested": {"@type": "type.googleapis.com/a.B"}}}}}]},
	  {"@type": "type.googleapis.com/io.istio.FutureDump", "anything": [1, 2]}]}`
	d, err = Parse("deep.json", []byte(doc))
	require.NoError(t, err)
	require.Contains(t, d.Clusters, "c")
}

// TestTranslationReordered: every scenario's translation, for every proxy,
// equals itself with every list whose order does not matter reordered,
// versions and timestamps added, as YAML as well as JSON.
func TestTranslationReordered(t *testing.T) {
	dirs := append(scenarios.Names(t), "testdata")
	checked := 0
	for _, dir := range dirs {
		var idx *translate.Index
		proxies := map[string]translate.Proxy{}
		if dir == "testdata" {
			p, err := translate.ParseNodeID(sleepNode)
			require.NoError(t, err)
			p.Labels = map[string]string{"app": "sleep"}
			proxies["sleep"] = p
			in, _, err := watch.Load(watch.LoadOptions{Paths: []string{filepath.Join(dir, "config")}})
			require.NoError(t, err)
			idx = translate.NewIndex(in)
		} else {
			sc, in := scenarios.Load(t, dir)
			for name := range sc.Proxies {
				proxies[name] = sc.Proxy(t, name)
			}
			idx = translate.NewIndex(in)
		}
		for name, p := range proxies {
			res := idx.Translate(p)
			js, err := configdump.JSON(res, "")
			require.NoError(t, err)
			ours, err := Parse("ours", js)
			require.NoError(t, err)
			require.NotEmpty(t, ours.Clusters, "%s/%s", dir, name)

			var doc any
			require.NoError(t, json.Unmarshal(js, &doc))
			shuffle(doc, "")
			versions(doc)
			shuffled, err := json.Marshal(doc)
			require.NoError(t, err)
			theirs, err := Parse("theirs", shuffled)
			require.NoError(t, err)
			r := Compare(ours, theirs, Options{All: true})
			require.Empty(t, lines(r), "%s/%s", dir, name)
			checked++

			y, err := configdump.MarshalYAML(configdump.Proto(res, "v1"))
			require.NoError(t, err)
			fromYAML, err := Parse("yaml", y)
			require.NoError(t, err)
			require.Empty(t, lines(Compare(ours, fromYAML, Options{All: true})), "%s/%s YAML", dir, name)

			if dir == "testdata" {
				// The fixture is this translation.
				require.True(t, Compare(parseFile(t, oursFile), ours, Options{All: true}).Equal(),
					"testdata/ours-sleep.json is stale: regenerate it with chokepoint translate -f configdiff/testdata/config --node %s --labels app=sleep", sleepNode)
			}
		}
	}
	require.Greater(t, checked, len(dirs), "every scenario has at least one proxy, some two")
}

// orderFree are the lists whose order Envoy ignores (or which the diff
// treats as sets).
var orderFree = map[string]bool{
	"dynamicActiveClusters": true, "dynamicListeners": true, "dynamicRouteConfigs": true, "dynamicEndpointConfigs": true,
	"configs": true, "filterChains": true, "virtualHosts": true, "domains": true, "serverNames": true,
	"applicationProtocols": true, "lbEndpoints": true, "listenerFilters": true, "prefixRanges": true,
}

func shuffle(v any, key string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			shuffle(e, k)
		}
	case []any:
		for _, e := range v {
			shuffle(e, "")
		}
		if orderFree[key] {
			slices.Reverse(v)
		}
	}
}

func versions(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == "cluster" || k == "routeConfig" || k == "activeState" || k == "endpointConfig" {
				v["versionInfo"] = "2026-08-10T09:12:44Z/99"
				v["lastUpdated"] = "2026-08-10T09:12:44.512Z"
			}
			versions(e)
		}
	case []any:
		for _, e := range v {
			versions(e)
		}
	}
}

// edit loads the istio-proxy fixture, applies f and parses the result.
func edit(t *testing.T, f func(doc map[string]any)) *Dump {
	t.Helper()
	data, err := os.ReadFile(theirsFile)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	f(doc)
	out, err := json.Marshal(doc)
	require.NoError(t, err)
	d, err := Parse("edited", out)
	require.NoError(t, err)
	return d
}

// section returns the list under key in the config dump's section of type typ.
func section(doc map[string]any, typ, key string) []any {
	for _, s := range doc["configs"].([]any) {
		s := s.(map[string]any)
		if strings.HasSuffix(s["@type"].(string), "."+typ) {
			l, _ := s[key].([]any)
			return l
		}
	}
	return nil
}

func setSection(doc map[string]any, typ, key string, l []any) {
	for _, s := range doc["configs"].([]any) {
		s := s.(map[string]any)
		if strings.HasSuffix(s["@type"].(string), "."+typ) {
			s[key] = l
		}
	}
}

func cluster(doc map[string]any, name string) map[string]any {
	for _, e := range section(doc, "ClustersConfigDump", "dynamic_active_clusters") {
		c := e.(map[string]any)["cluster"].(map[string]any)
		if c["name"] == name {
			return c
		}
	}
	panic("no cluster " + name)
}

func listener(doc map[string]any, name string) map[string]any {
	for _, e := range section(doc, "ListenersConfigDump", "dynamic_listeners") {
		e := e.(map[string]any)
		if e["name"] == name {
			return e["active_state"].(map[string]any)["listener"].(map[string]any)
		}
	}
	panic("no listener " + name)
}

func virtualHost(doc map[string]any, route, vh string) map[string]any {
	for _, e := range section(doc, "RoutesConfigDump", "dynamic_route_configs") {
		rc := e.(map[string]any)["route_config"].(map[string]any)
		if rc["name"] != route {
			continue
		}
		for _, v := range rc["virtual_hosts"].([]any) {
			if v := v.(map[string]any); v["name"] == vh {
				return v
			}
		}
	}
	panic("no virtual host " + vh)
}

func path(m map[string]any, keys ...any) any {
	var v any = m
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v
}

func TestRealDifferences(t *testing.T) {
	ours := parseFile(t, oursFile)
	cases := []struct {
		name string
		edit func(doc map[string]any)
		want []string
	}{
		{
			name: "missing cluster",
			edit: func(doc map[string]any) {
				l := section(doc, "ClustersConfigDump", "dynamic_active_clusters")
				l = slices.DeleteFunc(l, func(e any) bool {
					return path(e.(map[string]any), "cluster", "name") == "outbound|443||httpbin.org"
				})
				setSection(doc, "ClustersConfigDump", "dynamic_active_clusters", l)
			},
			want: []string{"cluster outbound|443||httpbin.org: only in ours"},
		},
		{
			name: "extra cluster",
			edit: func(doc map[string]any) {
				l := section(doc, "ClustersConfigDump", "dynamic_active_clusters")
				l = append(l, map[string]any{"cluster": map[string]any{
					"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "outbound|443||api.github.com", "type": "STRICT_DNS",
				}})
				setSection(doc, "ClustersConfigDump", "dynamic_active_clusters", l)
			},
			want: []string{"cluster outbound|443||api.github.com: only in theirs"},
		},
		{
			name: "different SNI on the TLS origination cluster",
			edit: func(doc map[string]any) {
				path(cluster(doc, "outbound|443||edition.cnn.com"), "transport_socket", "typed_config").(map[string]any)["sni"] = ""
			},
			want: []string{`cluster outbound|443||edition.cnn.com: tls sni: ours "edition.cnn.com", theirs ""`},
		},
		{
			name: "no TLS origination",
			edit: func(doc map[string]any) {
				delete(cluster(doc, "outbound|443||edition.cnn.com"), "transport_socket")
			},
			want: []string{
				`cluster outbound|443||edition.cnn.com: tls: ours "on", theirs "off"`,
				`cluster outbound|443||edition.cnn.com: tls sni: ours "edition.cnn.com", theirs (unset)`,
				`cluster outbound|443||edition.cnn.com: tls trust: ours "file /etc/certs/cnn-ca.pem", theirs (unset)`,
			},
		},
		{
			name: "different CA",
			edit: func(doc map[string]any) {
				path(cluster(doc, "outbound|443||edition.cnn.com"), "transport_socket", "typed_config", "common_tls_context",
					"combined_validation_context", "validation_context_sds_secret_config").(map[string]any)["name"] = "file-root:/etc/ssl/certs/ca-certificates.crt"
			},
			want: []string{`cluster outbound|443||edition.cnn.com: tls trust: ours "file /etc/certs/cnn-ca.pem", theirs "system roots"`},
		},
		{
			name: "SAN verification and a client certificate",
			edit: func(doc map[string]any) {
				common := path(cluster(doc, "outbound|443||edition.cnn.com"), "transport_socket", "typed_config", "common_tls_context").(map[string]any)
				path(common, "combined_validation_context", "default_validation_context").(map[string]any)["match_subject_alt_names"] = []any{map[string]any{"exact": "edition.cnn.com"}}
				common["tls_certificate_sds_secret_configs"] = []any{map[string]any{"name": "file-cert:/etc/certs/client.pem~/etc/certs/client-key.pem"}}
			},
			want: []string{
				`cluster outbound|443||edition.cnn.com: tls subject alt names: ours (unset), theirs "exact \"edition.cnn.com\""`,
				`cluster outbound|443||edition.cnn.com: tls certificates: ours (unset), theirs "file /etc/certs/client.pem key /etc/certs/client-key.pem"`,
			},
		},
		{
			name: "different SNI chain",
			edit: func(doc map[string]any) {
				for _, fc := range listener(doc, "0.0.0.0_443")["filter_chains"].([]any) {
					m := fc.(map[string]any)["filter_chain_match"].(map[string]any)
					if slices.Equal(m["server_names"].([]any), []any{"httpbin.org"}) {
						m["server_names"] = []any{"httpbin.org", "www.httpbin.org"}
					}
				}
			},
			want: []string{
				"listener 0.0.0.0_443: filter chain server_names=[httpbin.org]: only in ours",
				"listener 0.0.0.0_443: filter chain server_names=[httpbin.org,www.httpbin.org]: only in theirs",
			},
		},
		{
			name: "SNI chain to another cluster",
			edit: func(doc map[string]any) {
				for _, fc := range listener(doc, "0.0.0.0_443")["filter_chains"].([]any) {
					fc := fc.(map[string]any)
					if slices.Equal(path(fc, "filter_chain_match", "server_names").([]any), []any{"httpbin.org"}) {
						path(fc, "filters", 1, "typed_config").(map[string]any)["cluster"] = "PassthroughCluster"
					}
				}
			},
			want: []string{`listener 0.0.0.0_443: filter chain server_names=[httpbin.org]: tcp_proxy cluster: ours "outbound|443||httpbin.org", theirs "PassthroughCluster"`},
		},
		{
			name: "default chain follows ALLOW_ANY",
			edit: func(doc map[string]any) {
				path(listener(doc, "0.0.0.0_443"), "default_filter_chain", "filters", 1, "typed_config").(map[string]any)["cluster"] = "PassthroughCluster"
			},
			want: []string{`listener 0.0.0.0_443: default filter chain: tcp_proxy cluster: ours "BlackHoleCluster", theirs "PassthroughCluster"`},
		},
		{
			name: "a listener filter istio-proxy does not own",
			edit: func(doc map[string]any) {
				l := listener(doc, "0.0.0.0_80")
				l["listener_filters"] = append(l["listener_filters"].([]any), map[string]any{"name": "envoy.filters.listener.proxy_protocol"})
			},
			want: []string{`listener 0.0.0.0_80: listener filters: only in theirs: "envoy.filters.listener.proxy_protocol"`},
		},
		{
			name: "different route cluster",
			edit: func(doc map[string]any) {
				vh := virtualHost(doc, "80", "edition.cnn.com:80")
				path(vh, "routes", 1, "route").(map[string]any)["cluster"] = "outbound|80||edition.cnn.com"
			},
			want: []string{`route 80: virtual host edition.cnn.com:80: route prefix "/": cluster: ours "outbound|443||edition.cnn.com", theirs "outbound|80||edition.cnn.com"`},
		},
		{
			name: "different timeout",
			edit: func(doc map[string]any) {
				vh := virtualHost(doc, "80", "edition.cnn.com:80")
				path(vh, "routes", 0, "route").(map[string]any)["timeout"] = "5s"
			},
			want: []string{`route 80: virtual host edition.cnn.com:80: route prefix "/politics": timeout: ours "3s", theirs "5s"`},
		},
		{
			name: "timeout left to Envoy's default",
			edit: func(doc map[string]any) {
				vh := virtualHost(doc, "80", "edition.cnn.com:80")
				delete(path(vh, "routes", 1, "route").(map[string]any), "timeout")
			},
			want: []string{`route 80: virtual host edition.cnn.com:80: route prefix "/": timeout: ours "0s", theirs "15s"`},
		},
		{
			name: "routes in another order",
			edit: func(doc map[string]any) {
				vh := virtualHost(doc, "80", "edition.cnn.com:80")
				slices.Reverse(vh["routes"].([]any))
			},
			want: []string{`route 80: virtual host edition.cnn.com:80: route order: ours "route prefix \"/politics\"; route prefix \"/\"", theirs "route prefix \"/\"; route prefix \"/politics\""`},
		},
		{
			name: "weighted clusters, a fault and a domain",
			edit: func(doc map[string]any) {
				vh := virtualHost(doc, "80", "edition.cnn.com:80")
				vh["domains"] = append(vh["domains"].([]any), "edition.cnn.com:80")
				r := path(vh, "routes", 1).(map[string]any)
				ra := r["route"].(map[string]any)
				delete(ra, "cluster")
				ra["weighted_clusters"] = map[string]any{"clusters": []any{
					map[string]any{"name": "outbound|443||edition.cnn.com", "weight": 90},
					map[string]any{"name": "outbound|80||edition.cnn.com", "weight": 10},
				}}
				r["typed_per_filter_config"] = map[string]any{"envoy.filters.http.fault": map[string]any{
					"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault", "abort": map[string]any{"http_status": 503}}}
			},
			want: []string{
				`route 80: virtual host edition.cnn.com:80: domains: only in theirs: "edition.cnn.com:80"`,
				`route 80: virtual host edition.cnn.com:80: route prefix "/": cluster: ours "outbound|443||edition.cnn.com", theirs (unset)`,
				`route 80: virtual host edition.cnn.com:80: route prefix "/": weighted clusters: ours (unset), theirs "outbound|443||edition.cnn.com weight 90, outbound|80||edition.cnn.com weight 10"`,
				`route 80: virtual host edition.cnn.com:80: route prefix "/": per-filter config: ours (unset), theirs "envoy.filters.http.fault"`,
			},
		},
		{
			name: "a block_all that answers 404",
			edit: func(doc map[string]any) {
				vh := virtualHost(doc, "9080", "block_all")
				path(vh, "routes", 0, "direct_response").(map[string]any)["status"] = 404
			},
			want: []string{`route 9080: virtual host block_all: route prefix "/": direct response status: ours "502", theirs "404"`},
		},
		{
			name: "an HTTP filter that changes traffic",
			edit: func(doc map[string]any) {
				hcm := path(listener(doc, "0.0.0.0_80"), "filter_chains", 0, "filters", 0, "typed_config").(map[string]any)
				filters := hcm["http_filters"].([]any)
				hcm["http_filters"] = append(filters[:len(filters)-1:len(filters)-1], map[string]any{
					"name": "envoy.filters.http.ext_authz", "typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"}},
					filters[len(filters)-1])
			},
			want: []string{`listener 0.0.0.0_80: filter chain transport_protocol=raw_buffer application_protocols=[h2c,http/1.0,http/1.1]: http filters: ours "envoy.filters.http.router", theirs "envoy.filters.http.ext_authz, envoy.filters.http.router"`},
		},
		{
			name: "an endpoint less, a connect timeout and an LB policy",
			edit: func(doc map[string]any) {
				cla := section(doc, "EndpointsConfigDump", "dynamic_endpoint_configs")[0].(map[string]any)["endpoint_config"].(map[string]any)
				eps := path(cla, "endpoints", 0).(map[string]any)
				eps["lb_endpoints"] = eps["lb_endpoints"].([]any)[:1]
				c := cluster(doc, "outbound|9080||ratings.shop.svc.cluster.local")
				c["connect_timeout"] = "1s"
				c["lb_policy"] = "ROUND_ROBIN"
			},
			want: []string{
				`cluster outbound|9080||ratings.shop.svc.cluster.local: lb policy: ours "LEAST_REQUEST", theirs "ROUND_ROBIN"`,
				`cluster outbound|9080||ratings.shop.svc.cluster.local: connect timeout: ours "10s", theirs "1s"`,
				`endpoints outbound|9080||ratings.shop.svc.cluster.local: endpoints: only in ours: "10.244.1.7:9080"`,
			},
		},
		{
			name: "a DNS cluster's hostname",
			edit: func(doc map[string]any) {
				path(cluster(doc, "outbound|443||httpbin.org"), "load_assignment", "endpoints", 0, "lb_endpoints", 0,
					"endpoint", "address", "socket_address").(map[string]any)["address"] = "eu.httpbin.org"
			},
			want: []string{`cluster outbound|443||httpbin.org: endpoints: only in ours: "httpbin.org:443"; only in theirs: "eu.httpbin.org:443"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			theirs := edit(t, tc.edit)
			r := Compare(ours, theirs, Options{})
			require.Equal(t, tc.want, lines(r))
			require.False(t, r.Equal())
		})
	}
}

func TestParseForms(t *testing.T) {
	// istioctl proxy-config cluster/listener/route -o json: arrays of
	// resources without @type, in protojson's camelCase.
	list := `[
	  {"name": "outbound|443||httpbin.org", "type": "STRICT_DNS", "connectTimeout": "10s"},
	  {"name": "0.0.0.0_443", "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 443}}, "filterChains": []},
	  {"name": "80", "virtualHosts": [{"name": "a", "domains": ["a"]}]},
	  {"clusterName": "outbound|80||a", "endpoints": []}
	]`
	d, err := Parse("list.json", []byte(list))
	require.NoError(t, err)
	require.Contains(t, d.Clusters, "outbound|443||httpbin.org")
	require.Contains(t, d.Listeners, "0.0.0.0_443")
	require.Contains(t, d.Routes, "80")
	require.Contains(t, d.Endpoints, "outbound|80||a")
	require.Equal(t, "10s", d.Clusters["outbound|443||httpbin.org"].GetConnectTimeout().AsDuration().String())

	// A dump with clusters only: the other kinds are not compared.
	only := `{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
	  "dynamic_active_clusters": [{"cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "outbound|443||httpbin.org", "type": "STRICT_DNS", "connect_timeout": "10s"}}]}]}`
	c, err := Parse("clusters.json", []byte(only))
	require.NoError(t, err)
	r := Compare(d, c, Options{})
	require.Empty(t, lines(r))
	require.Equal(t, []string{
		"listeners not compared: none in theirs (clusters.json)",
		"route configs not compared: none in theirs (clusters.json)",
		"endpoint sets not compared: none in theirs (clusters.json); Envoy's /config_dump has them with ?include_eds",
	}, r.Notes)
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		data, want string
	}{
		{"", "x.json: empty"},
		{"{", "x.json: invalid JSON: unexpected EOF"},
		{"configs: [", "x.json: neither JSON nor YAML"},
		{`"text"`, "x.json: want a JSON object (a config dump) or an array of resources"},
		{`{"configs": []}`, "x.json: no clusters, listeners, routes or endpoints found"},
		{`{"configs": 3}`, `x.json: "configs" is neither a list nor an object`},
		{`{"configs": [{"@type": "type.googleapis.com/envoy.admin.v2alpha.ClustersConfigDump"}]}`, "Envoy v2 config dumps are not supported"},
		{`[{"@type": "type.googleapis.com/envoy.api.v2.Cluster", "name": "a"}]`, "x.json: item 0: not a cluster, listener, route configuration or cluster load assignment"},
		{`{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [{"cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "a", "connect_timeout": "soon"}}]}]}`,
			"x.json: dynamic_active_clusters[0] (a): "},
	} {
		_, err := Parse("x.json", []byte(tc.data))
		require.ErrorContains(t, err, tc.want, tc.data)
	}
}

func TestIgnoredFilters(t *testing.T) {
	d := parseFile(t, theirsFile)
	var hcm hcmv3.HttpConnectionManager
	require.NoError(t, d.Listeners["0.0.0.0_80"].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
	var kept []string
	for _, f := range hcm.GetHttpFilters() {
		if !ignoredFilter(f.GetName(), f.GetTypedConfig()) {
			kept = append(kept, f.GetName())
		}
	}
	require.Equal(t, []string{"envoy.filters.http.router"}, kept)

	// A fault filter with a config acts: it is not ignored.
	ours := parseFile(t, oursFile)
	theirs := edit(t, func(doc map[string]any) {
		hcm := path(listener(doc, "0.0.0.0_80"), "filter_chains", 0, "filters", 0, "typed_config").(map[string]any)
		path(hcm, "http_filters", 3, "typed_config").(map[string]any)["abort"] = map[string]any{"http_status": 503}
	})
	require.Equal(t, []string{
		`listener 0.0.0.0_80: filter chain transport_protocol=raw_buffer application_protocols=[h2c,http/1.0,http/1.1]: http filters: ours "envoy.filters.http.router", theirs "envoy.filters.http.fault, envoy.filters.http.router"`,
	}, lines(Compare(ours, theirs, Options{})))
}

func TestDifferenceJSON(t *testing.T) {
	ours := parseFile(t, oursFile)
	theirs := edit(t, func(doc map[string]any) {
		path(cluster(doc, "outbound|443||edition.cnn.com"), "transport_socket", "typed_config").(map[string]any)["sni"] = ""
		vh := virtualHost(doc, "80", "edition.cnn.com:80")
		vh["domains"] = append(vh["domains"].([]any), "cnn.com")
	})
	out, err := json.Marshal(Compare(ours, theirs, Options{}).Differences)
	require.NoError(t, err)
	require.JSONEq(t, `[
	  {"kind": "cluster", "name": "outbound|443||edition.cnn.com", "path": "tls sni", "ours": "edition.cnn.com", "theirs": ""},
	  {"kind": "route", "name": "80", "path": "virtual host edition.cnn.com:80: domains", "ours": "edition.cnn.com",
	   "theirs": "cnn.com, edition.cnn.com", "only_in_theirs": ["cnn.com"]}
	]`, string(out))
}

// TestTrust: istio-agent's SDS names for files and the system bundle read
// as what they serve.
func TestTrust(t *testing.T) {
	sds := func(name string) *tlsv3.CommonTlsContext {
		return &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: name},
			}}}
	}
	file := func(path string) *tlsv3.CommonTlsContext {
		return &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
			ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}},
		}}
	}
	for _, tc := range []struct {
		ctx  *tlsv3.CommonTlsContext
		want string
	}{
		{sds("file-root:system"), "system roots"},
		{file("/etc/ssl/certs/ca-certificates.crt"), "system roots"},
		{sds("file-root:/etc/certs/ca.pem"), "file /etc/certs/ca.pem"},
		{file("/etc/certs/ca.pem"), "file /etc/certs/ca.pem"},
		{sds("ROOTCA"), "sds ROOTCA"},
		{sds("kubernetes://cnn-credential-cacert"), "sds kubernetes://cnn-credential-cacert"},
		{&tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{}}, "none"},
		{&tlsv3.CommonTlsContext{}, "none"},
	} {
		got, _ := validation(tc.ctx)
		require.Equal(t, tc.want, got)
	}
}

// TestHeaderActions: the deprecated append flag and append_action are two
// spellings of the same thing.
func TestHeaderActions(t *testing.T) {
	hv := func(appendFlag *bool, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
		o := &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x-a", Value: "1"}, AppendAction: action}
		if appendFlag != nil {
			o.Append = wrapperspb.Bool(*appendFlag)
		}
		return o
	}
	yes, no := true, false
	view := func(o *corev3.HeaderValueOption) string {
		n := newNode()
		headerFields(n, "request", []*corev3.HeaderValueOption{o}, nil)
		return n.fields[0].value
	}
	require.Equal(t, "set x-a: 1", view(hv(&no, 0)))
	require.Equal(t, "set x-a: 1", view(hv(nil, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)))
	require.Equal(t, "append x-a: 1", view(hv(&yes, 0)))
	require.Equal(t, "append x-a: 1", view(hv(nil, corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD)))
	require.Equal(t, "add if absent x-a: 1", view(hv(nil, corev3.HeaderValueOption_ADD_IF_ABSENT)))
}
