package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// maxAttempts bounds how often Write runs fn when it keeps losing races.
// Each lost race means another writer committed, so progress is certain;
// the bound only stops a pathological hot spot from spinning forever.
const maxAttempts = 20

// Write runs fn in a READ COMMITTED transaction and commits it. When the
// transaction loses a race that a rerun resolves (two creates of the same new
// id, a deadlock, a serialisation failure), it is rolled back and fn runs
// again from the start; the rerun sees the winner's commit.
func (s *Store) Write(ctx context.Context, fn func(store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.writeOnce(ctx, fn)
		if err == nil {
			return nil
		}
		if !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return dbError(ctx.Err())
		}
		if attempt == maxAttempts {
			return fhir.Errorf(fhir.EConflict, "", "the write kept conflicting with concurrent writes; try again")
		}
		// Jittered backoff, so that the losers of one race do not collide
		// again in the next.
		d := time.Duration(rand.Int64N(int64(attempt) * int64(2*time.Millisecond)))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return dbError(ctx.Err())
		}
	}
}

func (s *Store) writeOnce(ctx context.Context, fn func(store.Tx) error) (err error) {
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return dbError(err)
	}
	defer func() {
		if err != nil {
			ptx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	t := &tx{tx: ptx}
	if err := callFn(fn, t); err != nil {
		return err
	}
	if err := t.flush(ctx); err != nil {
		return err
	}
	if err := t.checkEmptySearches(ctx); err != nil {
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		return wrapDB(err)
	}
	return nil
}

// callFn runs fn, turning a panic into an internal error so that a bug in
// the caller rolls the transaction back and leaves the store (and the
// connection) usable instead of crashing the process.
func callFn(fn func(store.Tx) error, t *tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fhir.Internal(fmt.Errorf("panic in a write transaction: %v\n%s", p, debug.Stack()))
		}
	}()
	return fn(t)
}

// retryError marks a database failure that a rerun of the whole transaction
// resolves. It travels through fn as the Err of a *fhir.Error (so an fn that
// returns it unchanged, or wraps it, still lets Write see it).
type retryError struct{ err error }

func (e *retryError) Error() string { return "transaction lost a race: " + e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

func retryable(err error) bool {
	var r *retryError
	return errors.As(err, &r)
}

// wrapDB classifies a database error met inside a transaction: races that a
// rerun resolves become a conflict carrying a retryError; the rest go
// through dbError.
func wrapDB(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return &fhir.Error{Kind: fhir.EConflict, Issues: []fhir.Issue{{
				Severity: fhir.SeverityError, Code: "conflict", Diagnostics: "conflict with a concurrent write"}},
				Err: &retryError{err}}
		case "23505": // unique_violation: a concurrent create of the same type/id won
			if pe.ConstraintName == "resources_pkey" || pe.ConstraintName == "resource_versions_type_id_version_id_key" {
				return &fhir.Error{Kind: fhir.EConflict, Issues: []fhir.Issue{{
					Severity: fhir.SeverityError, Code: "conflict", Diagnostics: "the resource was created concurrently"}},
					Err: &retryError{err}}
			}
		}
	}
	return dbError(err)
}

// tx is a store.Tx. Creates and index rows are buffered and written in
// batches when the transaction next reads, searches, updates or commits: a
// Synthea bundle of a few hundred new resources then costs two round trips
// (its resources and versions, then all its index rows) instead of one per
// resource, which measured 3,700 resources/s against well over twice that
// batched (BenchmarkPut).
type tx struct {
	tx      pgx.Tx
	creates createBuffer
	pending indexBuffer
	locked  bool          // holds the write lock (lockWrites)
	mine    []int64       // rids this transaction wrote
	empty   []store.Query // first-page searches that found nothing
}

