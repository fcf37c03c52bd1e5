//go:build !linux

package procs

func background() {}
