package configdump_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/chokepoint-xds/chokepoint/configdump"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

// TestJSON checks the parallel JSON rendering against protojson's rendering
// of the ConfigDump proto, for every proxy of every translation scenario.
func TestJSON(t *testing.T) {
	dirs, err := filepath.Glob("../translate/testdata/in/*")
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, "expect.yaml"))
		require.NoError(t, err)
		var sc struct {
			Proxies map[string]struct {
				Node   string            `json:"node"`
				Labels map[string]string `json:"labels"`
			} `json:"proxies"`
		}
		require.NoError(t, yaml.Unmarshal(raw, &sc))
		in, _, err := watch.Load(watch.LoadOptions{Paths: []string{filepath.Join(dir, "config")}})
		require.NoError(t, err)
		idx := translate.NewIndex(in)
		for pn, spec := range sc.Proxies {
			p, err := translate.ParseNodeID(spec.Node)
			require.NoError(t, err)
			p.Labels = spec.Labels
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
