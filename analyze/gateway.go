package analyze

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/translate"
)

func (a *analyzer) gateways() {
	for _, gw := range a.in.Gateways {
		if a.rejected[gw.KindName()] || len(gw.Spec.Selector) == 0 {
			continue
		}
		sel := translate.FormatLabels(gw.Spec.Selector)
		if len(a.gwServices) == 0 {
			a.report(GatewayServiceNotInInputs, Info, gw, "spec.selector",
				"Nothing is wrong yet, but a selector or port mistake here would make traffic silently not flow and go unnoticed by analyze.",
				"no Service of a gateway workload in the inputs: selector %s and the server ports are not checked (add the gateway's Service to check them)", sel)
			continue
		}
		svcs := a.gatewayWorkloads(gw)
		if len(svcs) == 0 {
			var known []string
			for _, s := range a.gwServices {
				known = append(known, fmt.Sprintf("%s selects %s", s.obj.KindName(), translate.FormatLabels(s.kube.Spec.Selector)))
			}
			a.report(ReferencedResourceNotFound, Error, gw, "spec.selector",
				"No error anywhere, traffic just does not flow: no gateway proxy picks up this Gateway, so it gets no listener for these servers and the VirtualServices bound to it route nothing.",
				"Referenced selector not found: %q matches no gateway workload (%s)", sel, strings.Join(known, "; "))
			continue
		}
		a.gatewayPorts(gw, svcs)
	}
	a.conflictingGateways()
}

// gatewayPorts: each server port must be a port or a targetPort of a
// Service in front of the workload (IST0162).
func (a *analyzer) gatewayPorts(gw *inputs.Gateway, svcs []*service) {
	reachable := map[uint32]bool{}
	var svcPorts, targets []string
	var names []string
	for _, s := range svcs {
		names = append(names, fmt.Sprintf("%s (ports %s)", s.obj.KindName(), s.portList()))
		for _, p := range s.ports {
			if p.protocol == "UDP" {
				continue
			}
			reachable[p.number] = true
			svcPorts = append(svcPorts, strconv.Itoa(int(p.number)))
			if wp := p.workloadPort(); wp != 0 {
				reachable[wp] = true
				targets = append(targets, strconv.Itoa(int(wp)))
			}
		}
	}
	for i, s := range gw.Spec.Servers {
		n := s.GetPort().GetNumber()
		if n == 0 || reachable[n] {
			continue
		}
		a.report(GatewayPortNotDefinedOnService, Warning, gw, fmt.Sprintf("spec.servers[%d].port.number", i),
			fmt.Sprintf("The gateway proxy listens on %d (listener 0.0.0.0_%d), but no Service port forwards there: clients going through the gateway Service never reach this server (connection refused, curl 000), with no error anywhere.", n, n),
			"server port %d is not exposed by %s: use a Service port (%s; istiod listens on its targetPort) or a targetPort (%s)",
			n, strings.Join(names, ", "), strings.Join(dedupe(svcPorts), ", "), strings.Join(dedupe(targets), ", "))
	}
}

// conflictingGateways: two Gateways on one workload with the same host on
// the same (resolved) port (IST0145), reported on the newer one, which is
// the one istiod drops for TLS servers.
func (a *analyzer) conflictingGateways() {
	type claim struct {
		gw     *inputs.Gateway
		server int
		tls    bool
	}
	type workload struct {
		name string
		svcs []*service
		gws  []*inputs.Gateway
	}
	var wls []*workload
	seen := map[string]*workload{}
	for _, gw := range a.in.Gateways {
		if a.rejected[gw.KindName()] || len(gw.Spec.Selector) == 0 {
			continue
		}
		svcs := a.gatewayWorkloads(gw)
		if len(svcs) == 0 {
			// Without the gateway's Service, Gateways with the same selector
			// are taken to select the same workload.
			k := "selector " + translate.FormatLabels(gw.Spec.Selector)
			if seen[k] == nil {
				seen[k] = &workload{name: k}
				wls = append(wls, seen[k])
			}
			seen[k].gws = append(seen[k].gws, gw)
			continue
		}
		for _, s := range svcs {
			k := s.namespace + "|" + translate.FormatLabels(s.kube.Spec.Selector)
			if seen[k] == nil {
				seen[k] = &workload{name: "the workload of " + s.obj.KindName(), svcs: a.gatewayWorkloadsAll(s)}
				wls = append(wls, seen[k])
			}
			seen[k].gws = append(seen[k].gws, gw)
		}
	}
	reported := map[string]bool{}
	for _, wl := range wls {
		gws := append([]*inputs.Gateway(nil), wl.gws...)
		sort.SliceStable(gws, func(i, j int) bool { return inputs.Older(gws[i], gws[j]) })
		claims := map[string]claim{} // port|host -> first claim
		for _, gw := range gws {
			for i, s := range gw.Spec.Servers {
				if s.Port == nil {
					continue
				}
				port := resolvePort(s.Port.Number, wl.svcs)
				var dup []string
				var with []string
				for _, h := range s.Hosts {
					_, name := splitHost(h)
					k := strconv.Itoa(int(port)) + "|" + strings.ToLower(name)
					c, ok := claims[k]
					if !ok {
						claims[k] = claim{gw: gw, server: i, tls: isTLSServer(s)}
						continue
					}
					if c.gw != gw {
						dup = append(dup, name)
						with = append(with, c.gw.KindName())
					}
				}
				field := fmt.Sprintf("spec.servers[%d].hosts", i)
				if len(dup) == 0 || reported[gw.KindName()+field] {
					continue
				}
				reported[gw.KindName()+field] = true
				consequence := "istiod keeps the older Gateway's server and skips this one on that port: the VirtualServices bound to this Gateway get no traffic there for these hosts."
				if !isTLSServer(s) {
					consequence = fmt.Sprintf("Both servers share the gateway's route config http.%d: for these hosts the routes of the VirtualServices bound to each Gateway are merged and the first match wins, so which one answers depends on their order.", port)
				}
				portText := strconv.Itoa(int(s.Port.Number))
				if port != s.Port.Number {
					portText += fmt.Sprintf(" (workload port %d)", port)
				}
				a.report(ConflictingGateways, Error, gw, field, consequence,
					"Conflict with gateways %s (%s, port %s, hosts %s)",
					strings.Join(dedupe(with), ", "), wl.name, portText, quoteList(dup))
			}
		}
	}
}

// isTLSServer is istiod's gateway.IsTLSServer: TLS settings on a server
// whose protocol is not plain HTTP.
func isTLSServer(s *networking.Server) bool {
	return s.Tls != nil && !isHTTPProtocol(strings.ToUpper(s.GetPort().GetProtocol()))
}

func splitHost(h string) (string, string) {
	if ns, name, ok := strings.Cut(h, "/"); ok {
		return ns, name
	}
	return "", h
}

// gatewayProxyProblems translates the config of every gateway workload in
// the inputs (a router proxy carrying the workload's labels) and returns
// what the translator reports for it: ports two servers cannot share,
// servers no route binds to, duplicate SNI chains.
func (a *analyzer) gatewayProxyProblems(idx *translate.Index) []inputs.Problem {
	var out []inputs.Problem
	for _, s := range a.gwServices {
		if len(a.gatewaysOn(s)) == 0 {
			continue
		}
		name := strings.TrimSuffix(s.host, ".svc.cluster.local")
		p := translate.Proxy{Type: translate.Router, ID: name, Namespace: s.namespace,
			DNSDomain: s.namespace + ".svc.cluster.local", Labels: s.workload}
		out = append(out, idx.Translate(p).Problems...)
	}
	return out
}
