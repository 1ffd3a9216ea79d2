package analyze

// Level of a message, as istioctl analyze names them.
type Level string

const (
	Error   Level = "Error"
	Warning Level = "Warning"
	Info    Level = "Info"
)

func (l Level) rank() int {
	switch l {
	case Error:
		return 0
	case Warning:
		return 1
	}
	return 2
}

// Code describes one kind of message: the README's code table is this list.
type Code struct {
	Code string
	Name string
	// Level is the usual level; the few codes whose level depends on the
	// outbound traffic policy say so in Meaning.
	Level   Level
	Meaning string
	Fix     string
}

// The codes. IST codes are istioctl analyze's (pkg/config/analysis/msg),
// used where the meaning is the same; CP codes are chokepoint's own.
var (
	ReferencedResourceNotFound = Code{"IST0101", "ReferencedResourceNotFound", Error,
		"A reference to nothing: a Gateway selector that matches no gateway workload, a VirtualService gateway, destination host, host:port or subset that does not exist. A mesh route to an unregistered host is a Warning under ALLOW_ANY (the call leaves directly) and an Error under REGISTRY_ONLY (it is blackholed).",
		"Fix the name or the labels, or add the missing object (ServiceEntry, DestinationRule subset, Gateway)."}
	SchemaValidationError = Code{"IST0106", "SchemaValidationError", Error,
		"The document or object cannot be read or is invalid (reported by the loader or the translator); it is left out.",
		"Fix the field the message names."}
	ConflictingMeshGatewayVirtualServiceHosts = Code{"IST0109", "ConflictingMeshGatewayVirtualServiceHosts", Error,
		"Several VirtualServices bound to the mesh define the same host: sidecars use one of them.",
		"Merge them into one VirtualService."}
	VirtualServiceHostNotFoundInGateway = Code{"IST0132", "VirtualServiceHostNotFoundInGateway", Warning,
		"None of the VirtualService's hosts is among the hosts of a Gateway it is bound to: that gateway ignores it.",
		"Make the VirtualService hosts and the Gateway server hosts overlap."}
	ConflictingGateways = Code{"IST0145", "ConflictingGateways", Error,
		"Two Gateways select the same gateway workload and declare the same host on the same port.",
		"Keep one server per host and port on a workload (merge the Gateways)."}
	GatewayPortNotDefinedOnService = Code{"IST0162", "GatewayPortNotDefinedOnService", Warning,
		"A Gateway server port is neither a port nor a targetPort of the Service in front of the gateway workload: nothing reaches it.",
		"Use a Service port (istiod listens on its targetPort) or a targetPort, or expose the port in the Service."}
	UnknownDestinationRuleHost = Code{"IST0174", "UnknownDestinationRuleHost", Warning,
		"A DestinationRule's host matches no ServiceEntry or Service: its policy applies to nothing.",
		"Fix the host or add the ServiceEntry."}
	ConflictingServiceEntryProtocol = Code{"IST0177", "ConflictingServiceEntryProtocol", Warning,
		"Several ServiceEntries define the same host and port with different protocols: one of them wins.",
		"Define each host:port once, with one protocol."}

	InputWarning = Code{"CP0001", "InputWarning", Warning,
		"A warning from the loader or the translator: the object is used as istiod would use it, or a feature chokepoint does not translate.",
		"Read the message; it names the field."}
	GatewayServiceNotInInputs = Code{"CP0002", "GatewayServiceNotInInputs", Info,
		"No Service of an Istio gateway workload is in the inputs, so Gateway selectors and server ports cannot be checked.",
		"Add the gateway's Service: kubectl get svc -n istio-system istio-egressgateway -o yaml."}
	SNIHostNotInVirtualService = Code{"CP0003", "SNIHostNotInVirtualService", Error,
		"A tls match sniHost is not one of the VirtualService's hosts: Istio's validation rejects the VirtualService.",
		"Add the host to spec.hosts or fix the sniHost."}
	SNIHostNotInGatewayServer = Code{"CP0004", "SNIHostNotInGatewayServer", Warning,
		"A tls match sniHost is outside the hosts of the PASSTHROUGH Gateway server it binds to: the gateway forwards it anyway.",
		"Add the host to the Gateway server, or remove it from sniHosts."}
	ServiceEntryAddressConflict = Code{"CP0005", "ServiceEntryAddressConflict", Warning,
		"ServiceEntries for different hosts claim the same address and port where one sidecar listener cannot tell them apart (HTTP next to TCP or TLS, two plain TCP hosts): one host gets the other's traffic.",
		"Give each host its own address or port (or TLS, routed by SNI)."}
	EgressGatewayBypassable = Code{"CP0006", "EgressGatewayBypassable", Info,
		"Mesh traffic is routed to an egress gateway while the outbound traffic policy is ALLOW_ANY: anything not routed leaves directly.",
		"Set outboundTrafficPolicy.mode REGISTRY_ONLY (mesh config or a Sidecar)."}
	HTTPRuleForTLSPort = Code{"CP0007", "HTTPRuleForTLSPort", Warning,
		"An http rule of a mesh VirtualService targets a host whose port is TLS or HTTPS: sidecars route that port by SNI and never apply the rule.",
		"Use a tls rule with sniHosts (or originate TLS: HTTP port plus a DestinationRule)."}
	HTTPRuleForPassthroughServer = Code{"CP0008", "HTTPRuleForPassthroughServer", Error,
		"A VirtualService bound to a TLS PASSTHROUGH Gateway server has http rules and no tls rule for it: the gateway builds no filter chain.",
		"Route passthrough servers with tls rules (match sniHosts)."}
	MatchGatewayNotBound = Code{"CP0009", "MatchGatewayNotBound", Warning,
		"A match names a gateway that is not in the VirtualService's spec.gateways: the match never applies there.",
		"Add the gateway to spec.gateways."}
	SidecarHidesDestination = Code{"CP0010", "SidecarHidesDestination", Error,
		"A Sidecar's egress hosts hide a route destination (often the egress gateway Service): the route points at a cluster the proxy does not have.",
		"Add the destination's namespace or host to egress hosts (e.g. istio-system/*)."}
	VirtualServiceHostNotInRegistry = Code{"CP0011", "VirtualServiceHostNotInRegistry", Warning,
		"A mesh VirtualService's host matches no ServiceEntry or Service: sidecars build nothing for it. Warning under ALLOW_ANY (calls leave directly, bypassing it), Error under REGISTRY_ONLY (calls are blackholed).",
		"Add a ServiceEntry for the host."}
	GatewayPortNotServed = Code{"CP0012", "GatewayPortNotServed", Error,
		"A mesh route sends traffic to a gateway Service port whose targetPort no Gateway server of that workload listens on.",
		"Route to the Service port of a Gateway server (e.g. 443 for a server on 443), or add the server."}
)

// Codes lists every code analyze can report, in table order.
var Codes = []Code{
	ReferencedResourceNotFound, SchemaValidationError, ConflictingMeshGatewayVirtualServiceHosts,
	VirtualServiceHostNotFoundInGateway, ConflictingGateways, GatewayPortNotDefinedOnService,
	UnknownDestinationRuleHost, ConflictingServiceEntryProtocol,
	InputWarning, GatewayServiceNotInInputs, SNIHostNotInVirtualService, SNIHostNotInGatewayServer,
	ServiceEntryAddressConflict, EgressGatewayBypassable, HTTPRuleForTLSPort, HTTPRuleForPassthroughServer,
	MatchGatewayNotBound, SidecarHidesDestination, VirtualServiceHostNotInRegistry, GatewayPortNotServed,
}
