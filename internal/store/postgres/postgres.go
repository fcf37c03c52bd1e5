// Package postgres is the PostgreSQL implementation of the storage contract
// in package store, for nodes that run several processes against one
// database or need PostgreSQL's operations tooling.
//
// Every version of every resource lives in resource_versions; resources
// points at the current one; one narrow table per kind of search index row
// (idx_token, idx_string, ...) holds the rows of current versions, and
// searches read only those tables and resources. Writes run in READ COMMITTED
// transactions. A writing transaction takes a store-wide advisory lock at its
// first write or Tx.Read and keeps it to commit, so writes commit one at a
// time in Seq order (as in the SQLite store; see tx.lockWrites for why);
// reads, searches and everything before a transaction's first write run in
// parallel. Tx.Read also locks the resource's row (SELECT ... FOR UPDATE).
// New resources' rows and all index rows are buffered and written in
// batches. A transaction that loses a race that a rerun resolves (a new
// resource's key, a conditional create's empty search) is retried whole.
// synchronous_commit is left on: a write is durable before Write returns.
package postgres

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/procs"
	"github.com/sharedcare/sharedcare/internal/store"
)

// defaultMaxConns sizes the pool when the URL does not (pool_max_conns).
// pgxpool's own default is max(4, cores), which on a 2-core node starves a
// server answering 32 concurrent readers while 4 transactions are writing.
const defaultMaxConns = 16

// defaultCount is the page size when a query does not set one (the contract's
// "backend default of 100").
const defaultCount = 100

// Store is a store.Store on PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	// searchSlots bounds the searches running at once (the URL's
	// search_slots; by default one per core of this node). Searches are
	// CPU-bound once pages are cached, and more in flight than cores only
	// share the cores: measured on 1.1 million resources with 8 clients on
	// 2 cores (PostgreSQL on the same machine), bounding them to 2 took
	// Observation by code and date range from p99 697 ms to 43 ms and
	// Patient by identifier from 43 ms to 5 ms. Reads by id and writes do
	// not take a slot. With PostgreSQL on a larger machine, raise it.
	searchSlots chan struct{}
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (postgres://user@host:port/db?...),
// applies the embedded migrations it has not yet applied, and returns the
// store. Runtime parameters in the URL (e.g. search_path=schema) apply to
// every connection.
//
// Prepared statements run their generic plan from the first execution on
// (plan_cache_mode force_generic_plan, unless the URL sets it), and the
// statements that must be planned for their values are sent with the
// values written in (custom). Left to choose (auto), PostgreSQL planned
// some statements afresh on every run because their generic plan's
// estimate was higher, though it ran faster: Patient by family and
// birthdate spent 0.5 ms of its 1.3 ms planning, and under 8 clients its
// p50 went from 4.6-4.8 ms to 2.0-2.2 ms with generic plans (issue 4's
// benchmark, docs/BENCHMARKS.md).
func Open(ctx context.Context, url string) (*Store, error) {
	url, slots, err := searchSlotsOf(url)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fhir.Errorf(fhir.EInvalid, "", "invalid PostgreSQL URL: %v", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	if _, set := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !set {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fhir.Errorf(fhir.EUnavailable, "", "cannot connect to PostgreSQL: %v", err)
	}
	s := &Store{pool: pool, searchSlots: make(chan struct{}, slots)}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// searchSlotsOf takes the search_slots parameter (ours, not PostgreSQL's)
// out of a connection URL and returns the URL without it and the number of
// concurrent searches, one per core by default.
func searchSlotsOf(raw string) (string, int, error) {
	u, err := neturl.Parse(raw)
	if err != nil || !u.Query().Has("search_slots") {
		return raw, procs.Cores(), nil // pgxpool reports a bad URL
	}
	q := u.Query()
	n, err := strconv.Atoi(q.Get("search_slots"))
	if err != nil || n < 1 {
		return "", 0, fhir.Errorf(fhir.EInvalid, "", "invalid PostgreSQL URL: search_slots must be a positive integer")
	}
	q.Del("search_slots")
	u.RawQuery = q.Encode()
	return u.String(), n, nil
}

// Close closes every connection. Writes acknowledged before Close were
// committed with synchronous_commit on, so they are durable already.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Analyze vacuums and analyzes the store's tables (store.Analyzer). A
// freshly loaded table has no statistics and no visibility map: measured
// on 6,000 resources, a search under a GP practice's access filter took
// 0.58 ms until autovacuum had run and 0.30 ms after.
func (s *Store) Analyze(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(tables) == 0 {
		return nil
	}
	_, err = s.pool.Exec(ctx, "VACUUM (ANALYZE) "+strings.Join(tables, ", "))
	return err
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fhir.Errorf(fhir.EUnavailable, "", "PostgreSQL is unavailable: %v", err)
	}
	return nil
}

// querier is what both the pool and a transaction offer; reads run on
// either.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const versionColumns = `v.type, v.id, v.version_id, v.last_updated, v.deleted, v.body, v.seq`

func scanVersion(row pgx.Row) (*store.Version, error) {
	v := &store.Version{}
	var body []byte
	if err := row.Scan(&v.Type, &v.ID, &v.VersionID, &v.LastUpdated, &v.Deleted, &body, &v.Seq); err != nil {
		return nil, err
	}
	v.LastUpdated = v.LastUpdated.UTC()
	if !v.Deleted {
		v.Body = body
	}
	return v, nil
}

func notFound(typ, id string) error {
	return fhir.Errorf(fhir.ENotFound, "", "%s/%s is not known", typ, id)
}

// Read returns the current version of typ/id.
func (s *Store) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	return read(ctx, s.pool, typ, id)
}

func read(ctx context.Context, q querier, typ, id string) (*store.Version, error) {
	v, err := scanVersion(q.QueryRow(ctx, `SELECT `+versionColumns+`
		FROM resources r JOIN resource_versions v ON v.seq = r.seq
		WHERE r.type = $1 AND r.id = $2`, typ, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(typ, id)
	}
	if err != nil {
		return nil, dbError(err)
	}
	return v, nil
}

// VRead returns version `version` of typ/id.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error) {
	v, err := scanVersion(s.pool.QueryRow(ctx, `SELECT `+versionColumns+`
		FROM resource_versions v WHERE v.type = $1 AND v.id = $2 AND v.version_id = $3`, typ, id, version))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fhir.Errorf(fhir.ENotFound, "", "%s/%s has no version %d", typ, id, version)
	}
	if err != nil {
		return nil, dbError(err)
	}
	return v, nil
}

