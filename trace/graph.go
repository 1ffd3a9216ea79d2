package trace

import (
	"fmt"
	"sort"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"

	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/translate"
)

// NodeKind is what a graph node stands for; it picks the colour.
type NodeKind string

const (
	KindProxy       NodeKind = "proxy"
	KindListener    NodeKind = "listener"
	KindChain       NodeKind = "chain"
	KindRoute       NodeKind = "route"
	KindCluster     NodeKind = "cluster"     // a cluster that reaches a gateway, or any other
	KindExternal    NodeKind = "external"    // a cluster leaving the mesh
	KindService     NodeKind = "service"     // a cluster of an in-mesh Service
	KindPassthrough NodeKind = "passthrough" // PassthroughCluster
	KindBlackhole   NodeKind = "blackhole"   // BlackHoleCluster
	KindResponse    NodeKind = "response"    // Envoy answers itself
	KindClosed      NodeKind = "closed"      // no chain, no listener, no endpoints
)

// GraphNode is one box of the picture.
type GraphNode struct {
	ID    string
	Kind  NodeKind
	Label string
	// Sub is a second line (the destination of a cluster, the domains of a
	// virtual host).
	Sub string
	// Detail is the hover text: what it is and the Istio objects that made it.
	Detail string
	// OnPath marks the nodes of a traced call.
	OnPath bool

	children []string
	owner    string // the class key of the proxy whose config this is
	x, y     float64
	w, h     float64
	rank     int
}

// GraphEdge joins two nodes.
type GraphEdge struct {
	From, To string
	Label    string
	// Handover edges are not a config reference: virtualOutbound handing a
	// connection to a port listener, or a cluster reaching a gateway.
	Handover bool
	OnPath   bool
}

// Graph is a proxy's egress picture: listeners, filter chains, routes and
// clusters, followed through gateway hops to where traffic leaves.
type Graph struct {
	Title string
	Nodes []*GraphNode
	Edges []*GraphEdge
	byID  map[string]*GraphNode
	edges map[[2]string]*GraphEdge
}

func (g *Graph) node(owner, id string, kind NodeKind, label string) (*GraphNode, bool) {
	if n, ok := g.byID[id]; ok {
		return n, false
	}
	n := &GraphNode{ID: id, Kind: kind, Label: label, owner: owner}
	g.byID[id] = n
	g.Nodes = append(g.Nodes, n)
	return n, true
}

func (g *Graph) edge(from, to, label string, handover bool) {
	k := [2]string{from, to}
	if e, ok := g.edges[k]; ok {
		if label != "" && !strings.Contains(e.Label, label) {
			e.Label += ", " + label
		}
		return
	}
	e := &GraphEdge{From: from, To: to, Label: label, Handover: handover}
	g.edges[k] = e
	g.Edges = append(g.Edges, e)
	f := g.byID[from]
	f.children = append(f.children, to)
}

// Node returns the node with id, or nil.
func (g *Graph) Node(id string) *GraphNode { return g.byID[id] }

// BuildGraph draws the config of proxy start, following every cluster that
// reaches a gateway into that gateway's listener for the port. When tr is
// given, its path is marked.
func BuildGraph(idx *translate.Index, start translate.Proxy, opts Options, tr *Trace) *Graph {
	if opts.Config == nil {
		opts.Config = idx.Translate
	}
	g := &Graph{byID: map[string]*GraphNode{}, edges: map[[2]string]*GraphEdge{},
		Title: fmt.Sprintf("%s %s", start.Type, start.ID)}
	b := &graphBuilder{g: g, w: newWorld(idx.Inputs()), opts: opts, expanded: map[string]bool{}}
	root := b.proxyNode(start, nil)
	b.expand(root, start, opts.Config(start), 0, 0)
	if tr != nil {
		g.markPath(b.pathOf(tr, start))
	}
	return g
}

type graphBuilder struct {
	g        *Graph
	w        *world
	opts     Options
	expanded map[string]bool // proxy class + port already drawn
}

func proxyKey(p translate.Proxy) string { return p.ClassKey() }

func (b *graphBuilder) proxyNode(p translate.Proxy, via []string) string {
	id := "proxy:" + proxyKey(p)
	n, fresh := b.g.node(proxyKey(p), id, KindProxy, fmt.Sprintf("%s %s", p.Type, p.ID))
	if fresh {
		n.Sub = translate.FormatLabels(p.Labels)
		n.Detail = "node " + p.String()
		if len(via) > 0 {
			n.Detail += "\nsynthesised from " + objectNames(via)
		}
	}
	return id
}

