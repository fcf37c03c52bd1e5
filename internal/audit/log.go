package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/procs"
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
	node   string // the signing key's name: this node's row of the spool positions

	// The committer (run) appends each batch of queued entries to the
	// spool (spool.go) with one write and one flush and then answers its
	// callers; sp is nil when another process holds the spool (Record
	// then fails).
	sp      *spool
	queue   chan *pending
	mu      sync.RWMutex // guards closed against Record's send on queue
	closed  bool
	stopped chan struct{} // closed when the committer has exited

	// The mover appends spooled entries to the store's log in large
	// transactions. Under mvMu: backlog (spooled, not yet moved, in spool
	// order), spooledEnd and moved (spool positions), mvErr (the last
	// move's failure, nil once one succeeds), movedCh (closed and replaced
	// after every move attempt), waiting (Flush callers).
	mvMu       sync.Mutex
	backlog    []*pending
	pendingN   atomic.Int64 // entries in backlog, read by Record unlocked
	spooledEnd int64
	moved      int64
	mvErr      error
	movedCh    chan struct{}
	waiting    int
	mvKick     chan struct{} // something was spooled (capacity 1)
	mvUrgent   chan struct{} // a Flush waits (capacity 1)
	mvStop     chan struct{}
	moverDone  chan struct{}

	// checkpointing
	ckMu     sync.Mutex   // one signer at a time
	signed   atomic.Int64 // size of the latest checkpoint this node knows of
	tickStop chan struct{}
	tickDone chan struct{}
	batches  atomic.Int64 // spool writes, for the group-commit test
	moves    atomic.Int64 // transactions of the mover
	every    time.Duration
}

var (
	_ Recorder = (*Log)(nil)
	_ Reader   = (*Log)(nil)
)

// Tuning.
const (
	// maxBatch bounds the entries of one spool write, so that a burst
	// cannot make one write (and its callers' wait) unboundedly long.
	maxBatch = 1024
	// moveEvery is how long the mover lets spooled entries gather before
	// a transaction, unless a Flush waits or moveMin are ready: the
	// larger the transaction, the less an entry costs to index.
	moveEvery = 20 * time.Millisecond
	moveMin   = 512
	// moveMax bounds the entries of one transaction of the mover.
	moveMax = 1024
	// maxBacklog is how many spooled entries may wait for the mover
	// before Record waits for it (backpressure), or, while its moves fail,
	// fails closed: the spool must not grow without bound while nothing
	// can be searched or checkpointed.
	maxBacklog = 8 * moveMax
	// CheckpointEvery is how often the node signs a checkpoint while the
	// log grows (issue 7: at least every minute).
	CheckpointEvery = time.Minute
	// defaultLimit and maxLimit bound a search page.
	defaultLimit = 100
	maxLimit     = 1000
)

