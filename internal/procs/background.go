package procs

// Background runs the rest of the calling goroutine's life at a lower CPU
// priority than the node's requests: the goroutine is locked to an OS
// thread of its own and, on Linux, that thread runs at nice
// backgroundNice. Elsewhere it changes nothing.
//
// It is for the node's housekeeping, the work that must keep up on average
// but need not run the moment it could: the audit log's mover, the SQLite
// stores' checkpointer, the zeroing of the audit spool's next segment. On
// a busy node the kernel otherwise gives their bursts of CPU (a mover's
// transaction of a few milliseconds) the same share as the request
// threads, and every request that arrives meanwhile queues behind them;
// lowered, they run in the time requests leave over, and the audit log's
// backpressure still bounds how far they may fall behind
// (docs/BENCHMARKS.md, issue 7, "Housekeeping below the requests'
// priority").
//
// Call it only from a goroutine that runs until its work ends, never from
// a request's: it does not unlock the thread, so when the goroutine returns
// the runtime ends the thread with it instead of giving the lowered thread
// to other goroutines.
func Background() { background() }
