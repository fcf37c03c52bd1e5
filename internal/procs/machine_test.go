package procs

import (
	"runtime"
	"testing"
	"time"
)

func TestMachineUse(t *testing.T) {
	c := MachineCPU{Busy: 100, Idle: 300, Steal: 10}
	u := MachineCPU{Busy: 160, Idle: 320, Steal: 30}.Since(c)
	if u.Busy != 0.6 || u.Idle != 0.2 || u.Steal != 0.2 {
		t.Errorf("use %+v, want busy 0.6, idle 0.2, steal 0.2", u)
	}
	if u := c.Since(c); u != (MachineUse{}) {
		t.Errorf("no time passed: %+v, want zero", u)
	}
}

func TestReadMachineCPU(t *testing.T) {
	a, ok := ReadMachineCPU()
	if runtime.GOOS != "linux" {
		if ok {
			t.Fatal("a sample where the system gives none")
		}
		t.Skip("only Linux says")
	}
	if !ok {
		t.Fatal("no sample of /proc/stat")
	}
	// Spin on every core for a few clock ticks (100 a second): the
	// machine's busy time must grow, and never shrink.
	deadline := time.Now().Add(100 * time.Millisecond)
	done := make(chan struct{})
	for range runtime.GOMAXPROCS(0) {
		go func() {
			for time.Now().Before(deadline) {
			}
			done <- struct{}{}
		}()
	}
	for range runtime.GOMAXPROCS(0) {
		<-done
	}
	b, ok := ReadMachineCPU()
	if !ok {
		t.Fatal("no second sample")
	}
	if b.Busy <= a.Busy || b.Idle < a.Idle || b.Steal < a.Steal {
		t.Fatalf("samples went backwards or busy did not grow: %+v then %+v", a, b)
	}
	if u := b.Since(a); u.Busy <= 0 || u.Busy > 1 || u.Busy+u.Idle+u.Steal < 0.999 {
		t.Fatalf("use %+v: busy must be in (0, 1] and the shares sum to 1", u)
	}
}