// createBuffer holds buffered creates (version 1 of new resources) column by
// column, ready for unnest. Their index rows wait in the index buffer under
// the placeholder rid -(slot+1) until the insert returns the real rids.
type createBuffer struct {
	slot    map[string]int // type + "/" + id -> position
	types   []string
	ids     []string
	updated []time.Time
	deleted []bool
	bodies  [][]byte
}

// Read returns the current version. It first takes the write lock (see
// lockWrites), which no other transaction can hold until this one ends, so
// the version read stays the latest until this transaction commits: of 100
// concurrent updates that all expect version 1, the first to get the lock
// writes version 2 and every later one reads version 2 (under READ COMMITTED
// each statement sees everything committed before it started, and the lock
// is released only after the commit is visible). A row lock (FOR UPDATE) on
// top would only cost a write per read.
func (t *tx) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	if err := t.lockWrites(ctx); err != nil {
		return nil, err
	}
	return read(ctx, t.tx, typ, id)
}

// Search runs q inside the transaction, after writing what is buffered so
// that it sees this transaction's own writes.
func (t *tx) Search(ctx context.Context, q *store.Query) (*store.Result, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	res, err := search(ctx, t.tx, q)
	if err != nil {
		return nil, wrapDB(err)
	}
	if len(res.Versions) == 0 && q.Cursor == "" {
		t.empty = append(t.empty, *q)
	}
	return res, nil
}

// checkEmptySearches runs before commit. A search that found nothing is how
// a conditional create (or a conditional update that creates) decides to
// create; two such transactions running together would both find nothing
// and both create. So each query that came back empty is locked by an
// advisory transaction lock on its text and run again, ignoring this
// transaction's own writes: if a concurrent transaction has meanwhile
// committed a match, this one is rerun (and then finds it). The lock makes
// the check and the commit one step with respect to every other
// transaction checking the same query. Transactions whose searches all
// found something (conditional references to existing resources, the usual
// case in a feed) take no lock.
func (t *tx) checkEmptySearches(ctx context.Context) error {
	if len(t.empty) == 0 {
		return nil
	}
	keys := make([]string, 0, len(t.empty))
	for i := range t.empty {
		keys = append(keys, queryKey(&t.empty[i]))
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	b := &pgx.Batch{}
	for _, k := range sorted { // one order everywhere: no deadlock between checkers
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, k)
	}
	for i := range t.empty {
		var sb sqlBuilder
		if err := sb.where(&t.empty[i]); err != nil {
			return err
		}
		sql := `SELECT EXISTS (SELECT 1 FROM resources r WHERE ` + sb.sb.String() +
			` AND NOT r.rid = ANY(` + sb.arg(append([]int64{}, t.mine...)) + `::bigint[]))` // never NULL
		b.Queue(sql, sb.args...)
	}
	br := t.tx.SendBatch(ctx, b)
	defer br.Close()
	for range sorted {
		if _, err := br.Exec(); err != nil {
			return wrapDB(err)
		}
	}
	for i := range t.empty {
		var found bool
		if err := br.QueryRow().Scan(&found); err != nil {
			return wrapDB(err)
		}
		if found {
			return &fhir.Error{Kind: fhir.EConflict, Issues: []fhir.Issue{{
				Severity: fhir.SeverityError, Code: "conflict", Diagnostics: "a concurrent write created a match for a search of this transaction"}},
				Err: &retryError{fmt.Errorf("search %s found a concurrent match", keys[i])}}
		}
	}
	return br.Close()
}

// queryKey is a canonical text of the conditions of q (not its paging).
func queryKey(q *store.Query) string {
	types := slices.Clone(q.Types)
	slices.Sort(types)
	return fmt.Sprintf("sharedcare.search %q %+v", types, q.Clauses)
}

