package translate

import "strings"

// protocol is an Istio port protocol, upper-cased ("HTTP", "TLS", ...);
// anything Istio does not know is protocolAuto (sniffed).
type protocol string

const (
	protoHTTP     protocol = "HTTP"
	protoHTTP2    protocol = "HTTP2"
	protoHTTPS    protocol = "HTTPS"
	protoGRPC     protocol = "GRPC"
	protoGRPCWeb  protocol = "GRPC-WEB"
	protoHTTPProx protocol = "HTTP_PROXY"
	protoTLS      protocol = "TLS"
	protoTCP      protocol = "TCP"
	protoUDP      protocol = "UDP"
	protoMongo    protocol = "MONGO"
	protoRedis    protocol = "REDIS"
	protoMySQL    protocol = "MYSQL"
	protoAuto     protocol = "UNSUPPORTED"
)

func parseProtocol(s string) protocol {
	switch p := protocol(strings.ToUpper(s)); p {
	case protoHTTP, protoHTTP2, protoHTTPS, protoGRPC, protoGRPCWeb, protoHTTPProx, protoTLS, protoTCP, protoUDP, protoMongo, protoRedis, protoMySQL:
		return p
	}
	return protoAuto
}

// kubePortProtocol derives a Service port's protocol as istiod does: the
// appProtocol field, then the port name's prefix ("http-web", "tls"), then
// the port's own protocol for UDP.
func kubePortProtocol(name string, appProtocol *string, l4 string) protocol {
	if strings.EqualFold(l4, "UDP") {
		return protoUDP
	}
	if appProtocol != nil && *appProtocol != "" {
		ap := strings.ToLower(*appProtocol)
		switch ap {
		case "kubernetes.io/h2c":
			return protoHTTP2
		case "kubernetes.io/ws", "kubernetes.io/wss":
			return protoHTTP
		}
		if p := parseProtocol(ap); p != protoAuto {
			return p
		}
	}
	prefix, _, _ := strings.Cut(name, "-")
	return parseProtocol(prefix)
}

func (p protocol) isHTTP() bool {
	switch p {
	case protoHTTP, protoHTTP2, protoGRPC, protoGRPCWeb, protoHTTPProx:
		return true
	}
	return false
}

func (p protocol) isHTTP2() bool { return p == protoHTTP2 || p == protoGRPC || p == protoGRPCWeb }

func (p protocol) isTLS() bool { return p == protoHTTPS || p == protoTLS }

func (p protocol) isTCP() bool {
	switch p {
	case protoTCP, protoHTTPS, protoTLS, protoMongo, protoRedis, protoMySQL:
		return true
	}
	return false
}
