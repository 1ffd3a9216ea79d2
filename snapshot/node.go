package snapshot

import (
	"fmt"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/chokepoint-xds/chokepoint/translate"
)

// ProxyFromNode derives a proxy's identity as istiod does: the node ID in
// Istio's form TYPE~IP~POD.NAMESPACE~DOMAIN, and the node metadata's
// NAMESPACE and LABELS (what istio-proxy sends; a hand-written bootstrap
// sets the same keys).
func ProxyFromNode(n *core.Node) (translate.Proxy, error) {
	if n == nil || n.GetId() == "" {
		return translate.Proxy{}, fmt.Errorf("the node has no id: set node.id to TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local in the Envoy bootstrap")
	}
	p, err := translate.ParseNodeID(n.GetId())
	if err != nil {
		return p, err
	}
	md := n.GetMetadata().GetFields()
	if ns := md["NAMESPACE"].GetStringValue(); ns != "" {
		p.Namespace = ns
	}
	p.Labels = map[string]string{}
	for k, v := range md["LABELS"].GetStructValue().GetFields() {
		if _, ok := v.GetKind().(*structpb.Value_StringValue); !ok {
			return p, fmt.Errorf("node %q: metadata LABELS[%q] is not a string", n.GetId(), k)
		}
		p.Labels[k] = v.GetStringValue()
	}
	return p, nil
}
