package audit

import (
	"context"
	"time"

	"github.com/sharedcare/sharedcare/internal/store"
)

// Batches is how many spool writes l has made (for the group-commit test).
func Batches(l *Log) int64 { return l.batches.Load() }

// Moves is how many transactions l's mover has committed.
func Moves(l *Log) int64 { return l.moves.Load() }

// BreakSpool closes the file l's spool appends to, as a failing disk
// would fail its writes.
func BreakSpool(l *Log) { l.sp.f.Close() }

// OpenEvery is Open with a checkpoint interval other than a minute.
func OpenEvery(ctx context.Context, st store.Store, dataDir string, every time.Duration) (*Log, error) {
	return open(ctx, st, dataDir, nil, every)
}

// MaxBacklog is how many spooled entries may wait for the mover.
const MaxBacklog = maxBacklog
