package translate

import (
	"sort"

	accesslog "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

// Resources is what one proxy gets: Envoy's four resource types, sorted by
// name, and the problems met while translating for it.
type Resources struct {
	Clusters  []*cluster.Cluster
	Listeners []*listener.Listener
	Routes    []*route.RouteConfiguration
	Endpoints []*endpoint.ClusterLoadAssignment
	// Problems are specific to this proxy (input-wide ones are on the Index).
	Problems []inputs.Problem
	// RegistryOnly is the outbound traffic policy in effect for a sidecar;
	// PolicySource says what set it ("Sidecar ns/name" or "mesh config").
	RegistryOnly bool
	PolicySource string
}

// translation is the state of one Translate call.
type translation struct {
	x          *Index
	proxy      *Proxy
	sc         *scope
	out        *Resources
	clusterSet map[string]bool
	problems   []inputs.Problem
	accessLog  string
	httpRoutes []string
	hostSets   map[serverNS]*hostSet
	sharedP    *sharedProtos
	logs       map[string]*accesslog.AccessLog
}

// Translate is a one-shot NewIndex(in).Translate(p).
func Translate(in *inputs.Inputs, p Proxy) *Resources {
	return NewIndex(in).Translate(p)
}

// Translate renders the Envoy resources for one proxy. It is safe to call
// concurrently on one Index.
func (x *Index) Translate(p Proxy) *Resources {
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	t := &translation{x: x, proxy: &p, out: &Resources{}, clusterSet: map[string]bool{}}
	t.sc = x.newScope(&p)
	t.accessLog = x.mesh.GetAccessLogFile()
	switch p.Type {
	case Router:
		if t.accessLog == "" {
			// A gateway always logs: its access log is how operators prove
			// the hop (see the README's compatibility notes).
			t.accessLog = "/dev/stdout"
		}
		t.buildClusters()
		t.buildGateway()
	default:
		t.out.RegistryOnly = t.sc.registryOnly
		t.out.PolicySource = t.sc.policySource
		t.buildClusters()
		t.buildSidecarListeners()
		t.buildSidecarRoutes()
	}
	t.problems = append(t.sc.problems, t.problems...)
	t.out.Problems = t.problems
	sortResources(t.out)
	return t.out
}

func sortResources(r *Resources) {
	sortClusters(r.Clusters)
	sort.SliceStable(r.Listeners, func(i, j int) bool { return r.Listeners[i].Name < r.Listeners[j].Name })
	sort.SliceStable(r.Routes, func(i, j int) bool { return r.Routes[i].Name < r.Routes[j].Name })
	sort.SliceStable(r.Endpoints, func(i, j int) bool { return r.Endpoints[i].ClusterName < r.Endpoints[j].ClusterName })
}

// log is the access log every filter of this proxy shares (nil when the
// mesh config turns logging off): built and marshalled once.
func (t *translation) log() *accesslog.AccessLog {
	if t.accessLog == "" {
		return nil
	}
	if l, ok := t.logs[t.accessLog]; ok {
		return l
	}
	if t.logs == nil {
		t.logs = map[string]*accesslog.AccessLog{}
	}
	l := fileAccessLog(t.accessLog, nil)
	t.logs[t.accessLog] = l
	return l
}
