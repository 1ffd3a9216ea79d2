package translate_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chokepoint-xds/chokepoint/translate"
)

// TestConfigDumpJSON checks the fast JSON rendering against protojson's
// rendering of the ConfigDump proto, for every scenario proxy.
func TestConfigDumpJSON(t *testing.T) {
	for _, name := range scenarioNames(t) {
		sc, idx := loadScenario(t, name)
		for pn, spec := range sc.Proxies {
			res := idx.Translate(proxyOf(t, spec.Node, spec.Labels))
			for _, version := range []string{"", "v42"} {
				fast, err := res.ConfigDumpJSON(version)
				require.NoError(t, err)
				slow, err := translate.MarshalJSON(res.ConfigDump(version))
				require.NoError(t, err)
				var a, b any
				require.NoError(t, json.Unmarshal(fast, &a), "%s/%s: invalid JSON:\n%s", name, pn, fast)
				require.NoError(t, json.Unmarshal(slow, &b))
				require.Equal(t, b, a, "%s/%s version %q", name, pn, version)
			}
		}
	}
}