// expand draws a proxy's listeners: all of them, or those on port.
func (b *graphBuilder) expand(pid string, p translate.Proxy, res *translate.Resources, port uint32, hops int) {
	key := proxyKey(p)
	var virtual *listener.Listener
	for _, l := range res.Listeners {
		if l.GetUseOriginalDst().GetValue() {
			virtual = l
		}
	}
	found := false
	for _, l := range res.Listeners {
		lport := l.GetAddress().GetSocketAddress().GetPortValue()
		if port != 0 && lport != port {
			continue
		}
		found = true
		lid := key + "/listener/" + l.Name
		n, fresh := b.g.node(key, lid, KindListener, "listener "+l.Name)
		if fresh {
			n.Detail = fmt.Sprintf("listener %s on %s:%d", l.Name, l.GetAddress().GetSocketAddress().GetAddress(), lport)
			if l.BindToPort != nil && !l.BindToPort.Value {
				n.Detail += " (not bound: virtualOutbound hands connections over by original destination port)"
			}
		}
		switch {
		case l == virtual || virtual == nil || p.Type != translate.Sidecar:
			b.g.edge(pid, lid, "", false)
		default:
			vid := key + "/listener/" + virtual.Name
			if b.g.Node(vid) == nil {
				vn, _ := b.g.node(key, vid, KindListener, "listener "+virtual.Name)
				vn.Detail = fmt.Sprintf("listener %s on port %d: every outbound connection lands here and is handed to the listener of its original destination port",
					virtual.Name, virtual.GetAddress().GetSocketAddress().GetPortValue())
				b.g.edge(pid, vid, "", false)
			}
			b.g.edge(vid, lid, fmt.Sprintf("port %d", lport), true)
		}
		if fresh {
			b.chains(key, lid, l, p, res, hops)
		}
	}
	if !found && port != 0 {
		id := fmt.Sprintf("%s/refused/%d", key, port)
		n, _ := b.g.node(key, id, KindClosed, fmt.Sprintf("no listener on %d", port))
		n.Sub = "connection refused"
		n.Detail = fmt.Sprintf("nothing on %s %s listens on port %d: no Gateway server maps to it", p.Type, p.ID, port)
		b.g.edge(pid, id, "", false)
	}
}

func (b *graphBuilder) chains(key, lid string, l *listener.Listener, p translate.Proxy, res *translate.Resources, hops int) {
	all := append([]*listener.FilterChain(nil), l.FilterChains...)
	if l.DefaultFilterChain != nil {
		all = append(all, l.DefaultFilterChain)
	}
	for _, fc := range all {
		label := sim.ChainLabel(l, fc)
		cid := key + "/chain/" + l.Name + "/" + label
		n, fresh := b.g.node(key, cid, KindChain, "chain "+label)
		b.g.edge(lid, cid, "", false)
		if !fresh {
			continue
		}
		n.Detail = "filter chain " + label + " of " + l.Name
		if fc == l.DefaultFilterChain {
			n.Detail += " (default: nothing else matched)"
		}
		n.Detail += madeBy(sourcesOf(fc.GetMetadata().GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue()))
		for _, f := range fc.Filters {
			msg, err := f.GetTypedConfig().UnmarshalNew()
			if err != nil {
				continue
			}
			switch x := msg.(type) {
			case *tcp.TcpProxy:
				if x.GetCluster() != "" {
					b.cluster(key, cid, x.GetCluster(), "", p, res, hops)
				}
				for _, wc := range x.GetWeightedClusters().GetClusters() {
					b.cluster(key, cid, wc.Name, fmt.Sprintf("weight %d", wc.Weight), p, res, hops)
				}
			case *hcm.HttpConnectionManager:
				b.routes(key, cid, x, p, res, hops)
			}
		}
	}
	catchAll := l.DefaultFilterChain != nil || l.GetUseOriginalDst().GetValue()
	for _, fc := range l.FilterChains {
		if proto.Size(fc.GetFilterChainMatch()) == 0 {
			catchAll = true // a chain without a match takes everything
		}
	}
	if !catchAll {
		id := key + "/closed/" + l.Name
		n, _ := b.g.node(key, id, KindClosed, "no chain matches")
		n.Sub = "connection closed"
		n.Detail = fmt.Sprintf("listener %s has no default filter chain: a connection no chain matches is closed", l.Name)
		b.g.edge(lid, id, "", false)
	}
}

