package configdump_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/configdump"
	"github.com/chokepoint-xds/chokepoint/test/scenarios"
	"github.com/chokepoint-xds/chokepoint/translate"
)

// TestJSON checks the parallel JSON rendering against protojson's rendering
// of the ConfigDump proto, for every proxy of every translation scenario.
func TestJSON(t *testing.T) {
	for _, dir := range scenarios.Names(t) {
		sc, in := scenarios.Load(t, dir)
		idx := translate.NewIndex(in)
		for pn := range sc.Proxies {
			p := sc.Proxy(t, pn)
			res := idx.Translate(p)
			for _, version := range []string{"", "v42"} {
				fast, err := configdump.JSON(res, version)
				require.NoError(t, err)
				slow, err := configdump.MarshalJSON(configdump.Proto(res, version))
				require.NoError(t, err)
				var a, b any
				require.NoError(t, json.Unmarshal(fast, &a), "%s/%s: invalid JSON:\n%s", dir, pn, fast)
				require.NoError(t, json.Unmarshal(slow, &b))
				require.Equal(t, b, a, "%s/%s version %q", dir, pn, version)
			}
		}
	}
}
