package translate

import (
	"sort"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

const maxDirectResponseBody = 1024 * 1024

// buildSidecarRoutes renders one route config per HTTP listener: a virtual
// host per service (or VirtualService host) on that port, then allow_any or
// block_all.
func (t *translation) buildSidecarRoutes() {
	names := dedupe(t.httpRoutes)
	sort.Strings(names)
	for _, name := range names {
		t.out.Routes = append(t.out.Routes, t.sidecarRouteConfig(name))
	}
}

func (t *translation) sidecarRouteConfig(name string) *route.RouteConfiguration {
	portStr := name
	sniffedHost := ""
	if i := strings.LastIndex(name, ":"); i >= 0 {
		sniffedHost, portStr = name[:i], name[i+1:]
	}
	p64, _ := strconv.ParseUint(portStr, 10, 32)
	port := uint32(p64)
	vhosts := t.sidecarVirtualHosts(port)
	rc := &route.RouteConfiguration{
		Name:                           name,
		ValidateClusters:               wrapperspb.Bool(false),
		MaxDirectResponseBodySizeBytes: wrapperspb.UInt32(maxDirectResponseBody),
		IgnorePortInHostMatching:       true,
	}
	if sniffedHost != "" {
		for _, vh := range vhosts {
			if contains(vh.Domains, sniffedHost) {
				vh.Domains = []string{"*"}
				rc.VirtualHosts = []*route.VirtualHost{vh}
				break
			}
		}
		return rc
	}
	rc.VirtualHosts = append(vhosts, t.catchAllVirtualHost())
	return rc
}

func (t *translation) catchAllVirtualHost() *route.VirtualHost {
	if t.sc.registryOnly {
		return &route.VirtualHost{Name: blockAllVHost, Domains: []string{"*"}, Routes: []*route.Route{{
			Name:   blockAllVHost,
			Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 502}},
		}}}
	}
	return &route.VirtualHost{Name: allowAnyVHost, Domains: []string{"*"}, Routes: []*route.Route{{
		Name:  allowAnyVHost,
		Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
		Action: &route.Route_Route{Route: &route.RouteAction{
			ClusterSpecifier: &route.RouteAction_Cluster{Cluster: PassthroughCluster},
			Timeout:          zeroDuration,
			MaxGrpcTimeout:   zeroDuration,
		}},
	}}}
}

