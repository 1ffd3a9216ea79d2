package configdiff

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Difference is one way the two configurations disagree.
type Difference struct {
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
	// Path is the part of the resource and the field, e.g.
	// "filter chain server_names=[httpbin.org]: tcp_proxy cluster".
	Path string `json:"path,omitempty"`
	// Only is "ours" or "theirs" when the resource, or the part named by
	// Path, exists on that side only.
	Only string `json:"only,omitempty"`
	// Ours and Theirs are the field's values; nil where it is unset.
	Ours   *string `json:"ours,omitempty"`
	Theirs *string `json:"theirs,omitempty"`
	// For set-valued fields (domains, endpoints, server names…), the
	// elements on one side only.
	OnlyInOurs   []string `json:"only_in_ours,omitempty"`
	OnlyInTheirs []string `json:"only_in_theirs,omitempty"`
}

func (d Difference) String() string {
	var b strings.Builder
	b.WriteString(string(d.Kind) + " " + d.Name + ": ")
	if d.Path != "" {
		b.WriteString(d.Path + ": ")
	}
	quoteAll := func(s []string) string {
		q := make([]string, len(s))
		for i, e := range s {
			q[i] = strconv.Quote(e)
		}
		return strings.Join(q, ", ")
	}
	value := func(v *string) string {
		if v == nil {
			return "(unset)"
		}
		return strconv.Quote(*v)
	}
	switch {
	case d.Only != "":
		b.WriteString("only in " + d.Only)
	case len(d.OnlyInOurs) > 0 || len(d.OnlyInTheirs) > 0:
		var parts []string
		if len(d.OnlyInOurs) > 0 {
			parts = append(parts, "only in ours: "+quoteAll(d.OnlyInOurs))
		}
		if len(d.OnlyInTheirs) > 0 {
			parts = append(parts, "only in theirs: "+quoteAll(d.OnlyInTheirs))
		}
		b.WriteString(strings.Join(parts, "; "))
	default:
		b.WriteString("ours " + value(d.Ours) + ", theirs " + value(d.Theirs))
	}
	return b.String()
}

// Options tune the comparison.
type Options struct {
	// All compares everything both dumps hold: also bootstrap (static)
	// resources and the Istio-only inbound and ambient resources
	// chokepoint never produces (virtualInbound, inbound|… clusters and
	// routes, InboundPassthroughCluster, connect_originate, main_internal).
	All bool
}

// Result is the outcome of Compare.
type Result struct {
	Differences []Difference
	// Compared counts the resources of each kind looked at (by name, both
	// sides together).
	Compared map[Kind]int
	// Notes say what was left out and why.
	Notes []string
}

// Equal reports whether no difference was found.
func (r *Result) Equal() bool { return len(r.Differences) == 0 }

// Compare compares ours with theirs.
func Compare(ours, theirs *Dump, o Options) *Result {
	r := &Result{Compared: map[Kind]int{}}
	skipped := map[string]int{}
	for _, k := range kinds {
		if !ours.Has[k] || !theirs.Has[k] {
			missing, side := ours, "ours"
			if ours.Has[k] {
				missing, side = theirs, "theirs"
			}
			if ours.Has[k] || theirs.Has[k] {
				note := fmt.Sprintf("%s not compared: none in %s (%s)", plural(k), side, missing.Source)
				if k == KindEndpoints {
					note += "; Envoy's /config_dump has them with ?include_eds"
				}
				r.Notes = append(r.Notes, note)
			}
			continue
		}
		a, b := resources(ours, k, o.All), resources(theirs, k, o.All)
		names := map[string]bool{}
		for n := range a {
			names[n] = true
		}
		for n := range b {
			names[n] = true
		}
		sorted := make([]string, 0, len(names))
		for n := range names {
			if !o.All && istioOnly(k, n) {
				skipped[holder(a, b, n)]++
				continue
			}
			if k == KindEndpoints && (ours.Clusters[n] == nil) != (theirs.Clusters[n] == nil) && ours.Has[KindCluster] && theirs.Has[KindCluster] {
				continue // the cluster itself is reported
			}
			sorted = append(sorted, n)
		}
		sort.Strings(sorted)
		r.Compared[k] = len(sorted)
		for _, n := range sorted {
			va, vb := a[n], b[n]
			switch {
			case va == nil:
				r.Differences = append(r.Differences, Difference{Kind: k, Name: n, Only: "theirs"})
			case vb == nil:
				r.Differences = append(r.Differences, Difference{Kind: k, Name: n, Only: "ours"})
			default:
				diffNode(func(d Difference) {
					d.Kind, d.Name = k, n
					r.Differences = append(r.Differences, d)
				}, "", va(), vb())
			}
		}
	}
	if !o.All {
		for _, s := range []string{"ours", "theirs"} {
			if skipped[s] > 0 {
				r.Notes = append(r.Notes, fmt.Sprintf("%d Istio-only inbound/ambient resources in %s not compared (--all compares them)", skipped[s], s))
			}
		}
		for i, d := range []*Dump{ours, theirs} {
			if n := d.Static[KindCluster] + d.Static[KindListener] + d.Static[KindRoute]; n > 0 {
				r.Notes = append(r.Notes, fmt.Sprintf("%d bootstrap (static) resources in %s not compared (--all compares them)", n, []string{"ours", "theirs"}[i]))
			}
		}
	}
	return r
}

func holder(a, b map[string]func() *node, n string) string {
	if a[n] != nil {
		return "ours"
	}
	return "theirs"
}

func plural(k Kind) string {
	switch k {
	case KindEndpoints:
		return "endpoint sets"
	case KindRoute:
		return "route configs"
	}
	return string(k) + "s"
}

