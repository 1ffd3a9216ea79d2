package translate_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/translate"
)

// A Gateway server's "./host" applies to VirtualServices in the Gateway's
// own namespace, "ns/host" to ns, a bare host to every namespace.
func TestServerHosts(t *testing.T) {
	hosts := []string{"./Own.example.com", "shop/shop.example.com", "all.example.com", "*/any.example.com"}
	require.Equal(t, []string{"own.example.com", "all.example.com", "any.example.com"},
		translate.ServerHosts(hosts, "istio-system", "istio-system"))
	require.Equal(t, []string{"shop.example.com", "all.example.com", "any.example.com"},
		translate.ServerHosts(hosts, "istio-system", "shop"))
}
