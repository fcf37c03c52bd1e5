package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Log is the node's audit log over a store: Recorder and Reader, signed
// checkpoints, inclusion and consistency proofs. Create it with Open and
// close it with Close (before closing the store).
type Log struct {
	st     store.AuditStore
	logger *slog.Logger
	key    *nodeKey
	dir    string

	queue   chan *pending
	mu      sync.RWMutex // guards closed against Record's send on queue
	closed  bool
	stopped chan struct{} // closed when the committer has exited

	// checkpointing
	ckMu     sync.Mutex   // one signer at a time
	signed   atomic.Int64 // size of the latest checkpoint this node knows of
	tickStop chan struct{}
	tickDone chan struct{}
	batches  atomic.Int64 // transactions committed, for the group-commit test
	every    time.Duration
}

var (
	_ Recorder = (*Log)(nil)
	_ Reader   = (*Log)(nil)
)

// Tuning.
const (
	// maxBatch bounds the entries of one transaction, so that a burst
	// cannot make one commit (and its callers' wait) unboundedly long.
	maxBatch = 256
	// CheckpointEvery is how often the node signs a checkpoint while the
	// log grows (issue 7: at least every minute).
	CheckpointEvery = time.Minute
	// defaultLimit and maxLimit bound a search page.
	defaultLimit = 100
	maxLimit     = 1000
)

// pending is one Record (one entry) or RecordAll (several, kept together
// and in order) waiting for its batch.
type pending struct {
	es   []*Entry
	rows []*store.AuditEntry
	err  error
	done chan struct{}
}

// Open starts the audit log of a node over st, whose backend must keep an
// audit log (store.AuditStore), with the node's signing key in dataDir
// (created on first use, see docs/AUDIT.md). logger receives the failures
// of background checkpoints.
func Open(ctx context.Context, st store.Store, dataDir string, logger *slog.Logger) (*Log, error) {
	return open(ctx, st, dataDir, logger, CheckpointEvery)
}

// open is Open with the checkpoint interval (tests shorten it).
func open(ctx context.Context, st store.Store, dataDir string, logger *slog.Logger, every time.Duration) (*Log, error) {
	as, ok := st.(store.AuditStore)
	if !ok {
		return nil, fhir.Internal(fmt.Errorf("audit: the store %T keeps no audit log", st))
	}
	if logger == nil {
		logger = slog.Default()
	}
	key, err := loadKey(dataDir)
	if err != nil {
		return nil, err
	}
	l := &Log{st: as, logger: logger, key: key, dir: dataDir,
		queue: make(chan *pending, maxBatch), stopped: make(chan struct{}),
		tickStop: make(chan struct{}), tickDone: make(chan struct{}),
		every: every}
	if cs, err := as.AuditCheckpoints(ctx, true); err != nil {
		return nil, err
	} else if len(cs) > 0 {
		l.signed.Store(cs[0].Size)
	}
	go l.run()
	go l.ticker()
	return l, nil
}

// Record appends e durably: it waits for the transaction its batch is
// committed in, then sets e.Index (and e.Time, to the microsecond as
// stored). Concurrent calls share one transaction (group commit); when it
// fails every caller of the batch gets the error, EUnavailable. A patient
// id that cannot be an id (empty, over 64 characters, with white space) is
// EInvalid and nothing is recorded; an unknown action or outcome, a flag
// with white space or an Event that is not JSON is EInternal.
func (l *Log) Record(ctx context.Context, e *Entry) error {
	return l.RecordAll(ctx, []*Entry{e})
}

// RecordAll appends es durably, in order, at consecutive indexes and in one
// transaction: all of them are recorded or none (the entries of a batch or
// transaction Bundle, with the interaction's own). It is Record for
// several entries, with the same errors; one invalid entry records none.
func (l *Log) RecordAll(ctx context.Context, es []*Entry) error {
	if len(es) == 0 {
		return nil
	}
	rows := make([]*store.AuditEntry, len(es))
	for i, e := range es {
		row, err := toRow(e)
		if err != nil {
			return err
		}
		rows[i] = row
	}
	if err := ctx.Err(); err != nil {
		return fhir.Errorf(fhir.EUnavailable, "", "audit: %v", err)
	}
	p := &pending{es: es, rows: rows, done: make(chan struct{})}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return fhir.Errorf(fhir.EUnavailable, "", "the audit log is closed")
	}
	select {
	case l.queue <- p:
	case <-ctx.Done():
		l.mu.RUnlock()
		return fhir.Errorf(fhir.EUnavailable, "", "audit: %v", ctx.Err())
	}
	l.mu.RUnlock()
	// Once queued the entries may be committed, so RecordAll waits for the
	// outcome even if ctx ends: a caller told "failed" about an entry that
	// then lands would be harmless, but one told nothing would be wrong.
	<-p.done
	if p.err != nil {
		return p.err
	}
	for i, e := range es {
		e.Index = p.rows[i].Index
		e.Time = time.UnixMicro(p.rows[i].Time).UTC()
	}
	return nil
}

