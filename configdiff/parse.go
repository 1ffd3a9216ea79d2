package configdiff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"sigs.k8s.io/yaml"
)

// Kind is a resource type of a config dump.
type Kind string

const (
	KindCluster   Kind = "cluster"
	KindListener  Kind = "listener"
	KindRoute     Kind = "route"
	KindEndpoints Kind = "endpoints"
)

var kinds = []Kind{KindCluster, KindListener, KindRoute, KindEndpoints}

// Dump is what one config dump holds, by resource name. Resources from the
// bootstrap (Envoy's static_* sections) are kept apart: no control plane
// serves them.
type Dump struct {
	// Source names the dump in messages (a file, "<stdin>" or a URL).
	Source string
	// Node is the node ID from the bootstrap section, when the dump has one.
	Node string

	Clusters  map[string]*clusterv3.Cluster
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	// Endpoints are the EDS assignments (Envoy's dynamic_endpoint_configs,
	// present with ?include_eds), by cluster name.
	Endpoints map[string]*endpointv3.ClusterLoadAssignment

	// Static counts the bootstrap resources of each kind, which are not
	// compared unless Options.All.
	Static          map[Kind]int
	StaticClusters  map[string]*clusterv3.Cluster
	StaticListeners map[string]*listenerv3.Listener
	StaticRoutes    map[string]*routev3.RouteConfiguration

	// Has says which kinds the dump carries at all: a kind missing from
	// one side (a dump taken without ?include_eds has no endpoints) is not
	// compared.
	Has map[Kind]bool
}

func newDump(source string) *Dump {
	return &Dump{
		Source:          source,
		Clusters:        map[string]*clusterv3.Cluster{},
		Listeners:       map[string]*listenerv3.Listener{},
		Routes:          map[string]*routev3.RouteConfiguration{},
		Endpoints:       map[string]*endpointv3.ClusterLoadAssignment{},
		Static:          map[Kind]int{},
		StaticClusters:  map[string]*clusterv3.Cluster{},
		StaticListeners: map[string]*listenerv3.Listener{},
		StaticRoutes:    map[string]*routev3.RouteConfiguration{},
		Has:             map[Kind]bool{},
	}
}

// Parse reads a config dump in any of the forms an operator has at hand:
//
//   - Envoy's admin /config_dump (snake_case keys, with or without
//     ?include_eds; bootstrap, secrets and other sections are skipped);
//   - `istioctl proxy-config all -o json|yaml` (the same document);
//   - `chokepoint translate -o json|yaml` and chokepoint's
//     /debug/config_dump (protojson, lowerCamelCase keys);
//   - a JSON array of resources, as `istioctl proxy-config cluster -o json`
//     and its siblings print.
//
// Typed configs whose type is not known here — istio-proxy's own extensions
// (istio.stats, istio.alpn, peer metadata, Wasm plugins) — are kept opaque
// instead of failing the parse. Fields this Envoy API version does not know
// are dropped.
func Parse(source string, data []byte) (*Dump, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("%s: empty", source)
	}
	if data[0] != '{' && data[0] != '[' {
		js, err := yaml.YAMLToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("%s: neither JSON nor YAML: %v", source, err)
		}
		data = js
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %v", source, err)
	}
	d := newDump(source)
	var err error
	switch doc := doc.(type) {
	case map[string]any:
		err = d.parseDump(doc)
	case []any:
		err = d.parseList(doc)
	default:
		err = errors.New("want a JSON object (a config dump) or an array of resources")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if !d.Has[KindCluster] && !d.Has[KindListener] && !d.Has[KindRoute] && !d.Has[KindEndpoints] {
		return nil, fmt.Errorf("%s: no clusters, listeners, routes or endpoints found (want an Envoy admin /config_dump, `istioctl proxy-config all -o json` or `chokepoint translate` output)", source)
	}
	return d, nil
}

// field reads a JSON object's field by its proto name or its lowerCamelCase
// JSON name: Envoy writes the first, protojson the second.
func field(m map[string]any, name string) any {
	if v, ok := m[name]; ok {
		return v
	}
	return m[camel(name)]
}

func camel(s string) string {
	var b strings.Builder
	up := false
	for _, r := range s {
		if r == '_' {
			up = true
			continue
		}
		if up && r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		up = false
		b.WriteRune(r)
	}
	return b.String()
}

