package procs

import (
	"runtime"
	"syscall"
)

// backgroundNice is the nice value of a Background thread: the lowest
// priority there is. At nice 10 the audit log's mover still took enough
// of a busy machine to leave issue 2's tail where it was; at 19 it runs
// almost only in the time requests leave idle (docs/BENCHMARKS.md).
const backgroundNice = 19

func background() {
	// Locked first: the runtime never starts new threads from a locked
	// one (they would inherit its priority), and the thread ends with the
	// goroutine rather than serving others.
	runtime.LockOSThread()
	// A Linux thread has a nice value of its own, and setpriority given a
	// thread id sets that thread's alone. A failure (a sandbox refusing
	// the call) leaves the thread as it was: slower, never wrong.
	syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), backgroundNice)
}
