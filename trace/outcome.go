package trace

import (
	"fmt"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/translate"
)

// outcome explains how the last hop ends.
func (w *world) outcome(res *translate.Resources, p translate.Proxy, call sim.Call, r sim.Result, c *cluster.Cluster) Outcome {
	who := string(p.Type) + " " + p.ID
	o := Outcome{Cluster: r.Cluster, Status: r.Status}
	switch r.Outcome {
	case sim.NoListener:
		o.Kind = NoListener
		o.Explanation = fmt.Sprintf("nothing on %s listens on port %d: connection refused", who, call.Port)
		if p.Type == translate.Router {
			o.Explanation += fmt.Sprintf(" (no Gateway server selecting this gateway maps to port %d)", call.Port)
		}
	case sim.NoFilterChain:
		o.Kind = NoFilterChain
		o.Explanation = fmt.Sprintf("no filter chain of listener %s matches %s: Envoy closes the connection (curl: 000)", r.Listener, describeCall(call))
		if p.Type == translate.Router && call.Protocol == sim.TLS && call.SNI != "" {
			o.Explanation += fmt.Sprintf("; no Gateway server and VirtualService on this gateway bind SNI %q", call.SNI)
		}
	case sim.NoRoute:
		o.Kind = NoRoute
		o.Status = 404
		if r.VirtualHost == "" {
			o.Explanation = fmt.Sprintf("route config %s has no virtual host for %q: 404 (NR)", r.RouteConfig, hostOf(call))
		} else {
			o.Explanation = fmt.Sprintf("no route of virtual host %s matches path %q: 404 (NR)", r.VirtualHost, pathOf(call))
		}
	case sim.DirectResponse:
		o.Kind = DirectResponse
		o.Explanation = fmt.Sprintf("%s answers %d itself (virtual host %s)", who, r.Status, r.VirtualHost)
		if r.VirtualHost == "block_all" {
			o.Explanation += fmt.Sprintf(": REGISTRY_ONLY (%s) and nothing registers %q on port %d", policyOf(res), hostOf(call), call.Port)
		}
	case sim.Redirect:
		o.Kind = Redirect
		o.Destination = r.RedirectTo
		o.Explanation = fmt.Sprintf("%s answers %d, redirecting to %s", who, r.Status, r.RedirectTo)
	case sim.Blackhole:
		o.Kind = Blackhole
		if call.Protocol == sim.HTTP || r.RouteConfig != "" {
			o.Status = 503
			o.Explanation = "BlackHoleCluster has no endpoints: 503"
		} else {
			o.Explanation = "BlackHoleCluster has no endpoints: the connection is reset (curl: 000)"
		}
		if p.Type == translate.Sidecar && res.RegistryOnly {
			o.Explanation += fmt.Sprintf("; REGISTRY_ONLY (%s) and nothing registers %s", policyOf(res), describeDest(call))
		}
	case sim.Passthrough:
		o.Kind = Passthrough
		o.Destination = hostPort{call.Address, call.Port}.String()
		o.Explanation = fmt.Sprintf("PassthroughCluster: %s connects to the original destination %s itself, bypassing any egress gateway", who, o.Destination)
		if p.Type == translate.Sidecar && !res.RegistryOnly {
			o.Explanation += fmt.Sprintf(" (ALLOW_ANY, %s)", policyOf(res))
		}
	case sim.ToCluster:
		if c == nil {
			o.Kind = UnknownCluster
			o.Explanation = fmt.Sprintf("%s has no cluster %s: ", who, r.Cluster)
			if r.RouteConfig != "" {
				o.Status = 503
				o.Explanation += "503 (NC)"
			} else {
				o.Explanation += "the connection is closed"
			}
			return o
		}
		return w.clusterOutcome(res, who, call, r, c)
	}
	return o
}

func (w *world) clusterOutcome(res *translate.Resources, who string, call sim.Call, r sim.Result, c *cluster.Cluster) Outcome {
	o := Outcome{Cluster: c.Name, Kind: External}
	_, _, host, ok := ParseClusterName(c.Name)
	if ok && w.serviceOfHost(host) != nil {
		o.Kind = Service
	}
	var dest []hostPort
	if c.GetType() == cluster.Cluster_ORIGINAL_DST {
		dest = []hostPort{{call.Address, call.Port}}
	} else {
		dest = clusterEndpoints(c, res)
	}
	if len(dest) == 0 {
		o.Kind = NoEndpoints
		o.Explanation = fmt.Sprintf("cluster %s has no endpoints: ", c.Name)
		if r.RouteConfig != "" {
			o.Status = 503
			o.Explanation += "503 (UH)"
		} else {
			o.Explanation += "the connection is reset (UH)"
		}
		return o
	}
	var names []string
	for i, d := range dest {
		if i == 3 {
			names = append(names, fmt.Sprintf("+%d more", len(dest)-3))
			break
		}
		names = append(names, d.String())
	}
	o.Destination = strings.Join(names, ", ")
	o.Explanation = fmt.Sprintf("%s connects to %s (%s cluster %s)", who, o.Destination, c.GetType(), c.Name)
	switch up := upstreamTLS(c); {
	case up != nil:
		o.Explanation += fmt.Sprintf(", originating TLS with SNI %q", up.GetSni())
	case call.Protocol == sim.TLS && r.RouteConfig == "":
		o.Explanation += fmt.Sprintf("; the client's TLS (SNI %q) passes through untouched", call.SNI)
	case call.Protocol == sim.TLS:
		o.Explanation += "; TLS was terminated here and the request goes on in plain text"
	case call.Protocol == sim.HTTP:
		o.Explanation += "; plain-text HTTP"
	}
	return o
}

func policyOf(res *translate.Resources) string {
	if res.PolicySource == "" {
		return "mesh config"
	}
	return res.PolicySource
}

func hostOf(c sim.Call) string {
	if c.Host != "" {
		return c.Host
	}
	return c.SNI
}

func pathOf(c sim.Call) string {
	if c.Path == "" {
		return "/"
	}
	return c.Path
}

// describeCall is "TLS SNI x" / "HTTP Host x path /p" / "TCP", without the
// address.
func describeCall(c sim.Call) string {
	switch c.Protocol {
	case sim.TLS:
		if c.SNI == "" {
			return "TLS without SNI"
		}
		s := "TLS SNI " + c.SNI
		if c.Host != "" && c.Host != c.SNI {
			s += " Host " + c.Host
		}
		return s
	case sim.HTTP:
		return fmt.Sprintf("HTTP Host %s path %s", c.Host, pathOf(c))
	}
	return "TCP"
}

// describeDest is what a sidecar would need registered for the call.
func describeDest(c sim.Call) string {
	switch {
	case c.Protocol == sim.TLS && c.SNI != "":
		return fmt.Sprintf("SNI %q on port %d", c.SNI, c.Port)
	case c.Protocol == sim.HTTP:
		return fmt.Sprintf("host %q on port %d", c.Host, c.Port)
	}
	return fmt.Sprintf("%s:%d", c.Address, c.Port)
}