// sidecarVirtualHosts follows istiod's BuildSidecarOutboundVirtualHosts for
// one port: VirtualServices first (their hosts that name no service become
// virtual hosts of their own), then a default route for every other
// service with the port.
func (t *translation) sidecarVirtualHosts(port uint32) []*route.VirtualHost {
	byHost := map[string]*service{}
	var hosts []string
	for _, svc := range t.sc.services {
		if p := svc.port(port); p != nil && p.protocol != protoUDP {
			if _, ok := byHost[svc.hostname]; !ok {
				hosts = append(hosts, svc.hostname)
				byHost[svc.hostname] = svc
			}
		}
	}
	covered := map[string]bool{}
	seenDomain := map[string]bool{}
	seenVH := map[string]bool{}
	var out []*route.VirtualHost
	mesh := map[string]bool{meshGateway: true}
	add := func(host string, svc *service, routes []*route.Route) {
		name := host + ":" + strconv.FormatUint(uint64(port), 10)
		if seenVH[name] {
			return
		}
		seenVH[name] = true
		domains := []string{host}
		if svc != nil {
			domains = append(domains, altHosts(host, t.proxy.DNSDomain)...)
			if svc.address != unspecifiedIP && !strings.Contains(svc.address, "/") {
				domains = append(domains, svc.address)
			}
		}
		var keep []string
		for _, d := range domains {
			if !seenDomain[d] {
				seenDomain[d] = true
				keep = append(keep, d)
			}
		}
		if len(keep) == 0 {
			return
		}
		out = append(out, &route.VirtualHost{Name: name, Domains: keep, Routes: routes})
	}
	for _, vs := range t.sc.meshVS {
		if len(vs.spec.Http) == 0 {
			continue
		}
		var vsHosts []string
		var svcs []*service
		for _, h := range vs.hosts {
			if !isWildcard(h) {
				if s := byHost[h]; s != nil {
					svcs = append(svcs, s)
				} else {
					vsHosts = append(vsHosts, h)
				}
				continue
			}
			found := false
			for _, sh := range hosts {
				if hostSubsetOf(sh, h) {
					svcs = append(svcs, byHost[sh])
					found = true
				}
			}
			if !found {
				vsHosts = append(vsHosts, h)
			}
		}
		// On ports other than 80, a VirtualService only counts when it
		// names a service with the port.
		if port != 80 && len(svcs) == 0 {
			continue
		}
		routes := t.httpRoutes_(vs, port, mesh)
		if len(routes) == 0 {
			continue
		}
		for _, h := range vsHosts {
			add(h, nil, routes)
		}
		for _, s := range svcs {
			if covered[s.hostname] {
				continue
			}
			covered[s.hostname] = true
			add(s.hostname, s, routes)
		}
	}
	for _, h := range hosts {
		if covered[h] {
			continue
		}
		cluster := clusterName(port, "", h)
		add(h, byHost[h], []*route.Route{{
			Name:  "default",
			Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			Action: &route.Route_Route{Route: &route.RouteAction{
				ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cluster},
				Timeout:          zeroDuration,
				RetryPolicy:      defaultRetryPolicy(),
				MaxGrpcTimeout:   zeroDuration,
			}},
		}})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// httpRoutes_ translates a VirtualService's http rules for one port and
// gateway set, as istiod's BuildHTTPRoutesForVirtualService: a rule without
// match (or with a match-all) ends the list.
func (t *translation) httpRoutes_(vs *vsEntry, port uint32, gateways map[string]bool) []*route.Route {
	var out []*route.Route
	for i, rule := range vs.spec.Http {
		if len(rule.Match) == 0 {
			if r := t.httpRoute(vs, i, rule, nil, port); r != nil {
				out = append(out, r)
			}
			break
		}
		catchAll := false
		for _, m := range rule.Match {
			if m.Port != 0 && m.Port != port {
				continue
			}
			if len(m.Gateways) > 0 {
				ok := false
				for _, g := range m.Gateways {
					if gateways[vs.gatewayOf(t.x, g)] {
						ok = true
					}
				}
				if !ok {
					continue
				}
			}
			if !labelsMatch(m.SourceLabels, t.proxy.Labels) || (m.SourceNamespace != "" && m.SourceNamespace != t.proxy.Namespace) {
				continue
			}
			if r := t.httpRoute(vs, i, rule, m, port); r != nil {
				out = append(out, r)
				if isCatchAll(m) {
					catchAll = true
					break
				}
			}
		}
		if catchAll {
			break
		}
	}
	return out
}

func isCatchAll(m *networking.HTTPMatchRequest) bool {
	if m == nil {
		return true
	}
	if len(m.Headers) > 0 || len(m.QueryParams) > 0 || len(m.WithoutHeaders) > 0 || m.Method != nil || m.Authority != nil || m.Scheme != nil {
		return false
	}
	if m.Uri == nil {
		return true
	}
	switch u := m.Uri.MatchType.(type) {
	case *networking.StringMatch_Prefix:
		return u.Prefix == "/"
	case *networking.StringMatch_Regex:
		return u.Regex == "*" || u.Regex == ".*"
	}
	return false
}

func (t *translation) httpRoute(vs *vsEntry, idx int, rule *networking.HTTPRoute, m *networking.HTTPMatchRequest, port uint32) *route.Route {
	r := &route.Route{Name: rule.Name, Match: translateMatch(m), Metadata: vs.meta}
	if m != nil && m.Name != "" {
		if r.Name != "" {
			r.Name += "." + m.Name
		} else {
			r.Name = m.Name
		}
	}
	switch {
	case rule.Redirect != nil:
		r.Action = &route.Route_Redirect{Redirect: translateRedirect(rule.Redirect)}
	case rule.DirectResponse != nil:
		dr := &route.DirectResponseAction{Status: rule.DirectResponse.Status}
		if b := rule.DirectResponse.Body; b != nil {
			switch x := b.Specifier.(type) {
			case *networking.HTTPBody_String_:
				dr.Body = &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: x.String_}}
			case *networking.HTTPBody_Bytes:
				dr.Body = &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: x.Bytes}}
			}
		}
		r.Action = &route.Route_DirectResponse{DirectResponse: dr}
	default:
		r.Action = &route.Route_Route{Route: t.routeAction(vs, rule, port)}
	}
	if h := rule.Headers; h != nil {
		if rq := h.Request; rq != nil {
			r.RequestHeadersToAdd = headerValues(rq.Set, true)
			r.RequestHeadersToAdd = append(r.RequestHeadersToAdd, headerValues(rq.Add, false)...)
			r.RequestHeadersToRemove = rq.Remove
		}
		if rs := h.Response; rs != nil {
			r.ResponseHeadersToAdd = headerValues(rs.Set, true)
			r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, headerValues(rs.Add, false)...)
			r.ResponseHeadersToRemove = rs.Remove
		}
	}
	return r
}

