package procs

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// memoryAvailable is the memory this process may use: the machine's RAM, or
// its cgroup's limit (cgroup v2 memory.max) when that is lower; 0 when
// unknown.
func memoryAvailable() int64 {
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) != nil {
		return 0
	}
	total := int64(si.Totalram) * int64(si.Unit)
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err == nil && n > 0 && (total <= 0 || n < total) {
			total = n
		}
	}
	return max(total, 0)
}
