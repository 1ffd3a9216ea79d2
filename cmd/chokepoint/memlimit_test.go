package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCgroupMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
		return p
	}
	v2 := write("memory.max", "536870912\n")
	v1 := write("limit_in_bytes", "268435456\n")
	unlimitedV2 := write("max", "max\n")
	unlimitedV1 := write("v1max", "9223372036854771712\n")
	missing := filepath.Join(dir, "none")

	n, f := cgroupMemoryLimit([]string{missing, v2, v1})
	require.Equal(t, int64(512<<20), n)
	require.Equal(t, v2, f)
	n, _ = cgroupMemoryLimit([]string{missing, v1})
	require.Equal(t, int64(256<<20), n)
	n, _ = cgroupMemoryLimit([]string{unlimitedV2, v1})
	require.Zero(t, n, "v2 says no limit: v1 is not read")
	n, _ = cgroupMemoryLimit([]string{unlimitedV1})
	require.Zero(t, n)
	n, f = cgroupMemoryLimit([]string{missing})
	require.Zero(t, n)
	require.Empty(t, f)
}