// The statements of Put. Creates insert the resources' rows (the primary key
// is where two concurrent creates of one id meet) and their versions in one
// statement for the whole buffer; seq follows the order of the Puts. An
// update moves the row from exactly the previous version, which under READ
// COMMITTED re-checks the version of a row a concurrent writer just changed,
// and writes the version row in the same statement.
const (
	createSQL = `WITH u AS (
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::boolean[], $5::bytea[])
			WITH ORDINALITY AS u(type, id, last_updated, deleted, body, n)),
	r AS (
		INSERT INTO resources (type, id, version_id, seq, last_updated, deleted)
		SELECT type, id, 1, nextval('resource_seq'), last_updated, deleted FROM u ORDER BY n
		RETURNING rid, type, id, seq),
	v AS (
		INSERT INTO resource_versions (seq, type, id, version_id, last_updated, deleted, body)
		SELECT r.seq, u.type, u.id, 1, u.last_updated, u.deleted, u.body
		FROM r JOIN u ON u.type = r.type AND u.id = r.id)
	SELECT type, id, rid FROM r`
	updateSQL = `WITH r AS (
		UPDATE resources SET version_id = $3, seq = nextval('resource_seq'), last_updated = $4, deleted = $5
		WHERE type = $1 AND id = $2 AND version_id = $3 - 1
		RETURNING rid, seq),
	v AS (
		INSERT INTO resource_versions (seq, type, id, version_id, last_updated, deleted, body)
		SELECT seq, $1, $2, $3, $4, $5, $6 FROM r)
	SELECT rid FROM r`
)

// Put writes a new version and replaces the resource's index rows. A create
// is buffered (see tx); its conflict with a concurrent create of the same id
// surfaces when the buffer is written, and is resolved by rerunning the
// transaction.
func (t *tx) Put(ctx context.Context, p *store.Put) error {
	if p.VersionID < 1 {
		return fhir.Errorf(fhir.EConflict, "", "%s/%s: version %d is not a valid version", p.Type, p.ID, p.VersionID)
	}
	body := p.Body
	if p.Deleted {
		body = nil
	} else if body == nil {
		body = []byte{}
	}
	if p.VersionID == 1 {
		key := p.Type + "/" + p.ID
		if _, dup := t.creates.slot[key]; dup {
			return fhir.Errorf(fhir.EConflict, "", "%s/%s: version 1 cannot be written, the resource already exists", p.Type, p.ID)
		}
		c := &t.creates
		if c.slot == nil {
			c.slot = map[string]int{}
		}
		n := len(c.ids)
		c.slot[key] = n
		c.types = append(c.types, p.Type)
		c.ids = append(c.ids, p.ID)
		c.updated = append(c.updated, utc(p.LastUpdated))
		c.deleted = append(c.deleted, p.Deleted)
		c.bodies = append(c.bodies, body)
		if !p.Deleted {
			t.pending.add(-int64(n+1), p.Type, &p.Index)
		}
		return nil
	}
	// An update may be of a resource created earlier in this transaction.
	if err := t.flush(ctx); err != nil {
		return err
	}
	if err := t.lockWrites(ctx); err != nil {
		return err
	}
	b := &pgx.Batch{}
	b.Queue(updateSQL, p.Type, p.ID, p.VersionID, utc(p.LastUpdated), p.Deleted, body)
	// The old index rows go in the same round trip; if the update matched
	// nothing, they are rid-less no-ops and the transaction fails anyway.
	for _, tbl := range indexTables {
		b.Queue(`DELETE FROM `+tbl+` WHERE rid = (SELECT rid FROM resources WHERE type = $1 AND id = $2 AND version_id = $3)`,
			p.Type, p.ID, p.VersionID)
	}
	br := t.tx.SendBatch(ctx, b)
	var rid int64
	err := br.QueryRow().Scan(&rid)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return t.conflict(ctx, p)
	}
	if err != nil {
		return wrapDB(err)
	}
	t.mine = append(t.mine, rid)
	if !p.Deleted {
		t.pending.add(rid, p.Type, &p.Index)
	}
	return nil
}

