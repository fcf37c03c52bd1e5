package procs

import (
	"bytes"
	"os"
	"strconv"
)

// readMachineCPU reads the first line of /proc/stat: "cpu" and then the
// ticks spent in user, nice, system, idle, iowait, irq, softirq, steal,
// guest and guest_nice. Guest time is already counted in user and nice.
func readMachineCPU() (MachineCPU, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return MachineCPU{}, false
	}
	var t [8]int64
	for i := range t {
		if t[i], err = strconv.ParseInt(string(f[1+i]), 10, 64); err != nil {
			return MachineCPU{}, false
		}
	}
	return MachineCPU{
		Busy:  t[0] + t[1] + t[2] + t[5] + t[6],
		Idle:  t[3] + t[4],
		Steal: t[7],
	}, true
}
