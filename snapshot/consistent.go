package snapshot

import (
	"fmt"
	"sort"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/chokepoint-xds/chokepoint/translate"
)

const hcmTypeURL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// consistent applies go-control-plane's snapshot consistency rule: the
// endpoints resources are exactly the EDS clusters' service names, and the
// route configurations exactly the names listeners ask RDS for. (Its own
// Snapshot.Consistent unmarshals every network filter as an HTTP
// connection manager to find the RDS names; with thousands of TCP proxy
// chains that was a large part of a build. Only HTTP connection managers
// are decoded here.)
func consistent(res *translate.Resources) error {
	eds := map[string]bool{}
	for _, c := range res.Clusters {
		if c.GetType() != cluster.Cluster_EDS {
			continue
		}
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.GetName()
		}
		eds[name] = true
	}
	rds := map[string]bool{}
	chains := func(fcs ...*listener.FilterChain) error {
		for _, fc := range fcs {
			for _, f := range fc.GetFilters() {
				tc := f.GetTypedConfig()
				if tc.GetTypeUrl() != hcmTypeURL {
					continue
				}
				m := &hcm.HttpConnectionManager{}
				if err := proto.Unmarshal(tc.GetValue(), m); err != nil {
					return fmt.Errorf("filter %s: %w", f.GetName(), err)
				}
				if n := m.GetRds().GetRouteConfigName(); n != "" {
					rds[n] = true
				}
			}
		}
		return nil
	}
	for _, l := range res.Listeners {
		if err := chains(l.GetFilterChains()...); err != nil {
			return fmt.Errorf("listener %s: %w", l.GetName(), err)
		}
		if err := chains(l.GetDefaultFilterChain()); err != nil {
			return fmt.Errorf("listener %s: %w", l.GetName(), err)
		}
	}
	var cla, routes []string
	for _, e := range res.Endpoints {
		cla = append(cla, e.GetClusterName())
	}
	for _, r := range res.Routes {
		routes = append(routes, r.GetName())
	}
	if err := sameSet("endpoints", eds, cla); err != nil {
		return err
	}
	return sameSet("route configurations", rds, routes)
}

// sameSet reports the difference between the names referenced and the
// resources there are.
func sameSet(kind string, referenced map[string]bool, have []string) error {
	var missing, extra []string
	seen := make(map[string]bool, len(have))
	for _, n := range have {
		seen[n] = true
		if !referenced[n] {
			extra = append(extra, n)
		}
	}
	for n := range referenced {
		if !seen[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return nil
	}
	sort.Strings(missing)
	sort.Strings(extra)
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "referenced but missing: "+strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		parts = append(parts, "not referenced: "+strings.Join(extra, ", "))
	}
	return fmt.Errorf("%s %s", kind, strings.Join(parts, "; "))
}
