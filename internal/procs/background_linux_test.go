package procs

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// niceOf reads the nice value from a thread's /proc stat line.
func niceOf(t *testing.T, b []byte) int {
	t.Helper()
	// The fields after the command, which is in parentheses and may hold
	// spaces: nice is the 19th field of the line, the 17th after it.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n, err := strconv.Atoi(f[16])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// lowered lists the process's threads whose nice value is not 0.
func lowered(t *testing.T) []string {
	t.Helper()
	ds, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		b, err := os.ReadFile("/proc/self/task/" + d.Name() + "/stat")
		if err != nil {
			continue // the thread ended meanwhile
		}
		if niceOf(t, b) != 0 {
			out = append(out, d.Name())
		}
	}
	return out
}

// TestBackgroundLowersItsOwnThreadAlone: the goroutine that calls
// Background runs at backgroundNice on a thread of its own; threads the
// runtime starts while it runs (here for goroutines it starts that block
// in system calls) do not inherit the lower priority; when the goroutine
// ends, its thread ends too (or, if it was the process's main thread,
// which cannot end, the runtime parks it for good).
func TestBackgroundLowersItsOwnThreadAlone(t *testing.T) {
	if l := lowered(t); len(l) != 0 {
		t.Skipf("threads %v already run below nice 0 (the test runs niced)", l)
	}
	type seen struct {
		tid  int
		stat []byte
		err  error
	}
	got, end := make(chan seen), make(chan struct{})
	go func() {
		Background()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { syscall.Nanosleep(&syscall.Timespec{Nsec: 20_000_000}, nil) })
		}
		wg.Wait()
		tid := syscall.Gettid()
		b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/stat")
		got <- seen{tid, b, err}
		<-end
	}()
	s := <-got
	if s.err != nil {
		t.Fatal(s.err)
	}
	if n := niceOf(t, s.stat); n != backgroundNice {
		t.Errorf("the background thread runs at nice %d, want %d", n, backgroundNice)
	}
	if l := lowered(t); len(l) != 1 || l[0] != strconv.Itoa(s.tid) {
		t.Errorf("threads below nice 0: %v, want the background thread %d alone", l, s.tid)
	}
	close(end)
	if s.tid == os.Getpid() {
		return
	}
	for range 100 {
		if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(s.tid)); os.IsNotExist(err) {
			return
		}
		syscall.Nanosleep(&syscall.Timespec{Nsec: 10_000_000}, nil)
	}
	t.Errorf("the background thread %d outlived its goroutine", s.tid)
}
