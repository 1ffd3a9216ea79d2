package translate

import (
	"errors"
	"fmt"
	"sort"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	// Every extension chokepoint emits must be registered for Any
	// round-trips (validation, JSON output).
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

type validator interface{ ValidateAll() error }

// Validate runs protoc-gen-validate's ValidateAll on every resource and on
// every message packed in an Any inside it (typed_config), which
// ValidateAll alone does not reach.
func (r *Resources) Validate() error {
	var errs []error
	check := func(kind, name string, m proto.Message) {
		if err := validateDeep(m); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, err))
		}
	}
	for _, c := range r.Clusters {
		check("cluster", c.Name, c)
	}
	for _, l := range r.Listeners {
		check("listener", l.Name, l)
	}
	for _, rc := range r.Routes {
		check("route", rc.Name, rc)
	}
	for _, e := range r.Endpoints {
		check("endpoints", e.ClusterName, e)
	}
	return errors.Join(errs...)
}

func validateDeep(m proto.Message) error {
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			return err
		}
	}
	var err error
	walkAnys(m.ProtoReflect(), func(a *anypb.Any) {
		if err != nil {
			return
		}
		inner, e := a.UnmarshalNew()
		if e != nil {
			err = fmt.Errorf("%s: %w", a.TypeUrl, e)
			return
		}
		if e := validateDeep(inner); e != nil {
			err = fmt.Errorf("%s: %w", a.TypeUrl, e)
		}
	})
	return err
}

// walkAnys calls f for each Any directly inside m (not inside other Anys).
func walkAnys(m protoreflect.Message, f func(*anypb.Any)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		visit := func(mv protoreflect.Message) {
			if a, ok := mv.Interface().(*anypb.Any); ok {
				f(a)
				return
			}
			walkAnys(mv, f)
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visit(l.Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					visit(mv.Message())
					return true
				})
			}
		default:
			visit(v.Message())
		}
		return true
	})
}

// References lists the names a set of resources points at.
type References struct {
	Clusters map[string][]string // cluster -> referrers
	Routes   map[string][]string // RDS name -> listeners
}

// Refs collects the cluster and route names the listeners and routes use.
func (r *Resources) Refs() References {
	refs := References{Clusters: map[string][]string{}, Routes: map[string][]string{}}
	addCluster := func(name, by string) { refs.Clusters[name] = append(refs.Clusters[name], by) }
	forFilters := func(l *listener.Listener, fcs []*listener.FilterChain) {
		for _, fc := range fcs {
			if fc == nil {
				continue
			}
			for _, f := range fc.Filters {
				msg, err := f.GetTypedConfig().UnmarshalNew()
				if err != nil {
					continue
				}
				switch x := msg.(type) {
				case *tcp.TcpProxy:
					if c := x.GetCluster(); c != "" {
						addCluster(c, "listener "+l.Name)
					}
					for _, w := range x.GetWeightedClusters().GetClusters() {
						addCluster(w.Name, "listener "+l.Name)
					}
				case *hcm.HttpConnectionManager:
					if rds := x.GetRds(); rds != nil {
						refs.Routes[rds.RouteConfigName] = append(refs.Routes[rds.RouteConfigName], l.Name)
					}
				}
			}
		}
	}
	for _, l := range r.Listeners {
		forFilters(l, l.FilterChains)
		forFilters(l, []*listener.FilterChain{l.DefaultFilterChain})
	}
	for _, rc := range r.Routes {
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				a := rt.GetRoute()
				if a == nil {
					continue
				}
				if c := a.GetCluster(); c != "" {
					addCluster(c, "route "+rc.Name+"/"+vh.Name)
				}
				for _, w := range a.GetWeightedClusters().GetClusters() {
					addCluster(w.Name, "route "+rc.Name+"/"+vh.Name)
				}
			}
		}
	}
	return refs
}

// Consistency checks what go-control-plane's snapshot check does (every
// RDS name a listener uses has a route config, every EDS cluster has its
// endpoints) and also that every cluster a listener or route names exists.
// It returns the dangling references, each a sentence.
func (r *Resources) Consistency() []string {
	var out []string
	refs := r.Refs()
	clusters := map[string]*cluster.Cluster{}
	for _, c := range r.Clusters {
		clusters[c.Name] = c
	}
	routes := map[string]bool{}
	for _, rc := range r.Routes {
		routes[rc.Name] = true
	}
	eds := map[string]bool{}
	for _, e := range r.Endpoints {
		eds[e.ClusterName] = true
	}
	for name, by := range refs.Clusters {
		if clusters[name] == nil {
			out = append(out, fmt.Sprintf("cluster %s (used by %s) does not exist", name, by[0]))
		}
	}
	for name, by := range refs.Routes {
		if !routes[name] {
			out = append(out, fmt.Sprintf("route config %s (used by listener %s) does not exist", name, by[0]))
		}
	}
	for _, c := range r.Clusters {
		if c.GetType() == cluster.Cluster_EDS && !eds[c.GetEdsClusterConfig().GetServiceName()] {
			out = append(out, fmt.Sprintf("EDS cluster %s has no endpoints resource", c.Name))
		}
	}
	sort.Strings(out)
	return out
}

// ValidateResource runs ValidateAll on one resource and on the messages
// packed inside it.
func ValidateResource(m proto.Message) error { return validateDeep(m) }
