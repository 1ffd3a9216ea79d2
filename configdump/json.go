package configdump

import (
	"bytes"
	"encoding/json"
	"errors"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/chokepoint-xds/chokepoint/internal/parallel"
	"github.com/chokepoint-xds/chokepoint/translate"
)

// JSON renders Proto(r, version) as indented JSON, the same document
// MarshalJSON(Proto(r, version)) gives, but without packing
// every resource into an Any and unpacking it again, and with the resources
// rendered on every core. It is what `translate -o json` prints.
func JSON(r *translate.Resources, version string) ([]byte, error) {
	var msgs []proto.Message
	for _, c := range r.Clusters {
		msgs = append(msgs, c)
	}
	for _, l := range r.Listeners {
		msgs = append(msgs, l)
	}
	for _, rc := range r.Routes {
		msgs = append(msgs, rc)
	}
	for _, e := range r.Endpoints {
		msgs = append(msgs, e)
	}
	rendered, err := renderAll(msgs)
	if err != nil {
		return nil, err
	}
	w := &dumpWriter{}
	w.b.WriteString("{\n  \"configs\": [")
	i := 0
	take := func(n int) [][]byte { out := rendered[i : i+n]; i += n; return out }

	sections := []struct {
		typ, list, item string
		names           []string // listeners carry their name beside the state
		state           bool
		res             [][]byte
	}{
		{typ: "envoy.admin.v3.ClustersConfigDump", list: "dynamicActiveClusters", item: "cluster", res: take(len(r.Clusters))},
		{typ: "envoy.admin.v3.ListenersConfigDump", list: "dynamicListeners", item: "listener", state: true, names: listenerNames(r), res: take(len(r.Listeners))},
		{typ: "envoy.admin.v3.RoutesConfigDump", list: "dynamicRouteConfigs", item: "routeConfig", res: take(len(r.Routes))},
		{typ: "envoy.admin.v3.EndpointsConfigDump", list: "dynamicEndpointConfigs", item: "endpointConfig", res: take(len(r.Endpoints))},
	}
	for si, s := range sections {
		if si > 0 {
			w.b.WriteByte(',')
		}
		w.b.WriteString("\n    {\n      \"@type\": \"type.googleapis.com/" + s.typ + "\"")
		if version != "" && (s.typ == "envoy.admin.v3.ClustersConfigDump" || s.typ == "envoy.admin.v3.ListenersConfigDump") {
			w.b.WriteString(",\n      \"versionInfo\": " + quote(version))
		}
		if len(s.res) > 0 {
			w.b.WriteString(",\n      \"" + s.list + "\": [")
			for j, res := range s.res {
				if j > 0 {
					w.b.WriteByte(',')
				}
				w.b.WriteString("\n        {")
				indent := "          "
				if s.state {
					w.b.WriteString("\n          \"name\": " + quote(s.names[j]) + ",\n          \"activeState\": {")
					indent = "            "
				}
				first := true
				if version != "" {
					w.b.WriteString("\n" + indent + "\"versionInfo\": " + quote(version))
					first = false
				}
				if !first {
					w.b.WriteByte(',')
				}
				w.b.WriteString("\n" + indent + "\"" + s.item + "\": ")
				w.b.Write(bytes.ReplaceAll(res, []byte("\n"), []byte("\n"+indent)))
				if s.state {
					w.b.WriteString("\n          }")
				}
				w.b.WriteString("\n        }")
			}
			w.b.WriteString("\n      ]")
		}
		w.b.WriteString("\n    }")
	}
	w.b.WriteString("\n  ]\n}\n")
	return w.b.Bytes(), nil
}

type dumpWriter struct{ b bytes.Buffer }

func listenerNames(r *translate.Resources) []string {
	out := make([]string, len(r.Listeners))
	for i, l := range r.Listeners {
		out[i] = l.Name
	}
	return out
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// renderAll renders each message as indented protojson with its "@type"
// first, as inside an Any, on every core.
func renderAll(msgs []proto.Message) ([][]byte, error) {
	out := make([][]byte, len(msgs))
	errs := make([]error, len(msgs))
	opts := protojson.MarshalOptions{Multiline: true, Indent: "  "}
	parallel.For(len(msgs), func(i int) {
		b, err := opts.Marshal(msgs[i])
		if err != nil {
			errs[i] = err
			return
		}
		typ := "{\n  \"@type\": \"type.googleapis.com/" + string(msgs[i].ProtoReflect().Descriptor().FullName()) + "\""
		if len(b) > 2 {
			out[i] = append([]byte(typ+","), b[1:]...)
		} else {
			out[i] = []byte(typ + "\n}")
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