// toRow checks e and turns it into the row stored.
func toRow(e *Entry) (*store.AuditEntry, error) {
	if e == nil {
		return nil, fhir.Internal(errors.New("audit: Record of a nil entry"))
	}
	switch e.Action {
	case ActionCreate, ActionRead, ActionUpdate, ActionDelete, ActionExecute:
	default:
		return nil, fhir.Internal(fmt.Errorf("audit: unknown action %q", e.Action))
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeMinor, OutcomeSerious:
	default:
		return nil, fhir.Internal(fmt.Errorf("audit: unknown outcome %q", e.Outcome))
	}
	// A patient id comes from the request (a client may name "Patient/a b"):
	// one no FHIR id can be is the client's mistake, not the server's. The
	// lists are stored space-separated, so a space could not round-trip.
	for _, p := range e.Patients {
		if p == "" || len(p) > 64 || strings.ContainsAny(p, " \t\r\n") {
			return nil, fhir.Invalid("", "%q is not a valid resource id", p)
		}
	}
	for _, f := range e.Flags {
		if f == "" || strings.ContainsAny(f, " \t\r\n") {
			return nil, fhir.Internal(fmt.Errorf("audit: unusable flag %q", f))
		}
	}
	if len(e.Event) == 0 || !json.Valid(e.Event) {
		return nil, fhir.Internal(errors.New("audit: the entry's AuditEvent is not JSON"))
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	return &store.AuditEntry{Time: t.UnixMicro(), User: e.User, Role: e.Role, Org: e.Org, Client: e.Client,
		Patients: e.Patients, Action: e.Action, Outcome: e.Outcome, Flags: e.Flags,
		Restricted: e.Restricted, Event: e.Event}, nil
}

// fromRow is the inverse of toRow.
func fromRow(r *store.AuditEntry) *Entry {
	return &Entry{Index: r.Index, Time: time.UnixMicro(r.Time).UTC(), User: r.User, Role: r.Role, Org: r.Org,
		Client: r.Client, Patients: r.Patients, Action: r.Action, Outcome: r.Outcome, Flags: r.Flags,
		Restricted: r.Restricted, Event: r.Event}
}

// run is the committer: it takes every Record queued while the previous
// transaction was committing and commits them together.
func (l *Log) run() {
	defer close(l.stopped)
	batch := make([]*pending, 0, maxBatch)
	var next *pending // taken from the queue but over the batch's bound
	for {
		first := next
		next = nil
		if first == nil {
			var ok bool
			if first, ok = <-l.queue; !ok {
				return
			}
		}
		batch = append(batch[:0], first)
		n := len(first.rows)
	drain:
		for n < maxBatch {
			select {
			case p, ok := <-l.queue:
				if !ok {
					break drain
				}
				if n+len(p.rows) > maxBatch {
					next = p
					break drain
				}
				batch = append(batch, p)
				n += len(p.rows)
			default:
				break drain
			}
		}
		err := l.append(batch)
		for i, p := range batch {
			p.err = err
			close(p.done)
			batch[i] = nil
		}
	}
}

// append writes one batch: the entries and the tree hashes they add, in one
// transaction under the store's append lock.
func (l *Log) append(batch []*pending) error {
	// Not the callers' contexts: the batch is shared, and one caller going
	// away must not fail the others.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rows []*store.AuditEntry
	for _, p := range batch {
		for _, row := range p.rows {
			r := *row
			rows = append(rows, &r)
		}
	}
	err := l.st.AppendAudit(ctx, func(tx store.AuditTx) error {
		n, err := tx.Size(ctx)
		if err != nil {
			return err
		}
		first := tlog.StoredHashCount(n)
		added := make([]tlog.Hash, 0, 2*len(rows))
		reader := tlog.HashReaderFunc(func(ids []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(ids))
			var need []int64
			for _, id := range ids {
				if id < first {
					need = append(need, id)
				}
			}
			got, err := tx.Hashes(ctx, need)
			if err != nil {
				return nil, err
			}
			for i, id := range ids {
				if id >= first {
					if id-first >= int64(len(added)) {
						return nil, fmt.Errorf("audit: hash %d read before it was computed", id)
					}
					out[i] = added[id-first]
					continue
				}
				copy(out[i][:], got[0])
				got = got[1:]
			}
			return out, nil
		})
		for i, r := range rows {
			r.Index = n + int64(i)
			hs, err := tlog.StoredHashes(r.Index, LeafData(fromRow(r)), reader)
			if err != nil {
				return err
			}
			added = append(added, hs...)
		}
		raw := make([][]byte, len(added))
		for i := range added {
			raw[i] = added[i][:]
		}
		return tx.Append(ctx, rows, first, raw)
	})
	if err != nil {
		l.logger.Error("audit: append failed", "entries", len(rows), "err", err)
		fe := fhir.Errorf(fhir.EUnavailable, "", "the audit log could not record the interaction")
		fe.Err = err
		return fe
	}
	l.batches.Add(1)
	i := 0
	for _, p := range batch {
		for _, row := range p.rows {
			row.Index = rows[i].Index
			i++
		}
	}
	return nil
}

// Search returns the entries q selects, newest first.
func (l *Log) Search(ctx context.Context, q Query) ([]*Entry, error) {
	sq := store.AuditQuery{Patient: q.Patient, User: q.User, Org: q.Org, Flagged: q.Flagged,
		Unrestricted: q.Unrestricted, Before: q.Before, Limit: q.Limit}
	if sq.Limit <= 0 {
		sq.Limit = defaultLimit
	}
	sq.Limit = min(sq.Limit, maxLimit)
	if !q.Since.IsZero() {
		sq.Since = q.Since.UnixMicro()
	}
	if !q.Until.IsZero() {
		sq.Until = q.Until.UnixMicro()
		if sq.Until == 0 {
			sq.Until = 1 // the epoch itself: nothing is before it
		}
	}
	if q.Before < 0 {
		return nil, fhir.Invalid("", "the page cursor must not be negative")
	}
	rows, err := l.st.SearchAudit(ctx, sq)
	if err != nil {
		return nil, err
	}
	out := make([]*Entry, len(rows))
	for i, r := range rows {
		out[i] = fromRow(r)
	}
	return out, nil
}

// Close stops accepting entries, commits those queued, signs a last
// checkpoint and stops the background signer. It does not close the store.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.queue)
	l.mu.Unlock()
	<-l.stopped
	close(l.tickStop)
	<-l.tickDone
	_, err := l.Checkpoint(ctx)
	return err
}