func (b *graphBuilder) routes(key, cid string, m *hcm.HttpConnectionManager, p translate.Proxy, res *translate.Resources, hops int) {
	name := m.GetRds().GetRouteConfigName()
	rc := m.GetRouteConfig()
	for _, r := range res.Routes {
		if r.Name == name {
			rc = r
		}
	}
	if rc == nil {
		return
	}
	if name == "" {
		name = rc.Name
	}
	rid := key + "/routeconfig/" + name
	rn, fresh := b.g.node(key, rid, KindRoute, "route config "+name)
	b.g.edge(cid, rid, "", false)
	if !fresh {
		return
	}
	rn.Detail = "route config " + name
	for _, vh := range rc.VirtualHosts {
		vid := rid + "/" + vh.Name
		vn, _ := b.g.node(key, vid, KindRoute, "vhost "+vh.Name)
		vn.Sub = clip(strings.Join(vh.Domains, " "), maxSubChars)
		vn.Detail = "virtual host " + vh.Name + "\ndomains: " + strings.Join(vh.Domains, ", ")
		b.g.edge(rid, vid, "", false)
		if vh.RequireTls == route.VirtualHost_ALL {
			b.response(key, vid, 301, "https redirect")
			continue
		}
		for _, r := range vh.Routes {
			vn.Detail += madeBy(sourcesOf(r.GetMetadata().GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue()))
			match := routeMatch(r.Match)
			switch a := r.Action.(type) {
			case *route.Route_Route:
				if c := a.Route.GetCluster(); c != "" {
					b.cluster(key, vid, c, match, p, res, hops)
				}
				for _, wc := range a.Route.GetWeightedClusters().GetClusters() {
					b.cluster(key, vid, wc.Name, fmt.Sprintf("%s weight %d", match, wc.GetWeight().GetValue()), p, res, hops)
				}
			case *route.Route_DirectResponse:
				b.response(key, vid, a.DirectResponse.Status, match)
			case *route.Route_Redirect:
				b.response(key, vid, sim.RedirectStatus(a.Redirect), match)
			}
		}
	}
}

func (b *graphBuilder) response(key, from string, status uint32, label string) {
	id := fmt.Sprintf("%s/response/%d", key, status)
	n, _ := b.g.node(key, id, KindResponse, fmt.Sprintf("direct response %d", status))
	n.Detail = fmt.Sprintf("Envoy answers %d itself", status)
	if status == 502 {
		n.Sub = "block_all"
	}
	b.g.edge(from, id, label, false)
}

func routeMatch(m *route.RouteMatch) string {
	var s string
	switch p := m.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		if p.Prefix != "/" {
			s = p.Prefix + "*"
		}
	case *route.RouteMatch_Path:
		s = p.Path
	case *route.RouteMatch_SafeRegex:
		s = "~" + p.SafeRegex.GetRegex()
	case *route.RouteMatch_PathSeparatedPrefix:
		s = p.PathSeparatedPrefix + "/*"
	}
	if len(m.GetHeaders()) > 0 {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("+%d header match", len(m.GetHeaders()))
	}
	return s
}