func objects(v any) []map[string]any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func object(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func typeName(m map[string]any) string {
	t, _ := m["@type"].(string)
	return t[strings.LastIndex(t, "/")+1:]
}

func (d *Dump) parseDump(doc map[string]any) error {
	configs := field(doc, "configs")
	var sections []map[string]any
	switch c := configs.(type) {
	case []any:
		sections = objects(c)
	case map[string]any:
		// Early Envoy admin dumps keyed the sections by name.
		keys := make([]string, 0, len(c))
		for k := range c {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if m := object(c[k]); m != nil {
				sections = append(sections, m)
			}
		}
	case nil:
		// A single resource or a single section.
		switch {
		case strings.HasPrefix(typeName(doc), "envoy.admin."):
			sections = []map[string]any{doc}
		default:
			return d.parseList([]any{doc})
		}
	default:
		return errors.New(`"configs" is neither a list nor an object`)
	}
	var errs []error
	for _, s := range sections {
		t := typeName(s)
		switch {
		case t == "envoy.admin.v3.ClustersConfigDump":
			d.Has[KindCluster] = true
			errs = append(errs, d.each(s, "static_clusters", "cluster", true, d.addCluster))
			errs = append(errs, d.each(s, "dynamic_active_clusters", "cluster", false, d.addCluster))
			errs = append(errs, d.each(s, "dynamic_warming_clusters", "cluster", false, d.addClusterIfNew))
		case t == "envoy.admin.v3.ListenersConfigDump":
			d.Has[KindListener] = true
			errs = append(errs, d.each(s, "static_listeners", "listener", true, d.addListener))
			for i, l := range objects(field(s, "dynamic_listeners")) {
				state := object(field(l, "active_state"))
				if state == nil {
					state = object(field(l, "warming_state"))
				}
				if state == nil {
					continue // only draining or rejected
				}
				if err := d.decodeInto(object(field(state, "listener")), "dynamic_listeners", i, false, d.addListener); err != nil {
					errs = append(errs, err)
				}
			}
		case t == "envoy.admin.v3.RoutesConfigDump":
			d.Has[KindRoute] = true
			errs = append(errs, d.each(s, "static_route_configs", "route_config", true, d.addRoute))
			errs = append(errs, d.each(s, "dynamic_route_configs", "route_config", false, d.addRoute))
		case t == "envoy.admin.v3.EndpointsConfigDump":
			// Envoy's static_endpoint_configs are the hosts of its non-EDS
			// clusters (for DNS clusters, the resolved addresses): the
			// clusters' own load assignments are compared instead.
			d.Has[KindEndpoints] = true
			errs = append(errs, d.each(s, "dynamic_endpoint_configs", "endpoint_config", false, d.addEndpoints))
		case t == "envoy.admin.v3.BootstrapConfigDump":
			if n := object(field(object(field(s, "bootstrap")), "node")); n != nil {
				d.Node, _ = n["id"].(string)
			}
		case strings.HasPrefix(t, "envoy.admin.v2alpha."):
			return fmt.Errorf("section %s: Envoy v2 config dumps are not supported (want envoy.admin.v3)", t)
		}
		// Secrets, scoped routes, ECDS and anything newer: not compared.
	}
	return errors.Join(errs...)
}

// parseList reads an array of resources, recognising each by its @type or,
// without one (istioctl's per-type JSON), by its fields.
func (d *Dump) parseList(list []any) error {
	var errs []error
	for i, v := range list {
		m := object(v)
		if m == nil {
			errs = append(errs, fmt.Errorf("item %d: not an object", i))
			continue
		}
		kind := kindOf(m)
		if kind == "" {
			errs = append(errs, fmt.Errorf("item %d: not a cluster, listener, route configuration or cluster load assignment", i))
			continue
		}
		d.Has[kind] = true
		add := map[Kind]func(proto.Message, bool){
			KindCluster: d.addCluster, KindListener: d.addListener, KindRoute: d.addRoute, KindEndpoints: d.addEndpoints,
		}[kind]
		if err := d.decodeInto(m, "item", i, false, add); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func kindOf(m map[string]any) Kind {
	switch typeName(m) {
	case "envoy.config.cluster.v3.Cluster":
		return KindCluster
	case "envoy.config.listener.v3.Listener":
		return KindListener
	case "envoy.config.route.v3.RouteConfiguration":
		return KindRoute
	case "envoy.config.endpoint.v3.ClusterLoadAssignment":
		return KindEndpoints
	case "":
	default:
		return ""
	}
	has := func(names ...string) bool {
		for _, n := range names {
			if field(m, n) != nil {
				return true
			}
		}
		return false
	}
	switch {
	case has("virtual_hosts", "vhds"):
		return KindRoute
	case has("filter_chains", "default_filter_chain", "listener_filters"):
		return KindListener
	case has("cluster_name") && has("endpoints"):
		return KindEndpoints
	case has("connect_timeout", "eds_cluster_config", "load_assignment", "lb_policy", "type", "cluster_type"):
		return KindCluster
	}
	return ""
}

func (d *Dump) each(section map[string]any, list, item string, static bool, add func(proto.Message, bool)) error {
	var errs []error
	for i, e := range objects(field(section, list)) {
		if err := d.decodeInto(object(field(e, item)), list, i, static, add); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var resourceTypes = map[string]func() proto.Message{
	"envoy.config.cluster.v3.Cluster":                func() proto.Message { return &clusterv3.Cluster{} },
	"envoy.config.listener.v3.Listener":              func() proto.Message { return &listenerv3.Listener{} },
	"envoy.config.route.v3.RouteConfiguration":       func() proto.Message { return &routev3.RouteConfiguration{} },
	"envoy.config.endpoint.v3.ClusterLoadAssignment": func() proto.Message { return &endpointv3.ClusterLoadAssignment{} },
}

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// decodeInto decodes one resource object (with or without its @type).
func (d *Dump) decodeInto(m map[string]any, list string, i int, static bool, add func(proto.Message, bool)) error {
	if m == nil {
		return nil
	}
	t := typeName(m)
	if t == "" {
		t = map[Kind]string{
			KindCluster: "envoy.config.cluster.v3.Cluster", KindListener: "envoy.config.listener.v3.Listener",
			KindRoute: "envoy.config.route.v3.RouteConfiguration", KindEndpoints: "envoy.config.endpoint.v3.ClusterLoadAssignment",
		}[kindOf(m)]
	}
	name, _ := field(m, "name").(string)
	if name == "" {
		name, _ = field(m, "cluster_name").(string)
	}
	where := fmt.Sprintf("%s[%d]", list, i)
	if name != "" {
		where += fmt.Sprintf(" (%s)", name)
	}
	newMsg, ok := resourceTypes[t]
	if !ok {
		return fmt.Errorf("%s: unsupported resource type %q (want Envoy v3 resources)", where, t)
	}
	body := make(map[string]any, len(m))
	for k, v := range m {
		if k != "@type" {
			body[k] = opaque(v)
		}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%s: %v", where, err)
	}
	msg := newMsg()
	if err := unmarshal.Unmarshal(raw, msg); err != nil {
		return fmt.Errorf("%s: %v", where, err)
	}
	add(msg, static)
	return nil
}

// opaque returns v with every Any whose type is not registered here
// replaced by a google.protobuf.Struct holding its JSON (its "@type"
// included), so protojson can read the rest. istio-proxy's extensions
// (io.istio.*, stats.PluginConfig, istio.envoy.config.*) and anything newer
// than this Envoy API take this path.
func opaque(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if t, ok := v["@type"].(string); ok {
			if _, err := protoregistry.GlobalTypes.FindMessageByURL(t); err != nil {
				return map[string]any{"@type": structURL, "value": v}
			}
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = opaque(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = opaque(e)
		}
		return out
	}
	return v
}

const structURL = "type.googleapis.com/google.protobuf.Struct"

func (d *Dump) addCluster(m proto.Message, static bool) {
	c := m.(*clusterv3.Cluster)
	if static {
		d.Static[KindCluster]++
		d.StaticClusters[c.GetName()] = c
		return
	}
	d.Clusters[c.GetName()] = c
}

// addClusterIfNew adds a warming cluster unless its active version is known.
func (d *Dump) addClusterIfNew(m proto.Message, static bool) {
	if _, ok := d.Clusters[m.(*clusterv3.Cluster).GetName()]; !ok {
		d.addCluster(m, static)
	}
}

func (d *Dump) addListener(m proto.Message, static bool) {
	l := m.(*listenerv3.Listener)
	name := l.GetName()
	if name == "" {
		// istio-proxy's bootstrap listeners (15021, 15090) have no name.
		name = strings.Replace(addressString(l.GetAddress()), ":", "_", 1)
	}
	if static {
		d.Static[KindListener]++
		d.StaticListeners[name] = l
		return
	}
	d.Listeners[name] = l
}

func (d *Dump) addRoute(m proto.Message, static bool) {
	r := m.(*routev3.RouteConfiguration)
	if static {
		d.Static[KindRoute]++
		d.StaticRoutes[r.GetName()] = r
		return
	}
	d.Routes[r.GetName()] = r
}

func (d *Dump) addEndpoints(m proto.Message, _ bool) {
	e := m.(*endpointv3.ClusterLoadAssignment)
	d.Endpoints[e.GetClusterName()] = e
}
