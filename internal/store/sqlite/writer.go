package sqlite

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// request is one queued Write.
type request struct {
	ctx  context.Context
	fn   func(*tx) error
	err  error
	done chan struct{}
}

// Write runs fn in one atomic, durable transaction. It returns only after the
// COMMIT that contains fn's writes has been synced to disk, or with an error
// and none of them.
func (s *Store) Write(ctx context.Context, fn func(store.Tx) error) error {
	return s.submit(ctx, func(t *tx) error { return fn(t) })
}

// submit queues fn for the writer and waits for its result. Once queued, it
// waits even if ctx ends: the writer checks ctx before running fn, and a
// caller must not be told "cancelled" about a write that then commits.
func (s *Store) submit(ctx context.Context, fn func(*tx) error) error {
	if err := ctx.Err(); err != nil {
		return toError(err)
	}
	r := &request{ctx: ctx, fn: fn, done: make(chan struct{})}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed()
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		s.mu.RUnlock()
		return toError(ctx.Err())
	}
	s.mu.RUnlock()
	<-r.done
	return r.err
}

// run is the writer goroutine: it commits queued requests in batches until
// Close closes the queue, then drains it.
func (s *Store) run() {
	defer close(s.done)
	batch := make([]*request, 0, maxBatch)
	for first := range s.reqs {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commit(batch)
		for i := range batch {
			batch[i] = nil
		}
		s.catchUp()
	}
}

// catchUp lets the WAL restart during a long burst of writes. The
// background checkpointer copies frames while the writer keeps appending,
// so under a continuous load (an import) it never finds the WAL fully
// copied at the moment a write begins, which is when SQLite restarts the
// WAL from its start; the WAL then grows without bound (measured: 10 GB
// after 400,000 resources of a generated region, about 26 KB per
// resource). Between batches nothing is being written, so a checkpoint
// run here can copy every frame, and the next batch restarts the WAL
// (journal_size_limit then trims the file). It runs only once the WAL has
// passed walCatchUp, checked every catchUpEvery batches, so small writes
// never pay for it.
func (s *Store) catchUp() {
	s.sinceCatchUp++
	if s.sinceCatchUp < catchUpEvery {
		return
	}
	s.sinceCatchUp = 0
	fi, err := os.Stat(s.path + "-wal")
	if err != nil || fi.Size() < walCatchUp {
		return
	}
	// PASSIVE never waits for readers: frames a reader still needs are
	// left for a later round (errors, like SQLITE_BUSY from the background
	// checkpointer running at the same moment, are retried the same way).
	s.wconn.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
}

// commit runs one batch in a single transaction: each request in its own
// savepoint, so one request's failure undoes only its own writes, then one
// COMMIT for all. If the COMMIT fails, every request that had succeeded
// fails with it.
func (s *Store) commit(batch []*request) {
	// The writer's statements run with a context that is never cancelled:
	// the driver interrupts a statement whose context ends, and SQLite may
	// then roll back the whole transaction, which would take the other
	// requests of the batch with it. Cancellation is honoured between
	// statements instead (tx.check).
	ctx := context.Background()
	s.batches.Add(1)
	finish := func(err error) {
		for _, r := range batch {
			if err != nil && r.err == nil {
				r.err = err
			}
			close(r.done)
		}
	}
	if _, err := s.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		finish(toError(fmt.Errorf("sqlite: begin: %w", err)))
		return
	}
	rollback := func(err error) {
		s.wconn.ExecContext(ctx, "ROLLBACK")
		finish(toError(err))
	}
	if err := s.w.maxSeq.QueryRowContext(ctx).Scan(&s.nextSeq); err != nil {
		rollback(err)
		return
	}
	if err := s.w.maxRID.QueryRowContext(ctx).Scan(&s.nextRID); err != nil {
		rollback(err)
		return
	}
	if err := s.w.maxHW.QueryRowContext(ctx).Scan(&s.hw); err != nil {
		rollback(err)
		return
	}
	s.nextSeq++
	s.nextRID++
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = toError(err)
			continue
		}
		if _, err := s.wconn.ExecContext(ctx, "SAVEPOINT w"); err != nil {
			rollback(err)
			return
		}
		r.err = s.runFn(r)
		if r.err != nil {
			if _, err := s.wconn.ExecContext(ctx, "ROLLBACK TO w"); err != nil {
				rollback(err)
				return
			}
		}
		if _, err := s.wconn.ExecContext(ctx, "RELEASE w"); err != nil {
			rollback(err)
			return
		}
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		rollback(fmt.Errorf("sqlite: commit: %w", err))
		return
	}
	select {
	case s.committed <- struct{}{}:
	default:
	}
	finish(nil)
}

// runFn calls the request's function with a fresh Tx, turning a panic into
// an EInternal error for that caller alone: the savepoint is rolled back and
// the writer carries on.
func (s *Store) runFn(r *request) (err error) {
	t := &tx{s: s, ctx: r.ctx, sqlCtx: context.Background()}
	defer func() {
		t.done = true
		if p := recover(); p != nil {
			err = fhir.Internal(fmt.Errorf("sqlite: panic in write: %v\n%s", p, debug.Stack()))
		}
	}()
	err = r.fn(t)
	if err == nil && t.broken != nil {
		// fn ignored a Put that failed half-way; its writes must not commit.
		err = t.broken
	}
	return err
}
