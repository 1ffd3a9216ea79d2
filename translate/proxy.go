package translate

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// NodeType is the first field of an Istio node ID.
type NodeType string

const (
	// Sidecar is a workload's sidecar proxy: its outbound path is translated.
	Sidecar NodeType = "sidecar"
	// Router is a gateway (ingress or egress): it gets the Gateways whose
	// selector matches its labels.
	Router NodeType = "router"
)

// Proxy is the identity of one Envoy, as istiod derives it from the node.
type Proxy struct {
	Type      NodeType
	IP        string
	ID        string // POD.NAMESPACE
	Namespace string
	DNSDomain string // NAMESPACE.svc.cluster.local
	Labels    map[string]string
}

// ParseNodeID parses Istio's node ID form TYPE~IP~POD.NAMESPACE~DOMAIN.
// The namespace comes from the POD.NAMESPACE part; metadata may override it.
func ParseNodeID(id string) (Proxy, error) {
	parts := strings.Split(id, "~")
	if len(parts) != 4 {
		return Proxy{}, fmt.Errorf("node ID %q: want TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local (4 parts separated by ~), got %d part(s)", id, len(parts))
	}
	p := Proxy{Type: NodeType(parts[0]), IP: parts[1], ID: parts[2], DNSDomain: parts[3]}
	switch p.Type {
	case Sidecar, Router:
	default:
		return Proxy{}, fmt.Errorf("node ID %q: unknown proxy type %q (want sidecar or router)", id, parts[0])
	}
	if p.IP != "" {
		if _, err := netip.ParseAddr(p.IP); err != nil {
			return Proxy{}, fmt.Errorf("node ID %q: %q is not an IP address", id, p.IP)
		}
	}
	if i := strings.Index(p.ID, "."); i > 0 && i < len(p.ID)-1 {
		p.Namespace = p.ID[i+1:]
	} else if i := strings.Index(p.DNSDomain, "."); i > 0 {
		p.Namespace = p.DNSDomain[:i]
	}
	if p.Namespace == "" {
		return Proxy{}, fmt.Errorf("node ID %q: no namespace in %q (want POD.NAMESPACE)", id, parts[2])
	}
	if p.DNSDomain == "" {
		p.DNSDomain = p.Namespace + ".svc.cluster.local"
	}
	return p, nil
}

// ParseLabels parses "k=v,k2=v2".
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// String is the node ID back.
func (p Proxy) String() string {
	return string(p.Type) + "~" + p.IP + "~" + p.ID + "~" + p.DNSDomain
}

// ClassKey identifies the proxy's effective inputs apart from the config: two
// proxies with the same key get the same resources.
func (p Proxy) ClassKey() string {
	keys := make([]string, 0, len(p.Labels))
	for k := range p.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(string(p.Type))
	b.WriteByte('|')
	b.WriteString(p.Namespace)
	b.WriteByte('|')
	b.WriteString(p.DNSDomain)
	for _, k := range keys {
		b.WriteByte('|')
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(p.Labels[k])
	}
	return b.String()
}

// FormatLabels is ParseLabels' inverse: "k=v,k2=v2", sorted by key.
func FormatLabels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + l[k]
	}
	return strings.Join(keys, ",")
}

// LabelsMatch reports whether labels carry every key=value of selector, as
// a workload selector matches.
func LabelsMatch(selector, labels map[string]string) bool { return labelsMatch(selector, labels) }

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}
