// Package sqlite is the embedded storage backend: the store.Store contract
// on one SQLite file, the default when sharedcare runs without PostgreSQL.
//
// The file is in WAL mode. All writes go through one writer goroutine that
// owns the only write connection and commits with group commit: it takes
// every Write queued while the previous commit was syncing, runs each one in
// its own SAVEPOINT inside a single BEGIN IMMEDIATE transaction, and pays for
// one COMMIT (one fsync, synchronous=FULL) for the whole batch. Reads run on a
// separate pool of read-only connections, which WAL lets proceed while the
// writer commits.
//
// The schema (migrations/*.sql, applied at Open) keeps the current version of
// each resource in resources, every version's body once in
// resource_versions, and the search index rows in one narrow table per kind
// of search parameter, keyed by the resource's rid.
//
// Searches (translate.go, filter.go, page.go, include.go) are SQL over the
// index tables only: one driving index lookup, the other conditions and
// the access filter as seeks into the resource's own index rows (their
// keys are rid << 16 | n), keyset paging over (sort values..., rid). A
// query node that cannot be translated exactly is ENotSupported.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/procs"
	"github.com/sharedcare/sharedcare/internal/store"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is an SQLite-backed store.Store. Create it with Open.
type Store struct {
	path string

	wdb   *sql.DB   // holds the single write connection
	wconn *sql.Conn // the write connection, used only by the writer goroutine
	w     *stmts    // statements prepared on wconn
	wq    *queryCache

	rdb *sql.DB // pool of read-only connections
	r   *stmts  // statements prepared on rdb
	rq  *queryCache

	fast chan *fastReader // read-by-id connections (fastread.go)

	audit *auditDB // the audit log's own file (auditdb.go)

	// searchSlots bounds the searches running at once to the cores. The
	// pure-Go SQLite allocates through one process-wide mutex, so more
	// concurrent searches than cores queue on that lock instead of on the
	// CPU: measured on 1.1 million resources with 8 clients on 2 cores,
	// Observation by code and date range went from p99 174 ms and 1.3 ms
	// per search to p99 10 ms and 0.6 ms once two ran at a time.
	searchSlots chan struct{}

	reqs   chan *request
	mu     sync.RWMutex // guards closed against Write's send on reqs
	closed bool
	done   chan struct{} // closed when the writer goroutine has exited

	ckdb      *sql.DB       // one connection for the background checkpointer
	committed chan struct{} // the writer signals each commit (capacity 1)
	ckStop    chan struct{}
	ckDone    chan struct{}

	// Writer-goroutine state: the next seq and rid to assign, reloaded from
	// the file at the start of every batch (another process may have written).
	nextSeq int64
	nextRID int64
	hw      int64 // lu_hw of the latest version (see migrations/0002)
	args    []any // scratch for index inserts
	// sinceCatchUp counts batches since catchUp last looked at the WAL.
	sinceCatchUp int

	batches atomic.Int64 // COMMITs attempted, for the group-commit test
	down    atomic.Bool  // set by Close: reads fail fast with EUnavailable
}

var _ store.Store = (*Store)(nil)

// Tuning, measured with BenchmarkPut/BenchmarkRead (see sqlite_test.go).
const (
	// maxBatch bounds how many Writes share one COMMIT, so that one batch
	// cannot hold the write lock (and its callers' latency) unboundedly.
	maxBatch = 64
	// busyTimeoutMS is how long a connection waits for a lock held by
	// another process (an admin command on the same file) before failing.
	busyTimeoutMS = 10000
	// writerCacheKiB is the write connection's page cache (negative
	// cache_size = KiB): the interior pages of every index a write touches.
	writerCacheKiB = 64 << 10
	// readerCacheKiB is each reader's page cache; readers get most pages
	// through mmap, so a small cache keeps the pool's memory bounded.
	readerCacheKiB = 8 << 10
	// mmapBytes lets readers page the file in without read syscalls.
	mmapBytes = 1 << 30
	// pageSize is the page size of new database files.
	pageSize = 8192
	// checkpointEvery is the most often the checkpointer copies the WAL
	// into the database file (each checkpoint costs two fsyncs).
	checkpointEvery = 250 * time.Millisecond
	// walSizeLimit is what the WAL file is truncated to after a checkpoint
	// that emptied it, so one burst of writes does not keep a large file.
	walSizeLimit = 64 << 20
	// walCatchUp is the WAL size past which the writer checkpoints between
	// batches (see catchUp), and catchUpEvery how many batches apart it
	// looks at the size.
	walCatchUp   = 256 << 20
	catchUpEvery = 16
)