// resources returns the views of one kind, built on demand.
func resources(d *Dump, k Kind, all bool) map[string]func() *node {
	out := map[string]func() *node{}
	switch k {
	case KindCluster:
		for n, c := range d.Clusters {
			out[n] = func() *node { return clusterView(c) }
		}
		if all {
			for n, c := range d.StaticClusters {
				out[n] = func() *node { return clusterView(c) }
			}
		}
	case KindListener:
		for n, l := range d.Listeners {
			out[n] = func() *node { return listenerView(l) }
		}
		if all {
			for n, l := range d.StaticListeners {
				out[n] = func() *node { return listenerView(l) }
			}
		}
	case KindRoute:
		for n, rc := range d.Routes {
			out[n] = func() *node { return routeConfigView(rc) }
		}
		if all {
			for n, rc := range d.StaticRoutes {
				out[n] = func() *node { return routeConfigView(rc) }
			}
		}
	case KindEndpoints:
		for n, e := range d.Endpoints {
			out[n] = func() *node { return endpointsView(e) }
		}
	}
	return out
}

// istioOnly names the resources istiod makes for a sidecar's inbound side
// and for ambient/HBONE, which chokepoint (an egress control plane for
// stock Envoy) never produces.
func istioOnly(k Kind, name string) bool {
	switch k {
	case KindCluster, KindEndpoints:
		return strings.HasPrefix(name, "inbound|") || strings.HasPrefix(name, "inbound-vip|") ||
			strings.HasPrefix(name, "InboundPassthroughCluster") ||
			name == "connect_originate" || name == "main_internal" || name == "encap"
	case KindListener:
		return name == "virtualInbound" || name == "connect_originate" || name == "connect_terminate" || name == "main_internal"
	case KindRoute:
		return strings.HasPrefix(name, "inbound|") || strings.HasPrefix(name, "inbound-vip|")
	}
	return false
}

func diffNode(emit func(Difference), path string, a, b *node) {
	prefix := path
	if prefix != "" {
		prefix += ": "
	}
	bf := map[string]viewField{}
	for _, f := range b.fields {
		bf[f.name] = f
	}
	af := map[string]bool{}
	for _, f := range a.fields {
		af[f.name] = true
		g, ok := bf[f.name]
		if !ok {
			emit(Difference{Path: prefix + f.name, Ours: ptr(f.value)})
			continue
		}
		if f.isSet && g.isSet {
			onlyA, onlyB := setDiff(f.set, g.set)
			if len(onlyA) > 0 || len(onlyB) > 0 {
				emit(Difference{Path: prefix + f.name, Ours: ptr(f.value), Theirs: ptr(g.value), OnlyInOurs: onlyA, OnlyInTheirs: onlyB})
			}
			continue
		}
		if f.value != g.value {
			emit(Difference{Path: prefix + f.name, Ours: ptr(f.value), Theirs: ptr(g.value)})
		}
	}
	for _, g := range b.fields {
		if !af[g.name] {
			emit(Difference{Path: prefix + g.name, Theirs: ptr(g.value)})
		}
	}
	for _, key := range a.order {
		if b.kids[key] == nil {
			emit(Difference{Path: prefix + key, Only: "ours"})
			continue
		}
		diffNode(emit, prefix+key, a.kids[key], b.kids[key])
	}
	for _, key := range b.order {
		if a.kids[key] == nil {
			emit(Difference{Path: prefix + key, Only: "theirs"})
		}
	}
	if label := a.orderLabel; label != "" && len(a.order) == len(b.order) && !slices.Equal(a.order, b.order) {
		same := true
		for _, key := range a.order {
			if b.kids[key] == nil {
				same = false
			}
		}
		if same { // the same parts in another order
			emit(Difference{Path: prefix + label, Ours: ptr(strings.Join(a.order, "; ")), Theirs: ptr(strings.Join(b.order, "; "))})
		}
	}
}

func setDiff(a, b []string) (onlyA, onlyB []string) {
	inB := map[string]bool{}
	for _, e := range b {
		inB[e] = true
	}
	inA := map[string]bool{}
	for _, e := range a {
		inA[e] = true
		if !inB[e] {
			onlyA = append(onlyA, e)
		}
	}
	for _, e := range b {
		if !inA[e] {
			onlyB = append(onlyB, e)
		}
	}
	return onlyA, onlyB
}

func ptr(s string) *string { return &s }

// WriteText prints the differences one a line, then the notes and a
// summary line.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, d := range r.Differences {
		b.WriteString(d.String() + "\n")
	}
	for _, n := range r.Notes {
		b.WriteString("note: " + n + "\n")
	}
	b.WriteString(r.Summary() + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary is one line: how many differences of each sort, over what.
func (r *Result) Summary() string {
	var compared []string
	for _, k := range kinds {
		if n, ok := r.Compared[k]; ok {
			compared = append(compared, fmt.Sprintf("%d %s", n, plural(k)))
		}
	}
	over := "compared " + strings.Join(compared, ", ")
	if len(r.Differences) == 0 {
		return "equal: " + over
	}
	var ours, theirs, changed int
	for _, d := range r.Differences {
		switch d.Only {
		case "ours":
			ours++
		case "theirs":
			theirs++
		default:
			changed++
		}
	}
	s := "s"
	if len(r.Differences) == 1 {
		s = ""
	}
	return fmt.Sprintf("%d difference%s (%d only in ours, %d only in theirs, %d changed); %s",
		len(r.Differences), s, ours, theirs, changed, over)
}