func headerValues(m map[string]string, overwrite bool) []*core.HeaderValueOption {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []*core.HeaderValueOption
	for _, k := range keys {
		action := core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		if overwrite {
			action = core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		}
		out = append(out, &core.HeaderValueOption{Header: &core.HeaderValue{Key: k, Value: m[k]}, AppendAction: action})
	}
	return out
}

func (t *translation) routeAction(vs *vsEntry, rule *networking.HTTPRoute, port uint32) *route.RouteAction {
	a := &route.RouteAction{Timeout: zeroDuration, MaxGrpcTimeout: zeroDuration}
	if rule.Timeout != nil {
		a.Timeout, a.MaxGrpcTimeout = rule.Timeout, rule.Timeout
	}
	a.RetryPolicy = retryPolicy(rule.Retries)
	var ws []*route.WeightedCluster_ClusterWeight
	for _, d := range rule.Route {
		name := t.destinationCluster(t.x.destRefOf(d.Destination, d.Weight, vs.obj.Namespace), port)
		if len(rule.Route) > 1 && d.Weight <= 0 {
			continue
		}
		ws = append(ws, &route.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(uint32(max(d.Weight, 1)))})
	}
	if len(ws) == 1 {
		a.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: ws[0].Name}
	} else {
		a.ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: &route.WeightedCluster{Clusters: ws}}
	}
	if rw := rule.Rewrite; rw != nil {
		if rw.Uri != "" {
			a.PrefixRewrite = rw.Uri
		}
		if rw.Authority != "" {
			a.HostRewriteSpecifier = &route.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Authority}
		}
		if rr := rw.UriRegexRewrite; rr != nil {
			a.RegexRewrite = &matcher.RegexMatchAndSubstitute{
				Pattern:      &matcher.RegexMatcher{Regex: rr.Match},
				Substitution: rr.Rewrite,
			}
		}
	}
	return a
}

// defaultRetryPolicy is istiod's: two attempts on connection failures.
func defaultRetryPolicy() *route.RetryPolicy {
	return &route.RetryPolicy{
		RetryOn:    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		NumRetries: wrapperspb.UInt32(2),
		RetryHostPredicate: []*route.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &route.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushosts.PreviousHostsPredicate{})},
		}},
		HostSelectionRetryMaxAttempts: 5,
	}
}