// conflict explains why an update matched no row.
func (t *tx) conflict(ctx context.Context, p *store.Put) error {
	var current int64
	err := t.tx.QueryRow(ctx, `SELECT version_id FROM resources WHERE type = $1 AND id = $2`, p.Type, p.ID).Scan(&current)
	if errors.Is(err, pgx.ErrNoRows) {
		return fhir.Errorf(fhir.EConflict, "", "%s/%s: version %d cannot be written, the resource does not exist", p.Type, p.ID, p.VersionID)
	}
	if err != nil {
		return wrapDB(err)
	}
	return fhir.Errorf(fhir.EConflict, "", "%s/%s: version %d cannot be written, the latest version is %d", p.Type, p.ID, p.VersionID, current)
}

// lockWrites makes this transaction the store's one writer until it ends,
// before its first write or row lock. Writers take Seqs from a sequence, and
// if they overlapped, a version with a smaller Seq could become visible after
// one with a larger Seq, so that a reader paging history by Seq (or a feed
// reading "everything after Seq n") would skip it for good (storetest:
// "a version becomes visible only after every version with a smaller Seq").
// Holding one transaction-level advisory lock from the first Seq to the
// commit makes Seq order commit order. It is the SQLite store's model (one
// writer); reads, searches, and everything the engine does before it
// writes still run in parallel. Writers cannot deadlock on each other: the
// lock is taken before any row is written. The key includes the schema,
// so test stores in separate schemas do not queue behind each other.
func (t *tx) lockWrites(ctx context.Context) error {
	if t.locked {
		return nil
	}
	if _, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('sharedcare.write.' || current_schema(), 0))`); err != nil {
		return wrapDB(err)
	}
	t.locked = true
	return nil
}

// indexTables are the index tables, each cleared of a resource's rows when
// it gets a new version.
var indexTables = []string{"idx_token", "idx_string", "idx_date", "idx_number", "idx_quantity", "idx_reference", "idx_uri",
	"idx_composite", "idx_text", "idx_compartment"}

// flush writes the buffered creates, then the buffered index rows (one
// INSERT ... SELECT FROM unnest per table, all in one round trip).
func (t *tx) flush(ctx context.Context) error {
	if c := &t.creates; len(c.ids) > 0 {
		if err := t.lockWrites(ctx); err != nil {
			return err
		}
		rids := make([]int64, len(c.ids))
		rows, err := t.tx.Query(ctx, createSQL, c.types, c.ids, c.updated, c.deleted, c.bodies)
		if err != nil {
			return wrapDB(err)
		}
		for rows.Next() {
			var typ, id string
			var rid int64
			if err := rows.Scan(&typ, &id, &rid); err != nil {
				rows.Close()
				return wrapDB(err)
			}
			rids[c.slot[typ+"/"+id]] = rid
			t.mine = append(t.mine, rid)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrapDB(err)
		}
		t.pending.resolve(rids)
		t.creates = createBuffer{}
	}
	b := t.pending.batch()
	if b == nil {
		return nil
	}
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return wrapDB(err)
	}
	t.pending = indexBuffer{}
	return nil
}

// clean makes a string storable in a text column: PostgreSQL text cannot
// hold NUL, which JSON allows (\u0000). The same replacement is applied to
// search values, so matching is unchanged.
func clean(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// labelKeys are the keys of a resource's security labels kept on its
// "_source" URI row (migration 0010), which the access filter tests with
// one array overlap instead of probing the "_security" token rows: each
// label's code as "c:" + code, and with a system also "s:" + system +
// "\n" + code. A filter's label matches as labelKey makes it: by code in
// any system, or by system and code (store.Grant.DenyLabels). Neither a
// URI nor a code holds a line feed, so no two labels share a key.
func labelKeys(ls []store.Label) []string {
	if len(ls) == 0 {
		return nil
	}
	keys := make([]string, 0, 2*len(ls))
	for _, l := range ls {
		keys = append(keys, labelKey("", l.Code))
		if l.System != "" {
			keys = append(keys, labelKey(l.System, l.Code))
		}
	}
	return keys
}

// labelKey is the key of labelKeys that a filter's label l matches.
func labelKey(system, code string) string {
	if system == "" {
		return "c:" + clean(code)
	}
	return "s:" + clean(system) + "\n" + clean(code)
}

// arrayLiteral writes ss as a PostgreSQL text array literal ("{}" when
// empty): every element double-quoted, with its quotes and backslashes
// escaped.
func arrayLiteral(ss []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := 0; j < len(s); j++ {
			if s[j] == '"' || s[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// indexBuffer holds index rows column by column, ready for unnest.
type indexBuffer struct {
	tokRID                                         []int64
	tokType, tokParam, tokSystem, tokCode, tokText []string
	tokDateLo, tokDateHi                           []int64 // the resource's "date" span (migration 0008)

	strRID                               []int64
	strType, strParam, strNorm, strExact []string

	dateRID             []int64
	dateType, dateParam []string
	dateLo, dateHi      []int64

	numRID            []int64
	numType, numParam []string
	numLo, numHi      []float64

	qtyRID                                []int64
	qtyType, qtyParam, qtySystem, qtyCode []string
	qtyLo, qtyHi                          []float64

	refRID                                       []int64
	refType, refParam, refRefType, refID, refURL []string

	uriRID                      []int64
	uriType, uriParam, uriValue []string
	uriLabels                   []string // a "_source" row's labelKeys as an array literal; "" (NULL) on others

	// Composite parts i = 0..2, one slice per column (absent parts '' / 0).
	cmpRID                      []int64
	cmpType, cmpParam           []string
	cmpSystem, cmpCode, cmpText [3][]string
	cmpLo, cmpHi                [3][]float64

	txtRID                      []int64
	txtType, txtParam, txtValue []string // txtValue: tsvector literals

	compRID                            []int64
	compType, compCompType, compCompID []string
}

func (b *indexBuffer) add(rid int64, typ string, ix *store.Index) {
	spanLo, spanHi := ix.DateSpan()
	for _, r := range ix.Tokens {
		b.tokRID = append(b.tokRID, rid)
		b.tokType = append(b.tokType, typ)
		b.tokParam = append(b.tokParam, clean(r.Param))
		b.tokSystem = append(b.tokSystem, clean(r.System))
		b.tokCode = append(b.tokCode, clean(r.Code))
		b.tokText = append(b.tokText, clean(r.Text))
		b.tokDateLo = append(b.tokDateLo, spanLo)
		b.tokDateHi = append(b.tokDateHi, spanHi)
	}
	for _, r := range ix.Strings {
		b.strRID = append(b.strRID, rid)
		b.strType = append(b.strType, typ)
		b.strParam = append(b.strParam, clean(r.Param))
		b.strNorm = append(b.strNorm, clean(r.Norm))
		b.strExact = append(b.strExact, clean(r.Exact))
	}
	for _, r := range ix.Dates {
		b.dateRID = append(b.dateRID, rid)
		b.dateType = append(b.dateType, typ)
		b.dateParam = append(b.dateParam, clean(r.Param))
		b.dateLo = append(b.dateLo, r.Lo)
		b.dateHi = append(b.dateHi, r.Hi)
	}
	for _, r := range ix.Numbers {
		b.numRID = append(b.numRID, rid)
		b.numType = append(b.numType, typ)
		b.numParam = append(b.numParam, clean(r.Param))
		b.numLo = append(b.numLo, r.Lo)
		b.numHi = append(b.numHi, r.Hi)
	}
	for _, r := range ix.Quantities {
		b.qtyRID = append(b.qtyRID, rid)
		b.qtyType = append(b.qtyType, typ)
		b.qtyParam = append(b.qtyParam, clean(r.Param))
		b.qtySystem = append(b.qtySystem, clean(r.System))
		b.qtyCode = append(b.qtyCode, clean(r.Code))
		b.qtyLo = append(b.qtyLo, r.Lo)
		b.qtyHi = append(b.qtyHi, r.Hi)
	}
	for _, r := range ix.References {
		b.refRID = append(b.refRID, rid)
		b.refType = append(b.refType, typ)
		b.refParam = append(b.refParam, clean(r.Param))
		b.refRefType = append(b.refRefType, clean(r.Type))
		b.refID = append(b.refID, clean(r.ID))
		b.refURL = append(b.refURL, clean(r.URL))
	}
	for _, r := range ix.URIs {
		b.uriRID = append(b.uriRID, rid)
		b.uriType = append(b.uriType, typ)
		b.uriParam = append(b.uriParam, clean(r.Param))
		b.uriValue = append(b.uriValue, clean(r.Value))
		labels := ""
		if r.Param == "_source" {
			labels = arrayLiteral(labelKeys(ix.Labels()))
		}
		b.uriLabels = append(b.uriLabels, labels)
	}
	for _, r := range ix.Composites {
		b.cmpRID = append(b.cmpRID, rid)
		b.cmpType = append(b.cmpType, typ)
		b.cmpParam = append(b.cmpParam, clean(r.Param))
		for i := range 3 {
			var p store.CompositePart
			if i < len(r.Parts) {
				p = r.Parts[i]
			}
			b.cmpSystem[i] = append(b.cmpSystem[i], clean(p.System))
			b.cmpCode[i] = append(b.cmpCode[i], clean(p.Code))
			b.cmpText[i] = append(b.cmpText[i], clean(p.Text))
			b.cmpLo[i] = append(b.cmpLo[i], p.Lo)
			b.cmpHi[i] = append(b.cmpHi[i], p.Hi)
		}
	}
	for _, r := range ix.Texts {
		b.txtRID = append(b.txtRID, rid)
		b.txtType = append(b.txtType, typ)
		b.txtParam = append(b.txtParam, clean(r.Param))
		b.txtValue = append(b.txtValue, tsvectorLiteral(r.Value))
	}
	for _, r := range ix.Compartments {
		b.compRID = append(b.compRID, rid)
		b.compType = append(b.compType, typ)
		b.compCompType = append(b.compCompType, clean(r.Type))
		b.compCompID = append(b.compCompID, clean(r.ID))
	}
}

// resolve replaces the placeholder rid -(i+1) of the i-th buffered create
// by its real rid.
func (b *indexBuffer) resolve(rids []int64) {
	for _, col := range [][]int64{b.tokRID, b.strRID, b.dateRID, b.numRID, b.qtyRID, b.refRID, b.uriRID, b.cmpRID, b.txtRID, b.compRID} {
		for i, r := range col {
			if r < 0 {
				col[i] = rids[-r-1]
			}
		}
	}
}

// batch returns the INSERTs for the buffered rows, or nil when there are
// none.
func (b *indexBuffer) batch() *pgx.Batch {
	q := &pgx.Batch{}
	if len(b.tokRID) > 0 {
		q.Queue(`INSERT INTO idx_token (rid, type, param, system, code, text, date_lo, date_hi)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])`,
			b.tokRID, b.tokType, b.tokParam, b.tokSystem, b.tokCode, b.tokText, b.tokDateLo, b.tokDateHi)
	}
	if len(b.strRID) > 0 {
		q.Queue(`INSERT INTO idx_string (rid, type, param, norm, exact)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])`,
			b.strRID, b.strType, b.strParam, b.strNorm, b.strExact)
	}
	if len(b.dateRID) > 0 {
		q.Queue(`INSERT INTO idx_date (rid, type, param, lo, hi)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])`,
			b.dateRID, b.dateType, b.dateParam, b.dateLo, b.dateHi)
	}
	if len(b.numRID) > 0 {
		q.Queue(`INSERT INTO idx_number (rid, type, param, lo, hi)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[], $5::float8[])`,
			b.numRID, b.numType, b.numParam, b.numLo, b.numHi)
	}
	if len(b.qtyRID) > 0 {
		q.Queue(`INSERT INTO idx_quantity (rid, type, param, system, code, lo, hi)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::float8[])`,
			b.qtyRID, b.qtyType, b.qtyParam, b.qtySystem, b.qtyCode, b.qtyLo, b.qtyHi)
	}
	if len(b.refRID) > 0 {
		q.Queue(`INSERT INTO idx_reference (rid, type, param, ref_type, ref_id, url)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])`,
			b.refRID, b.refType, b.refParam, b.refRefType, b.refID, b.refURL)
	}
	if len(b.uriRID) > 0 {
		q.Queue(`INSERT INTO idx_uri (rid, type, param, value, labels)
			SELECT rid, type, param, value, NULLIF(labels, '')::text[]
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(rid, type, param, value, labels)`,
			b.uriRID, b.uriType, b.uriParam, b.uriValue, b.uriLabels)
	}
	if len(b.cmpRID) > 0 {
		q.Queue(`INSERT INTO idx_composite (rid, type, param,
				p0_system, p0_code, p0_text, p0_lo, p0_hi,
				p1_system, p1_code, p1_text, p1_lo, p1_hi,
				p2_system, p2_code, p2_text, p2_lo, p2_hi)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[],
				$4::text[], $5::text[], $6::text[], $7::float8[], $8::float8[],
				$9::text[], $10::text[], $11::text[], $12::float8[], $13::float8[],
				$14::text[], $15::text[], $16::text[], $17::float8[], $18::float8[])`,
			b.cmpRID, b.cmpType, b.cmpParam,
			b.cmpSystem[0], b.cmpCode[0], b.cmpText[0], b.cmpLo[0], b.cmpHi[0],
			b.cmpSystem[1], b.cmpCode[1], b.cmpText[1], b.cmpLo[1], b.cmpHi[1],
			b.cmpSystem[2], b.cmpCode[2], b.cmpText[2], b.cmpLo[2], b.cmpHi[2])
	}
	if len(b.txtRID) > 0 {
		q.Queue(`INSERT INTO idx_text (rid, type, param, tsv)
			SELECT rid, type, param, tsv::tsvector FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(rid, type, param, tsv)`,
			b.txtRID, b.txtType, b.txtParam, b.txtValue)
	}
	if len(b.compRID) > 0 {
		q.Queue(`INSERT INTO idx_compartment (rid, type, comp_type, comp_id)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])`,
			b.compRID, b.compType, b.compCompType, b.compCompID)
	}
	if q.Len() == 0 {
		return nil
	}
	return q
}

// Reindex replaces the index rows of typ/id's current version with idx,
// without writing a version (store.Reindexer, for `sharedcare reindex`).
// It holds the write lock, like a write, so no version can slip in between
// the check and the replacement.
func (t *tx) Reindex(ctx context.Context, typ, id string, version int64, idx store.Index) error {
	if err := t.flush(ctx); err != nil {
		return err
	}
	if err := t.lockWrites(ctx); err != nil {
		return err
	}
	var rid, current int64
	var deleted bool
	err := t.tx.QueryRow(ctx, `SELECT rid, version_id, deleted FROM resources WHERE type = $1 AND id = $2`, typ, id).Scan(&rid, &current, &deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return fhir.Errorf(fhir.ENotFound, "", "%s/%s does not exist", typ, id)
	}
	if err != nil {
		return wrapDB(err)
	}
	if current != version {
		return fhir.Errorf(fhir.EConflict, "", "%s/%s: version %d is no longer current (the latest is %d)", typ, id, version, current)
	}
	b := &pgx.Batch{}
	for _, tbl := range indexTables {
		b.Queue(`DELETE FROM `+tbl+` WHERE rid = $1`, rid)
	}
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return wrapDB(err)
	}
	if !deleted {
		t.pending.add(rid, typ, &idx)
	}
	return nil
}