func (b *graphBuilder) cluster(key, from, name, label string, p translate.Proxy, res *translate.Resources, hops int) {
	id := key + "/cluster/" + name
	n, fresh := b.g.node(key, id, KindCluster, name)
	b.g.edge(from, id, label, false)
	if !fresh {
		return
	}
	c := findCluster(res, name)
	who := fmt.Sprintf("%s %s", p.Type, p.ID)
	switch {
	case name == translate.BlackHoleCluster:
		n.Kind, n.Sub = KindBlackhole, "reset (curl 000) / 503"
		n.Detail = "BlackHoleCluster: no endpoints"
		if p.Type == translate.Sidecar && res.RegistryOnly {
			n.Detail += "; REGISTRY_ONLY set by " + policyOf(res)
		}
		return
	case name == translate.PassthroughCluster:
		n.Kind, n.Sub = KindPassthrough, "original destination"
		n.Detail = "PassthroughCluster: " + who + " connects to the original destination itself, no egress control"
		if p.Type == translate.Sidecar && !res.RegistryOnly {
			n.Detail += "; ALLOW_ANY set by " + policyOf(res)
		}
		return
	case c == nil:
		n.Kind, n.Sub = KindClosed, "no such cluster"
		n.Detail = who + " has no cluster " + name + ": 503 (NC) or closed"
		return
	}
	n.Detail = fmt.Sprintf("cluster %s (%s)", name, c.GetType()) + madeBy(b.w.clusterSources(c))
	if gp, fw, ok := b.w.gatewayOf(c, res); ok && hops < b.maxHops() {
		gid := b.proxyNode(gp.proxy, gp.via)
		n.Sub = "gateway hop"
		edge := fmt.Sprintf("%d → %d", fw.Port, fw.TargetPort)
		if fw.TLS != "" {
			edge += " TLS " + fw.TLS
		}
		b.g.edge(id, gid, edge, true)
		ek := proxyKey(gp.proxy) + fmt.Sprint("|", fw.EndpointPort)
		if !b.expanded[ek] {
			b.expanded[ek] = true
			b.expand(gid, gp.proxy, b.opts.Config(gp.proxy), fw.EndpointPort, hops+1)
		}
		return
	}
	o := b.w.clusterOutcome(res, who, sim.Call{}, sim.Result{}, c)
	switch o.Kind {
	case External:
		n.Kind = KindExternal
	case Service:
		n.Kind = KindService
	case NoEndpoints:
		n.Kind = KindClosed
	}
	switch {
	case c.GetType() == cluster.Cluster_ORIGINAL_DST:
		n.Sub = "→ original destination"
	case o.Destination != "":
		n.Sub = "→ " + o.Destination
	default:
		n.Sub = "no endpoints"
	}
	if up := upstreamTLS(c); up != nil {
		n.Sub += " (TLS origination)"
	}
}

func (b *graphBuilder) maxHops() int {
	if b.opts.MaxHops > 0 {
		return b.opts.MaxHops
	}
	return MaxHops
}

func madeBy(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	return "\nmade by " + objectNames(paths)
}

func sourcesOf(p string) []string {
	if p == "" {
		return nil
	}
	return []string{p}
}

// clip shortens a second line; the whole text is in the hover title.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// pathOf lists the node IDs a trace crosses, in order.
func (b *graphBuilder) pathOf(tr *Trace, start translate.Proxy) []string {
	var ids []string
	key := proxyKey(start)
	ids = append(ids, "proxy:"+key)
	for i, h := range tr.Hops {
		if i > 0 {
			p := translate.Proxy{Type: h.Proxy.Type, Namespace: h.Proxy.Namespace, Labels: h.Proxy.Labels}
			if parsed, err := translate.ParseNodeID(h.Proxy.Node); err == nil {
				p.DNSDomain = parsed.DNSDomain
			}
			key = proxyKey(p)
			ids = append(ids, "proxy:"+key)
		}
		if h.Listener == "" {
			ids = append(ids, fmt.Sprintf("%s/refused/%d", key, h.Call.Port))
			continue
		}
		if h.Proxy.Type == translate.Sidecar && h.Listener != "virtualOutbound" {
			ids = append(ids, key+"/listener/virtualOutbound")
		}
		ids = append(ids, key+"/listener/"+h.Listener)
		if h.FilterChain == "" {
			ids = append(ids, key+"/closed/"+h.Listener)
			continue
		}
		ids = append(ids, key+"/chain/"+h.Listener+"/"+h.FilterChain)
		if h.RouteConfig != "" {
			ids = append(ids, key+"/routeconfig/"+h.RouteConfig)
			if h.VirtualHost != "" {
				ids = append(ids, key+"/routeconfig/"+h.RouteConfig+"/"+h.VirtualHost)
			}
		}
		switch {
		case h.Cluster != "":
			ids = append(ids, key+"/cluster/"+h.Cluster)
		case h.Status != 0:
			ids = append(ids, fmt.Sprintf("%s/response/%d", key, h.Status))
		}
	}
	return ids
}

func (g *Graph) markPath(ids []string) {
	for i, id := range ids {
		if n := g.byID[id]; n != nil {
			n.OnPath = true
		}
		if i > 0 {
			if e := g.edges[[2]string{ids[i-1], id}]; e != nil {
				e.OnPath = true
			}
		}
	}
}

// clusterColumn kinds are drawn in one column per proxy, so a proxy's
// clusters line up whether a TCP chain or an HTTP route chose them.
func clusterColumn(k NodeKind) bool {
	switch k {
	case KindCluster, KindExternal, KindService, KindPassthrough, KindBlackhole, KindResponse:
		return true
	}
	return false
}

