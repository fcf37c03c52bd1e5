//go:build !linux

package procs

func readMachineCPU() (MachineCPU, bool) { return MachineCPU{}, false }
