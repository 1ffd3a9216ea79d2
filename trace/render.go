package trace

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/chokepoint-xds/chokepoint/translate"
)

// JSON is the trace as indented JSON.
func (t *Trace) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Text writes the trace as numbered steps an operator can follow with
// istioctl proxy-config or an Envoy config dump at hand.
func (t *Trace) Text(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s to %s\n", describeCall(t.Call), hostPort{t.Call.Address, t.Call.Port})
	for i, h := range t.Hops {
		fmt.Fprintf(&b, "\n%d. %s %s\n", i+1, h.Proxy.Type, h.Proxy.Name())
		row := func(k, v string) { fmt.Fprintf(&b, "   %-13s %s\n", k, v) }
		row("node", h.Proxy.Node)
		if len(h.Proxy.Via) > 0 {
			row("labels", translate.FormatLabels(h.Proxy.Labels))
			row("selected by", objectNames(h.Proxy.Via))
		}
		// A sidecar intercepts a connection to somewhere; a gateway is
		// connected to.
		prep := " on "
		if h.Proxy.Type == translate.Sidecar {
			prep = " to "
		}
		row("receives", describeCall(h.Call)+prep+hostPort{h.Call.Address, h.Call.Port}.String())
		if h.Listener == "" {
			row("listener", "none")
			continue
		}
		l := h.Listener
		if h.Proxy.Type == translate.Sidecar && l != "virtualOutbound" {
			l += fmt.Sprintf(" (virtualOutbound hands over on the original port %d)", h.Call.Port)
		}
		row("listener", l)
		chain := h.FilterChain
		if chain == "" {
			chain = "none matches"
		}
		row("filter chain", chain)
		if h.RouteConfig != "" {
			row("route config", h.RouteConfig)
			if h.VirtualHost != "" {
				row("virtual host", h.VirtualHost)
			}
			if h.Route != "" {
				row("route", h.Route)
			}
		}
		if h.Cluster != "" {
			row("cluster", h.Cluster)
		}
		if len(h.WeightedClusters) > 1 {
			row("weighted", strings.Join(h.WeightedClusters, ", ")+" (the heaviest is followed)")
		}
		if h.Status != 0 {
			row("status", fmt.Sprint(h.Status))
		}
		if len(h.Sources) > 0 {
			row("made by", objectNames(h.Sources))
		}
		if f := h.Next; f != nil {
			s := fmt.Sprintf("gateway Service %s port %d -> targetPort %d (endpoint %s)", f.Service, f.Port, f.TargetPort,
				hostPort{f.Address, f.EndpointPort})
			if f.TLS != "" {
				s += ", TLS " + f.TLS
			}
			row("forwards to", s)
		}
	}
	o := t.Outcome
	head := string(o.Kind)
	if o.Destination != "" {
		head += " " + o.Destination
	}
	fmt.Fprintf(&b, "\noutcome: %s\n   %s\n", head, o.Explanation)
	_, err := io.WriteString(w, b.String())
	return err
}

func objectNames(paths []string) string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = ObjectName(p)
	}
	return strings.Join(out, ", ")
}

// Mermaid renders the path as a Mermaid flowchart that GitHub's Markdown
// renderer draws: one subgraph per proxy, the outcome at the end.
func (t *Trace) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	node := func(id, shape, label string) {
		open, close := "[", "]"
		switch shape {
		case "stadium":
			open, close = "([", "])"
		case "hex":
			open, close = "{{", "}}"
		}
		fmt.Fprintf(&b, "    %s%s\"%s\"%s\n", id, open, label, close)
	}
	fmt.Fprintf(&b, "    start([\"%s\"])\n", mermaidText(describeCall(t.Call)+" :"+fmt.Sprint(t.Call.Port)))
	prev, edge := "start", ""
	for i, h := range t.Hops {
		p := fmt.Sprintf("h%d", i+1)
		fmt.Fprintf(&b, "    subgraph %s[\"%s\"]\n", p, mermaidText(fmt.Sprintf("%d · %s %s", i+1, h.Proxy.Type, h.Proxy.Name())))
		var ids []string
		add := func(suffix, shape, label string) {
			id := p + suffix
			b.WriteString("    ")
			node(id, shape, mermaidText(label))
			ids = append(ids, id)
		}
		if h.Listener != "" {
			add("l", "box", "listener "+h.Listener)
		} else {
			add("l", "box", fmt.Sprintf("no listener on %d", h.Call.Port))
		}
		if h.FilterChain != "" {
			add("c", "box", "chain "+h.FilterChain)
		}
		if h.RouteConfig != "" {
			r := "route " + h.RouteConfig
			if h.VirtualHost != "" {
				r += " / " + h.VirtualHost
			}
			add("r", "box", r)
		}
		if h.Cluster != "" {
			add("k", "hex", "cluster "+h.Cluster)
		}
		b.WriteString("    end\n")
		if edge != "" {
			fmt.Fprintf(&b, "    %s -->|\"%s\"| %s\n", prev, mermaidText(edge), ids[0])
		} else {
			fmt.Fprintf(&b, "    %s --> %s\n", prev, ids[0])
		}
		if len(ids) > 1 {
			fmt.Fprintf(&b, "    %s\n", strings.Join(ids, " --> "))
		}
		prev, edge = ids[len(ids)-1], ""
		if f := h.Next; f != nil {
			edge = fmt.Sprintf("%d → %d", f.Port, f.TargetPort)
			if f.TLS != "" {
				edge += " TLS " + f.TLS
			}
		}
	}
	o := t.Outcome
	label := string(o.Kind)
	switch {
	case o.Destination != "":
		label += " " + o.Destination
	case o.Status != 0:
		label += fmt.Sprintf(" %d", o.Status)
	}
	fmt.Fprintf(&b, "    out([\"%s\"])\n", mermaidText(label))
	fmt.Fprintf(&b, "    %s --> out\n", prev)
	if o.Kind == Loop && o.LoopsTo > 0 {
		fmt.Fprintf(&b, "    %s -.->|\"%s\"| h%dl\n", prev, mermaidText(edge), o.LoopsTo)
	}
	class := "bad"
	switch o.Kind {
	case External, Service:
		class = "good"
	case Passthrough:
		class = "warn"
	}
	b.WriteString("    classDef good fill:#d9f2d9,stroke:#2e7d32\n")
	b.WriteString("    classDef warn fill:#fff1cc,stroke:#b7791f\n")
	b.WriteString("    classDef bad fill:#f8d7da,stroke:#b02a37\n")
	fmt.Fprintf(&b, "    class out %s\n", class)
	return b.String()
}

// mermaidText escapes a label for a quoted Mermaid string: entity codes for
// the characters Mermaid or Markdown would read as syntax.
func mermaidText(s string) string {
	r := strings.NewReplacer(
		`"`, "#quot;",
		"|", "#124;",
		"<", "#lt;",
		">", "#gt;",
		"#", "#35;",
		"`", "#96;",
	)
	return r.Replace(s)
}