// Open opens (creating if needed) the SQLite store at path, applies the
// embedded migrations and starts the writer.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fhir.Internal(fmt.Errorf("sqlite: unusable database path %q", path))
	}
	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	common.Add("_pragma", fmt.Sprintf("mmap_size(%d)", mmapBytes))
	common.Add("_pragma", "foreign_keys(0)")
	// An automatic index is built by reading a whole table, per query: for
	// our searches it is always the wrong plan (every access has a real
	// index or a key range), and the plan test forbids it.
	common.Add("_pragma", "automatic_index(0)")

	// The writer. synchronous=FULL: in WAL mode NORMAL syncs only at
	// checkpoints, so a power loss could drop commits already acknowledged;
	// issue 2 requires every acknowledged write to be durable before the
	// response, and group commit makes the per-commit fsync affordable.
	wv := cloneValues(common)
	wv.Add("_pragma", fmt.Sprintf("cache_size(%d)", -writerCacheKiB))
	// page_size only takes effect while the file is new, so it must run
	// before journal_mode, which the driver's _journal_mode key guarantees
	// (it is applied after every _pragma).
	wv.Add("_pragma", fmt.Sprintf("page_size(%d)", pageSize))
	wv.Set("_journal_mode", "WAL")
	wv.Set("_synchronous", "FULL")
	wv.Add("_pragma", "temp_store(MEMORY)")
	// Checkpoints run in the background (checkpointer), not inside the
	// COMMIT that crosses the threshold, which would stall every Write in
	// that batch: on the Synthea load they were 15% of the writer's time.
	wv.Add("_pragma", "wal_autocheckpoint(0)")
	wv.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", walSizeLimit))
	wdb, err := sql.Open("sqlite", path+"?"+wv.Encode())
	if err != nil {
		return nil, fhir.Internal(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	s := &Store{path: path, wdb: wdb, reqs: make(chan *request, maxBatch), done: make(chan struct{}),
		committed: make(chan struct{}, 1), ckStop: make(chan struct{}), ckDone: make(chan struct{})}
	fail := func(err error) (*Store, error) {
		if s.wconn != nil {
			s.wconn.Close()
		}
		wdb.Close()
		for s.fast != nil && len(s.fast) > 0 {
			(<-s.fast).close()
		}
		if s.rdb != nil {
			s.rdb.Close()
		}
		if s.ckdb != nil {
			s.ckdb.Close()
		}
		if s.audit != nil {
			s.audit.close()
		}
		return nil, toError(err)
	}
	if s.wconn, err = connRetry(ctx, wdb); err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	if err := migrate(ctx, s.wconn); err != nil {
		return fail(err)
	}
	if s.audit, err = openAuditDB(ctx, path, common); err != nil {
		return fail(err)
	}
	if err := s.audit.adoptFrom(ctx, s.wconn, path); err != nil {
		return fail(err)
	}
	if s.w, err = prepare(ctx, s.wconn.PrepareContext, true); err != nil {
		return fail(err)
	}
	s.wq = newQueryCache(s.wconn.PrepareContext)

	// The readers: query_only so that a bug cannot write behind the
	// writer's back; the pool is sized for a few readers per core, which
	// is what SQLite can use (the work is CPU-bound once pages are cached).
	rv := cloneValues(common)
	rv.Add("_pragma", fmt.Sprintf("cache_size(%d)", -readerCacheKiB))
	rv.Add("_pragma", "query_only(1)")
	if s.rdb, err = sql.Open("sqlite", path+"?"+rv.Encode()); err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	// n connections serve read by id (held outside the pool, see
	// fastread.go), n more everything else.
	n := 4 * procs.Cores()
	s.rdb.SetMaxOpenConns(2 * n)
	s.rdb.SetMaxIdleConns(2 * n)
	s.rdb.SetConnMaxLifetime(0)
	s.rdb.SetConnMaxIdleTime(0)
	if s.r, err = prepare(ctx, s.rdb.PrepareContext, false); err != nil {
		return fail(err)
	}
	s.rq = newQueryCache(s.rdb.PrepareContext)
	s.searchSlots = make(chan struct{}, procs.Cores())
	s.fast = make(chan *fastReader, n)
	for range n {
		fr, err := newFastReader(ctx, s.rdb)
		if err != nil {
			return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
		}
		s.fast <- fr
	}

	if s.ckdb, err = sql.Open("sqlite", path+"?"+common.Encode()); err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	s.ckdb.SetMaxOpenConns(1)
	s.ckdb.SetMaxIdleConns(1)
	s.ckdb.SetConnMaxIdleTime(0)
	s.ckdb.SetConnMaxLifetime(0)

	go s.run()
	go s.checkpointer()
	return s, nil
}

// connRetry gets the write connection. Switching a new file to WAL takes
// an exclusive lock without calling the busy handler, so two processes
// opening one new file at once can get SQLITE_BUSY here: retry for as long
// as busy_timeout would have waited.
func connRetry(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	deadline := time.Now().Add(busyTimeoutMS * time.Millisecond)
	for {
		c, err := db.Conn(ctx)
		if err == nil || !fhir.IsKind(toError(err), fhir.EUnavailable) || time.Now().After(deadline) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func cloneValues(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// Close stops accepting writes, commits those already queued, and closes the
// database. Writes acknowledged before Close are durable (each was committed
// with synchronous=FULL before it was acknowledged).
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.down.Store(true)
	close(s.reqs)
	s.mu.Unlock()
	<-s.done
	close(s.ckStop)
	<-s.ckDone

	var errs []error
	errs = append(errs, s.ckdb.Close(), s.audit.close())
	for range cap(s.fast) {
		(<-s.fast).close() // waits for reads in flight to hand theirs back
	}
	close(s.fast) // a Read still waiting for a reader gets EUnavailable
	s.r.close()
	s.rq.close()
	errs = append(errs, s.rdb.Close())
	s.w.close()
	s.wq.close()
	// No explicit checkpoint here: SQLite checkpoints and removes the WAL
	// when the last connection to the file closes, without waiting; a
	// blocking TRUNCATE would stall a short-lived second process (an admin
	// command) behind a busy server's readers.
	errs = append(errs, s.wconn.Close(), s.wdb.Close())
	if err := errors.Join(errs...); err != nil {
		return fhir.Internal(fmt.Errorf("sqlite: close: %w", err))
	}
	return nil
}

// Ping reports whether the store can serve requests.
func (s *Store) Ping(ctx context.Context) error {
	if s.down.Load() {
		return errClosed()
	}
	var one int
	if err := s.r.ping.QueryRowContext(ctx).Scan(&one); err != nil {
		return toError(err)
	}
	return nil
}

// Secret returns the named secret, creating it with generate on first use.
// Two callers racing on a new name may both call generate, but the writer
// serialises their inserts and both return the first one stored.
func (s *Store) Secret(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	if s.down.Load() {
		return nil, errClosed()
	}
	var v []byte
	err := s.r.secretGet.QueryRowContext(ctx, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, toError(err)
	}
	gen, err := generate()
	if err != nil {
		return nil, err
	}
	if len(gen) == 0 {
		return nil, fhir.Internal(fmt.Errorf("sqlite: secret %q: generator returned nothing", name))
	}
	err = s.submit(ctx, func(t *tx) error {
		if _, err := t.s.w.secretPut.ExecContext(t.sqlCtx, name, gen); err != nil {
			return toError(err)
		}
		return toError(t.s.w.secretGet.QueryRowContext(t.sqlCtx, name).Scan(&v))
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

func errClosed() error {
	return fhir.Errorf(fhir.EUnavailable, "", "the store is closed")
}

// toError maps a database error onto the contract's error kinds: lock
// timeouts and a full disk are EUnavailable (worth retrying later),
// anything else is EInternal. *fhir.Error values pass through.
func toError(err error) error {
	if err == nil {
		return nil
	}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &fhir.Error{Kind: fhir.EUnavailable, Err: err, Issues: []fhir.Issue{{
			Severity: fhir.SeverityError, Code: "transient", Diagnostics: "request cancelled or timed out"}}}
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL:
			return &fhir.Error{Kind: fhir.EUnavailable, Err: err, Issues: []fhir.Issue{{
				Severity: fhir.SeverityError, Code: "transient", Diagnostics: "storage temporarily unavailable"}}}
		}
	}
	return fhir.Internal(err)
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// checkpointer copies committed WAL frames into the database file in the
// background, at most every checkpointEvery and only after commits. PASSIVE
// never waits for readers or the writer; frames it cannot copy yet (a reader
// still needs them) are copied on a later round. A failure is retried on the
// next round: the WAL only grows meanwhile, no data is at risk.
func (s *Store) checkpointer() {
	defer close(s.ckDone)
	procs.Background()
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.ckStop:
			return
		case <-tick.C:
		}
		select {
		case <-s.committed:
			s.ckdb.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		default: // nothing written since the last round
		}
		select {
		case <-s.audit.committed:
			s.audit.ckdb.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		default:
		}
	}
}

// TableSize is the space one table or index takes in the database file.
type TableSize struct {
	Name  string // table or index name, e.g. "idx_token" or "idx_token_code"
	Bytes int64
}

// Sizes reports the space of every table and index, largest first, for
// figures such as index bytes per resource (docs/BENCHMARKS.md). It reads
// every page of the file, so it is for benchmarks and operators, not for
// request paths.
func (s *Store) Sizes(ctx context.Context) ([]TableSize, error) {
	if s.down.Load() {
		return nil, errClosed()
	}
	rows, err := s.rdb.QueryContext(ctx, "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC, 1")
	if err != nil {
		return nil, toError(err)
	}
	defer rows.Close()
	var out []TableSize
	for rows.Next() {
		var ts TableSize
		if err := rows.Scan(&ts.Name, &ts.Bytes); err != nil {
			return nil, toError(err)
		}
		out = append(out, ts)
	}
	return out, toError(rows.Err())
}
