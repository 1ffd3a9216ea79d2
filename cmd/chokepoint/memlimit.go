package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// cgroupMemoryFiles hold a container's memory limit (cgroup v2, then v1).
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// setMemoryLimit gives the Go runtime a soft memory limit of 90% of the
// container's, unless GOMEMLIMIT is set: without one, the heap may grow to
// twice what is live before a collection, and a push to a large fleet can
// take a pod past its limit (istiod does the same).
func setMemoryLimit(log *zap.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		log.Info("memory limit from GOMEMLIMIT", zap.Int64("bytes", debug.SetMemoryLimit(-1)))
		return
	}
	if limit, file := cgroupMemoryLimit(cgroupMemoryFiles); limit > 0 {
		soft := limit / 10 * 9
		debug.SetMemoryLimit(soft)
		log.Info("memory limit set to 90% of the container's", zap.String("from", file),
			zap.Int64("container_bytes", limit), zap.Int64("soft_limit_bytes", soft))
	}
}

// cgroupMemoryLimit reads the first limit set in files; "max" and v1's
// huge "unlimited" value are no limit.
func cgroupMemoryLimit(files []string) (int64, string) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, f
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0, f
		}
		return n, f
	}
	return 0, ""
}
