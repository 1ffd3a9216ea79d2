package trace

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// Layout metrics, in pixels; labels use a monospace font so their width
// can be known without measuring.
const (
	charWidth    = 7.3
	lineHeight   = 15.0
	padX         = 8.0
	padY         = 5.0
	colGap       = 80.0
	rowGap       = 12.0
	margin       = 16.0
	legendHeight = 34.0
	legendGap    = 22.0
	maxSubChars  = 56
)

type style struct {
	fill, stroke, text, name string
}

var styles = map[NodeKind]style{
	KindProxy:       {"#e8eaf6", "#3949ab", "#1a237e", "proxy"},
	KindListener:    {"#e3f2fd", "#1e88e5", "#0d3c61", "listener"},
	KindChain:       {"#f3e5f5", "#8e24aa", "#4a148c", "filter chain"},
	KindRoute:       {"#fff8e1", "#f9a825", "#5d4000", "route / vhost"},
	KindCluster:     {"#e0f7fa", "#00838f", "#004d54", "cluster"},
	KindExternal:    {"#d9f2d9", "#2e7d32", "#1b4d1f", "leaves the mesh"},
	KindService:     {"#eef7ee", "#66bb6a", "#1b4d1f", "mesh service"},
	KindPassthrough: {"#fff1cc", "#b7791f", "#5c3d0c", "passthrough"},
	KindBlackhole:   {"#343a40", "#000000", "#ffffff", "blackhole"},
	KindResponse:    {"#fde2cf", "#d9480f", "#6b2307", "direct response"},
	KindClosed:      {"#eeeeee", "#757575", "#424242", "closed / refused"},
}

var legendOrder = []NodeKind{KindProxy, KindListener, KindChain, KindRoute, KindCluster, KindExternal, KindService,
	KindPassthrough, KindBlackhole, KindResponse, KindClosed}

func legendWidth() float64 {
	w := 0.0
	for _, k := range legendOrder {
		w += legendItemWidth(k)
	}
	return w
}

func legendItemWidth(k NodeKind) float64 {
	return 19 + float64(len(styles[k].name))*charWidth + legendGap
}

// SVG writes the graph as a standalone SVG element.
func (g *Graph) SVG(w io.Writer) error {
	width, height := g.layout()
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace" font-size="12">`+"\n",
		width, height, width, height)
	b.WriteString(`<defs>
<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8a9099"/></marker>
<marker id="arrow-path" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="12" markerHeight="12" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c2185b"/></marker>
</defs>
`)
	// Legend.
	x := margin
	for _, k := range legendOrder {
		s := styles[k]
		fmt.Fprintf(&b, `<g class="legend"><rect x="%.1f" y="%.1f" width="14" height="14" rx="3" fill="%s" stroke="%s"/><text x="%.1f" y="%.1f" fill="#333">%s</text></g>`+"\n",
			x, margin-2, s.fill, s.stroke, x+19, margin+9, esc(s.name))
		x += legendItemWidth(k)
	}
	// A label goes next to the end of its edge that no other label shares:
	// the source, unless the source has several labelled edges.
	labelled := map[string]int{}
	for _, e := range g.Edges {
		if e.Label != "" {
			labelled[e.From]++
		}
	}
	// Edges first, so boxes sit on top.
	for _, e := range g.Edges {
		f, t := g.byID[e.From], g.byID[e.To]
		x1, y1 := f.x+f.w, f.y+f.h/2
		x2, y2 := t.x, t.y+t.h/2
		dx := max((x2-x1)/2, 40)
		color, width, marker := "#8a9099", 1.3, "arrow"
		if e.OnPath {
			color, width, marker = "#c2185b", 3, "arrow-path"
		}
		dash := ""
		if e.Handover {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<path d="M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="none" stroke="%s" stroke-width="%.1f"%s marker-end="url(#%s)"/>`+"\n",
			x1, y1, x1+dx, y1, x2-dx, y2, x2-2, y2, color, width, dash, marker)
		if e.Label != "" {
			lx, ly, anchor := x1+6, y1-5, "start"
			if labelled[e.From] > 1 {
				lx, ly, anchor = x2-10, y2-5, "end"
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="%s" fill="#444" stroke="#fff" stroke-width="3" paint-order="stroke">%s</text>`+"\n",
				lx, ly, anchor, esc(e.Label))
		}
	}
	for _, n := range g.Nodes {
		s := styles[n.Kind]
		sw, dash := 1.2, ""
		if n.OnPath {
			sw = 3
		}
		if n.Kind == KindClosed {
			dash = ` stroke-dasharray="4 3"`
		}
		stroke := s.stroke
		if n.OnPath {
			stroke = "#c2185b"
		}
		fmt.Fprintf(&b, `<g class="node %s"><title>%s</title>`, n.Kind, esc(n.Detail))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="5" fill="%s" stroke="%s" stroke-width="%.1f"%s/>`,
			n.x, n.y, n.w, n.h, s.fill, stroke, sw, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s"`, n.x+padX, n.y+padY+lineHeight-3, s.text)
		if n.Kind == KindProxy || n.OnPath {
			b.WriteString(` font-weight="bold"`)
		}
		fmt.Fprintf(&b, `>%s</text>`, esc(n.Label))
		if n.Sub != "" {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s" font-size="11">%s</text>`, n.x+padX, n.y+padY+2*lineHeight-3, s.text, esc(n.Sub))
		}
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// HTML writes a self-contained page: no script, no external resource.
// note, if not empty, is shown under the title (e.g. a trace's outcome).
func (g *Graph) HTML(w io.Writer, note string) error {
	var b strings.Builder
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>chokepoint: %s</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 4px; }
p { margin: 4px 0 10px; font-size: 13px; color: #555; }
.graph { overflow: auto; border: 1px solid #ddd; border-radius: 6px; background: #fff; }
svg g.node:hover rect { filter: brightness(0.93); }
</style></head><body>
<h1>Egress picture of %s</h1>
<p>Listeners, filter chains, routes and clusters as Envoy matches them, followed through gateway hops. Hover a box for what made it (Istio objects). Dashed arrows are handovers (virtualOutbound to a port listener, a cluster to a gateway).</p>
`, esc(g.Title), esc(g.Title))
	if note != "" {
		fmt.Fprintf(&b, "<p><strong>%s</strong></p>\n", esc(note))
	}
	b.WriteString(`<div class="graph">` + "\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if err := g.SVG(w); err != nil {
		return err
	}
	_, err := io.WriteString(w, "</div>\n</body></html>\n")
	return err
}

func esc(s string) string { return html.EscapeString(s) }