func retryPolicy(r *networking.HTTPRetry) *route.RetryPolicy {
	if r == nil {
		return defaultRetryPolicy()
	}
	if r.Attempts == 0 {
		return nil
	}
	p := defaultRetryPolicy()
	p.NumRetries = wrapperspb.UInt32(uint32(r.Attempts))
	if r.RetryOn != "" {
		var on []string
		for _, s := range strings.Split(r.RetryOn, ",") {
			s = strings.TrimSpace(s)
			if _, err := strconv.Atoi(s); err == nil {
				continue
			}
			on = append(on, s)
		}
		p.RetryOn = strings.Join(on, ",")
		for _, s := range strings.Split(r.RetryOn, ",") {
			if code, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
				p.RetriableStatusCodes = append(p.RetriableStatusCodes, uint32(code))
			}
		}
		if len(p.RetriableStatusCodes) > 0 && !strings.Contains(p.RetryOn, "retriable-status-codes") {
			p.RetryOn += ",retriable-status-codes"
		}
		p.RetryOn = strings.TrimPrefix(p.RetryOn, ",")
	}
	if r.PerTryTimeout != nil {
		p.PerTryTimeout = r.PerTryTimeout
	}
	return p
}

func translateRedirect(rd *networking.HTTPRedirect) *route.RedirectAction {
	a := &route.RedirectAction{}
	if rd.Uri != "" {
		a.PathRewriteSpecifier = &route.RedirectAction_PathRedirect{PathRedirect: rd.Uri}
	}
	if rd.Authority != "" {
		a.HostRedirect = rd.Authority
	}
	if rd.Scheme != "" {
		a.SchemeRewriteSpecifier = &route.RedirectAction_SchemeRedirect{SchemeRedirect: rd.Scheme}
	}
	if p, ok := rd.RedirectPort.(*networking.HTTPRedirect_Port); ok && p.Port != 0 {
		a.PortRedirect = p.Port
	}
	switch rd.RedirectCode {
	case 0, 301:
		a.ResponseCode = route.RedirectAction_MOVED_PERMANENTLY
	case 302:
		a.ResponseCode = route.RedirectAction_FOUND
	case 303:
		a.ResponseCode = route.RedirectAction_SEE_OTHER
	case 307:
		a.ResponseCode = route.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		a.ResponseCode = route.RedirectAction_PERMANENT_REDIRECT
	}
	return a
}

func translateMatch(m *networking.HTTPMatchRequest) *route.RouteMatch {
	rm := &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return rm
	}
	if m.IgnoreUriCase {
		rm.CaseSensitive = wrapperspb.Bool(false)
	}
	if m.Uri != nil {
		switch u := m.Uri.MatchType.(type) {
		case *networking.StringMatch_Exact:
			rm.PathSpecifier = &route.RouteMatch_Path{Path: u.Exact}
		case *networking.StringMatch_Prefix:
			rm.PathSpecifier = &route.RouteMatch_Prefix{Prefix: u.Prefix}
		case *networking.StringMatch_Regex:
			rm.PathSpecifier = &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: u.Regex}}
		}
	}
	names := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		rm.Headers = append(rm.Headers, headerMatcher(k, m.Headers[k], false))
	}
	names = names[:0]
	for k := range m.WithoutHeaders {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		rm.Headers = append(rm.Headers, headerMatcher(k, m.WithoutHeaders[k], true))
	}
	if m.Authority != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":authority", m.Authority, false))
	}
	if m.Method != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":method", m.Method, false))
	}
	if m.Scheme != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":scheme", m.Scheme, false))
	}
	names = names[:0]
	for k := range m.QueryParams {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		rm.QueryParameters = append(rm.QueryParameters, &route.QueryParameterMatcher{
			Name: k, QueryParameterMatchSpecifier: &route.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(m.QueryParams[k])},
		})
	}
	return rm
}

func stringMatcher(s *networking.StringMatch) *matcher.StringMatcher {
	switch x := s.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: x.Exact}}
	case *networking.StringMatch_Prefix:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: x.Prefix}}
	case *networking.StringMatch_Regex:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: x.Regex}}}
	}
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: ""}}
}

func headerMatcher(name string, s *networking.StringMatch, invert bool) *route.HeaderMatcher {
	h := &route.HeaderMatcher{Name: name, InvertMatch: invert}
	if s == nil || s.GetMatchType() == nil {
		h.HeaderMatchSpecifier = &route.HeaderMatcher_PresentMatch{PresentMatch: true}
		return h
	}
	h.HeaderMatchSpecifier = &route.HeaderMatcher_StringMatch{StringMatch: stringMatcher(s)}
	return h
}
