package audit

// Batches is how many transactions l has committed (for the group-commit
// test).
func Batches(l *Log) int64 { return l.batches.Load() }