// History lists versions newest first.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) ([]*store.Version, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.Type != "" {
		where = append(where, "v.type = "+arg(q.Type))
	}
	if q.ID != "" {
		where = append(where, "v.id = "+arg(q.ID))
	}
	if !q.Since.IsZero() {
		where = append(where, "v.last_updated >= "+arg(q.Since))
	}
	if q.Before > 0 {
		where = append(where, "v.seq < "+arg(q.Before))
	}
	count := q.Count
	if count <= 0 {
		count = defaultCount
	}
	sql := `SELECT ` + versionColumns + ` FROM resource_versions v`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	sql += ` ORDER BY v.seq DESC LIMIT ` + arg(count)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*store.Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, dbError(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err)
	}
	if len(out) == 0 && q.ID != "" {
		// Instance history of a resource that never existed is not found,
		// as in the SQLite store; an empty page past the cursor is not.
		var one int
		err := s.pool.QueryRow(ctx, `SELECT 1 FROM resources WHERE type = $1 AND id = $2`, q.Type, q.ID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, notFound(q.Type, q.ID)
		}
		if err != nil {
			return nil, dbError(err)
		}
	}
	return out, nil
}

// Secret returns the named secret, creating it on first use. When two
// processes race to create it, the first insert wins and both read its value.
func (s *Store) Secret(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	var value []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&value)
	if err == nil {
		return value, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, dbError(err)
	}
	fresh, err := generate()
	if err != nil {
		return nil, err
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, fresh); err != nil {
		return nil, dbError(err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&value); err != nil {
		return nil, dbError(err)
	}
	return value, nil
}

// dbError turns a database failure into the contract's error kinds: a
// database that cannot be reached is EUnavailable (the caller may retry),
// everything else is internal. *fhir.Error values pass through.
func dbError(err error) error {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &fhir.Error{Kind: fhir.EUnavailable, Issues: []fhir.Issue{{
			Severity: fhir.SeverityError, Code: "timeout", Diagnostics: "the request was cancelled or timed out"}}, Err: err}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // admin shutdown, crash shutdown, cannot connect now
			strings.HasPrefix(pe.Code, "08"), // connection exceptions
			pe.Code == "53300":               // too many connections
			return &fhir.Error{Kind: fhir.EUnavailable, Issues: []fhir.Issue{{
				Severity: fhir.SeverityError, Code: "transient", Diagnostics: "the database is unavailable"}}, Err: err}
		}
		return fhir.Internal(err)
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isConnError(err) {
		return &fhir.Error{Kind: fhir.EUnavailable, Issues: []fhir.Issue{{
			Severity: fhir.SeverityError, Code: "transient", Diagnostics: "the database is unavailable"}}, Err: err}
	}
	return fhir.Internal(err)
}

// isConnError reports failures to reach the server at all.
func isConnError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

// utc normalises a time for storage: PostgreSQL keeps microseconds, and the
// store returns times in UTC.
func utc(t time.Time) time.Time { return t.UTC() }