// sink kinds are shared by many chains; they go to the bottom of their
// column so the edges into them do not cut through the picture.
func sink(k NodeKind) bool {
	return k == KindBlackhole || k == KindPassthrough || k == KindResponse
}

// layout places nodes in columns by longest path from the root (a proxy's
// clusters in one column) and, within a column, in depth-first order next
// to their first parent, the traced path first.
func (g *Graph) layout() (width, height float64) {
	if len(g.Nodes) == 0 {
		return 0, 0
	}
	for _, n := range g.Nodes {
		lines := []string{n.Label}
		if n.Sub != "" {
			lines = append(lines, n.Sub)
		}
		longest := 0
		for _, l := range lines {
			longest = max(longest, len([]rune(l)))
		}
		n.w = float64(longest)*charWidth + 2*padX
		n.h = float64(len(lines))*lineHeight + 2*padY
		n.rank = 0
	}
	order, back := g.dfs()
	minRank := map[string]int{}
	for range 8 { // each round aligns one more hop; a trace has few
		for _, n := range g.Nodes {
			n.rank = minRank[n.ID]
		}
		for _, id := range order {
			n := g.byID[id]
			for _, c := range n.children {
				if back[[2]string{id, c}] {
					continue
				}
				if cn := g.byID[c]; cn.rank < n.rank+1 {
					cn.rank = n.rank + 1
				}
			}
		}
		col := map[string]int{}
		for _, n := range g.Nodes {
			if clusterColumn(n.Kind) {
				col[n.owner] = max(col[n.owner], n.rank)
			}
		}
		changed := false
		for _, n := range g.Nodes {
			if clusterColumn(n.Kind) && minRank[n.ID] < col[n.owner] {
				minRank[n.ID] = col[n.owner]
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	colW := map[int]float64{}
	maxRank := 0
	for _, n := range g.Nodes {
		colW[n.rank] = max(colW[n.rank], n.w)
		maxRank = max(maxRank, n.rank)
	}
	colX := make([]float64, maxRank+2)
	colX[0] = margin
	for r := 1; r <= maxRank+1; r++ {
		colX[r] = colX[r-1] + colW[r-1] + colGap
	}
	// Vertical: depth-first preorder, each node no higher than its parent.
	next := map[int]float64{}
	placed := map[string]bool{}
	var deferred []string
	var place func(id string, parentY float64)
	place = func(id string, parentY float64) {
		if placed[id] {
			return
		}
		placed[id] = true
		n := g.byID[id]
		n.x = colX[n.rank]
		n.y = max(next[n.rank], parentY)
		next[n.rank] = n.y + n.h + rowGap
		kids := append([]string(nil), n.children...)
		sort.SliceStable(kids, func(i, j int) bool { return g.byID[kids[i]].OnPath && !g.byID[kids[j]].OnPath })
		for _, c := range kids {
			if sink(g.byID[c].Kind) && !g.byID[c].OnPath {
				deferred = append(deferred, c)
				continue
			}
			place(c, n.y)
		}
	}
	top := legendHeight + margin
	for r := range colX {
		next[r] = top
	}
	place(g.Nodes[0].ID, top)
	for _, id := range deferred {
		place(id, top)
	}
	for _, n := range g.Nodes { // unreachable from the root: should not happen
		place(n.ID, top)
	}
	for _, n := range g.Nodes {
		width = max(width, n.x+n.w+margin)
		height = max(height, n.y+n.h+margin)
	}
	return max(width, legendWidth()+2*margin), height
}

// dfs returns a topological order of the graph without its back edges.
func (g *Graph) dfs() ([]string, map[[2]string]bool) {
	state := map[string]int{} // 1 on stack, 2 done
	back := map[[2]string]bool{}
	var post []string
	var visit func(id string)
	visit = func(id string) {
		state[id] = 1
		for _, c := range g.byID[id].children {
			switch state[c] {
			case 0:
				visit(c)
			case 1:
				back[[2]string{id, c}] = true
			}
		}
		state[id] = 2
		post = append(post, id)
	}
	for _, n := range g.Nodes {
		if state[n.ID] == 0 {
			visit(n.ID)
		}
	}
	for i, j := 0, len(post)-1; i < j; i, j = i+1, j-1 {
		post[i], post[j] = post[j], post[i]
	}
	return post, back
}