// pending is one Record (one entry) or RecordAll (several, kept together
// and in order): waiting for its spool write, then for its move.
type pending struct {
	es   []*Entry // nil for entries recovered from the spool
	rows []*store.AuditEntry
	rec  []byte // the encoded spool record
	end  int64  // the spool position after it, once written
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
	l := &Log{st: as, logger: logger, key: key, dir: dataDir, node: key.signer.Name(),
		queue: make(chan *pending, maxBatch), stopped: make(chan struct{}),
		movedCh: make(chan struct{}), mvKick: make(chan struct{}, 1), mvUrgent: make(chan struct{}, 1),
		mvStop: make(chan struct{}), moverDone: make(chan struct{}),
		tickStop: make(chan struct{}), tickDone: make(chan struct{}),
		every: every}
	if cs, err := as.AuditCheckpoints(ctx, true); err != nil {
		return nil, err
	} else if len(cs) > 0 {
		l.signed.Store(cs[0].Size)
	}
	from, err := as.AuditSpooled(ctx, l.node)
	if err != nil {
		return nil, err
	}
	sp, recs, err := openSpool(dataDir, from)
	switch {
	case errors.Is(err, errSpoolBusy):
		// A node runs on this data directory: this process (an admin
		// command) may read and sign, but records nothing.
	case err != nil:
		return nil, fhir.Internal(err)
	default:
		l.sp = sp
		l.moved, l.spooledEnd = from, sp.end
		for _, r := range recs {
			l.backlog = append(l.backlog, &pending{rows: r.rows, end: r.end})
			l.pendingN.Add(int64(len(r.rows)))
		}
	}
	go l.run()
	go l.mover()
	go l.ticker()
	if len(recs) > 0 {
		// Entries acknowledged before a crash and not yet moved: into the
		// log before anything else reads it.
		if err := l.Flush(ctx); err != nil {
			l.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	return l, nil
}

// Record appends e durably: it returns once the entry is in the spool
// (spool.go), written and flushed together with the entries of concurrent
// calls (group commit), and sets e.Time to the microsecond as stored. The
// mover then appends it to the log's tree and indexes and sets e.Index;
// Flush, or any read of the log, waits for that. While the mover is far
// behind, Record waits for it. When the write fails every caller of the
// batch gets the error, EUnavailable, as does every caller while the spool
// is not writable, or while the store is down and the mover far behind. A
// patient id that cannot be an id (empty, over 64 characters, with white
// space) is EInvalid and nothing is recorded; an unknown action or
// outcome, a flag with white space or an Event that is not a JSON object
// is EInternal.
func (l *Log) Record(ctx context.Context, e *Entry) error {
	return l.RecordAll(ctx, []*Entry{e})
}

// RecordAll appends es durably, in order, at consecutive indexes and in one
// spool record: all of them are recorded or none (the entries of a batch
// or transaction Bundle, with the interaction's own). It is Record for
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
	if err := l.backpressure(ctx); err != nil {
		return err
	}
	p := &pending{es: es, rows: rows, rec: encodeRecord(nil, rows), done: make(chan struct{})}
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
	// Once queued the entries may be written, so RecordAll waits for the
	// outcome even if ctx ends: a caller told "failed" about an entry that
	// then lands would be harmless, but one told nothing would be wrong.
	<-p.done
	if p.err != nil {
		return p.err
	}
	for i, e := range es {
		e.Time = time.UnixMicro(rows[i].Time).UTC()
	}
	return nil
}

// backpressure holds a caller while maxBacklog entries wait for the
// mover, until it has moved some: a node recording faster than its store
// takes the entries slows down rather than letting the spool grow. While
// the moves fail (the store is down) it refuses at once: fail closed.
func (l *Log) backpressure(ctx context.Context) error {
	for l.pendingN.Load() >= maxBacklog {
		l.mvMu.Lock()
		err, ch := l.mvErr, l.movedCh
		l.mvMu.Unlock()
		if err != nil {
			fe := fhir.Errorf(fhir.EUnavailable, "", "the audit log's store is unavailable and %d entries wait for it", l.pendingN.Load())
			fe.Err = err
			return fe
		}
		select {
		case <-ch:
		case <-l.moverDone:
			return fhir.Errorf(fhir.EUnavailable, "", "the audit log is closed")
		case <-ctx.Done():
			return fhir.Errorf(fhir.EUnavailable, "", "audit: %v", ctx.Err())
		}
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
	// Only the shape of a JSON object, not a full parse: every event is
	// written by the API's AuditEvent encoder, whose output the tests
	// (FuzzAuditEventJSON among them) check is JSON; json.Valid here was
	// 4% of an audited read's CPU.
	if n := len(e.Event); n < 2 || e.Event[0] != '{' || e.Event[n-1] != '}' {
		return nil, fhir.Internal(errors.New("audit: the entry's AuditEvent is not a JSON object"))
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	return &store.AuditEntry{Time: t.UnixMicro(), User: e.User, Role: e.Role, Org: e.Org, Client: e.Client,
		Patients: e.Patients, Action: e.Action, Outcome: e.Outcome, Flags: e.Flags,
		Restricted: e.Restricted, Event: e.Event}, nil
}

// fromRow is the inverse of toRow, the event unpacked (packed.go).
func fromRow(r *store.AuditEntry) *Entry {
	return &Entry{Index: r.Index, Time: time.UnixMicro(r.Time).UTC(), User: r.User, Role: r.Role, Org: r.Org,
		Client: r.Client, Patients: r.Patients, Action: r.Action, Outcome: r.Outcome, Flags: r.Flags,
		Restricted: r.Restricted, Event: UnpackEvent(r.Event)}
}

// run is the committer: it takes every Record queued while the previous
// spool write was flushing and writes them together.
func (l *Log) run() {
	defer close(l.stopped)
	batch := make([]*pending, 0, maxBatch)
	var buf []byte
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
		buf = buf[:0]
		for _, p := range batch {
			buf = append(buf, p.rec...)
		}
		err := l.spoolWrite(batch, buf)
		for i, p := range batch {
			p.err = err
			p.rec = nil
			close(p.done)
			batch[i] = nil
		}
	}
}

// spoolWrite makes one batch durable in the spool and hands it to the
// mover.
func (l *Log) spoolWrite(batch []*pending, buf []byte) error {
	if l.sp == nil {
		return fhir.Errorf(fhir.EUnavailable, "", "another process records to this node's audit spool")
	}
	start := l.sp.end
	if err := l.sp.write(buf); err != nil {
		l.logger.Error("audit: spool write failed", "err", err)
		fe := fhir.Errorf(fhir.EUnavailable, "", "the audit log could not record the interaction")
		fe.Err = err
		return fe
	}
	l.batches.Add(1)
	pos, n := start, 0
	for _, p := range batch {
		pos += int64(len(p.rec))
		p.end = pos
		n += len(p.rows)
	}
	l.mvMu.Lock()
	// Counted before the mover can see them, so that its subtraction
	// never runs ahead of the count.
	l.pendingN.Add(int64(n))
	l.backlog = append(l.backlog, batch...)
	l.spooledEnd = pos
	l.mvMu.Unlock()
	select {
	case l.mvKick <- struct{}{}:
	default:
	}
	return nil
}

// mover appends spooled entries to the store's log, oldest first, in
// transactions of up to moveMax entries at most every moveEvery (at once
// when a Flush waits). A failed move is retried, with a growing pause, the
// entries kept; on Close it drains what is spooled and exits, leaving
// what it cannot move in the spool for the next Open.
func (l *Log) mover() {
	defer close(l.moverDone)
	procs.Background()
	stopping := false
	pause := 100 * time.Millisecond
	// No segment is shorter than spoolFirstMax, so none can have been
	// moved past since the last look until the log has moved that far:
	// the directory is not listed on every move.
	var trimmed int64
	for {
		l.mvMu.Lock()
		n := len(l.backlog)
		urgent := l.waiting > 0
		l.mvMu.Unlock()
		if n == 0 {
			if stopping {
				return
			}
			select {
			case <-l.mvKick:
			case <-l.mvUrgent:
			case <-l.mvStop:
				stopping = true
			}
			continue
		}
		if !stopping && !urgent && l.pendingN.Load() < moveMin {
			t := time.NewTimer(moveEvery)
			select {
			case <-t.C:
			case <-l.mvUrgent:
			case <-l.mvStop:
				stopping = true
			}
			t.Stop()
		}
		l.mvMu.Lock()
		var batch []*pending
		entries := 0
		for _, p := range l.backlog {
			if len(batch) > 0 && entries+len(p.rows) > moveMax {
				break
			}
			batch = append(batch, p)
			entries += len(p.rows)
		}
		l.mvMu.Unlock()
		err := l.append(batch)
		l.mvMu.Lock()
		l.mvErr = err
		if err == nil {
			l.backlog = l.backlog[len(batch):]
			if len(l.backlog) == 0 {
				l.backlog = nil // let go of the moved entries
			}
			l.moved = batch[len(batch)-1].end
			// Before the waiters wake: backpressure rereads the count
			// when woken, and no other wake-up follows an emptied backlog.
			l.pendingN.Add(-int64(entries))
		}
		close(l.movedCh)
		l.movedCh = make(chan struct{})
		moved := l.moved
		l.mvMu.Unlock()
		if err != nil {
			if stopping {
				l.logger.Error("audit: entries stay in the spool until the log is next opened", "entries", l.pendingN.Load(), "err", err)
				return
			}
			select {
			case <-time.After(pause):
			case <-l.mvStop:
				stopping = true
			}
			pause = min(2*pause, 5*time.Second)
			continue
		}
		pause = 100 * time.Millisecond
		l.moves.Add(1)
		if moved-trimmed >= spoolFirstMax {
			if err := l.sp.trim(moved); err != nil {
				l.logger.Error("audit: retiring moved spool segments failed", "err", err)
			} else {
				trimmed = moved
			}
		}
	}
}

// Recording reports whether this log can record: false when another
// process holds the data directory's spool (an admin command opened it
// beside a running node), when Record always fails.
func (l *Log) Recording() bool { return l.sp != nil }

// Flush waits until every entry acknowledged before the call is in the
// log (moved from the spool): its Index set, and found by searches,
// proofs and checkpoints. It fails when the move fails.
func (l *Log) Flush(ctx context.Context) error {
	l.mvMu.Lock()
	target := l.spooledEnd
	if l.moved >= target {
		l.mvMu.Unlock()
		return nil
	}
	l.waiting++
	ch := l.movedCh
	l.mvMu.Unlock()
	defer func() {
		l.mvMu.Lock()
		l.waiting--
		l.mvMu.Unlock()
	}()
	select {
	case l.mvUrgent <- struct{}{}:
	default:
	}
	for {
		select {
		case <-ch:
		case <-ctx.Done():
			return fhir.Errorf(fhir.EUnavailable, "", "audit: %v", ctx.Err())
		case <-l.moverDone:
			l.mvMu.Lock()
			done := l.moved >= target
			l.mvMu.Unlock()
			if done {
				return nil
			}
			return fhir.Errorf(fhir.EUnavailable, "", "the audit log is closed")
		}
		l.mvMu.Lock()
		done, err := l.moved >= target, l.mvErr
		ch = l.movedCh
		l.mvMu.Unlock()
		if done {
			return nil
		}
		if err != nil {
			fe := fhir.Errorf(fhir.EUnavailable, "", "the audit log's store is unavailable")
			fe.Err = err
			return fe
		}
	}
}

// append moves one batch into the store's log: the entries and the tree
// hashes they add, and the spool position after them, in one transaction
// under the store's append lock.
func (l *Log) append(batch []*pending) error {
	// Not the callers' contexts: the batch is shared, and one caller going
	// away must not fail the others.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	total := 0
	for _, p := range batch {
		total += len(p.rows)
	}
	// Copies, numbered below: a failed move leaves the spooled rows as
	// they were. One allocation for the batch's rows, not one each.
	slab := make([]store.AuditEntry, 0, total)
	rows := make([]*store.AuditEntry, 0, total)
	for _, p := range batch {
		for _, row := range p.rows {
			slab = append(slab, *row)
			rows = append(rows, &slab[len(slab)-1])
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
		var leaf []byte
		for i, r := range rows {
			r.Index = n + int64(i)
			leaf = appendRowLeaf(leaf[:0], r)
			hs, err := tlog.StoredHashes(r.Index, leaf, reader)
			if err != nil {
				return err
			}
			added = append(added, hs...)
		}
		raw := make([][]byte, len(added))
		for i := range added {
			raw[i] = added[i][:]
		}
		if err := tx.Append(ctx, rows, first, raw); err != nil {
			return err
		}
		return tx.SetSpooled(ctx, l.node, batch[len(batch)-1].end)
	})
	if err != nil {
		l.logger.Error("audit: moving spooled entries into the log failed", "entries", len(rows), "err", err)
		return err
	}
	i := 0
	for _, p := range batch {
		for j := range p.rows {
			if p.es != nil {
				p.es[j].Index = rows[i].Index
			}
			i++
		}
	}
	return nil
}

// Search returns the entries q selects, newest first.
func (l *Log) Search(ctx context.Context, q Query) ([]*Entry, error) {
	if err := l.Flush(ctx); err != nil {
		return nil, err
	}
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

// Close stops accepting entries, writes those queued, moves everything
// spooled into the log, signs a last checkpoint and stops the background
// signer. It does not close the store.
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
	close(l.mvStop)
	<-l.moverDone
	close(l.tickStop)
	<-l.tickDone
	if l.sp != nil {
		l.sp.close()
	}
	_, err := l.Checkpoint(ctx)
	return err
}
