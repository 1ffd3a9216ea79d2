// Package configdump renders translated resources as Envoy's admin
// ConfigDump (what /config_dump serves), so istioctl proxy-config --file and
// other Envoy tooling read chokepoint's output.
package configdump

import (
	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/chokepoint-xds/chokepoint/translate"
)

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err) // only for a nil or unregistered message: a bug
	}
	return a
}

// ConfigDump renders the resources as Envoy's admin /config_dump does, so
// `istioctl proxy-config ... --file` and Envoy tooling read it.
func Proto(r *translate.Resources, version string) *adminv3.ConfigDump {
	cd := &adminv3.ClustersConfigDump{VersionInfo: version}
	for _, c := range r.Clusters {
		cd.DynamicActiveClusters = append(cd.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: version, Cluster: mustAny(c)})
	}
	ld := &adminv3.ListenersConfigDump{VersionInfo: version}
	for _, l := range r.Listeners {
		ld.DynamicListeners = append(ld.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: l.Name, ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: version, Listener: mustAny(l)},
		})
	}
	rd := &adminv3.RoutesConfigDump{}
	for _, rc := range r.Routes {
		rd.DynamicRouteConfigs = append(rd.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: version, RouteConfig: mustAny(rc)})
	}
	ed := &adminv3.EndpointsConfigDump{}
	for _, e := range r.Endpoints {
		ed.DynamicEndpointConfigs = append(ed.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: version, EndpointConfig: mustAny(e)})
	}
	return &adminv3.ConfigDump{Configs: []*anypb.Any{mustAny(cd), mustAny(ld), mustAny(rd), mustAny(ed)}}
}

// MarshalJSON renders m as indented protojson (Envoy's /config_dump shape).
func MarshalJSON(m proto.Message) ([]byte, error) {
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// MarshalYAML renders m as YAML (keys sorted), the form of golden files.
func MarshalYAML(m proto.Message) ([]byte, error) {
	js, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(js)
}
