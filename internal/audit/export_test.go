package audit

import (
	"context"
	"time"

	"github.com/sharedcare/sharedcare/internal/store"
)

// Batches is how many transactions l has committed (for the group-commit
// test).
func Batches(l *Log) int64 { return l.batches.Load() }

// OpenEvery is Open with a checkpoint interval other than a minute.
func OpenEvery(ctx context.Context, st store.Store, dataDir string, every time.Duration) (*Log, error) {
	return open(ctx, st, dataDir, nil, every)
}
