package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
)

// stmts are the fixed statements, prepared once per handle (the write
// connection, or the read pool, where database/sql re-prepares them lazily
// on each pooled connection and keeps them).
type stmts struct {
	all []*sql.Stmt

	ping      *sql.Stmt
	ridOf     *sql.Stmt
	read      *sql.Stmt
	vread     *sql.Stmt
	secretGet *sql.Stmt
	secretPut *sql.Stmt

	// Writer only.
	current   *sql.Stmt
	insertRes *sql.Stmt
	updateRes *sql.Stmt
	insertVer *sql.Stmt
	maxSeq    *sql.Stmt
	maxRID    *sql.Stmt
	maxHW     *sql.Stmt
	delIdx    [numKinds]*sql.Stmt
	insIdx    [numKinds][insertChunk + 1]*sql.Stmt // by row count; prepared on first use
	prep      prepareFunc
}

// The index kinds, in the bit order of resources.idx_mask.
const (
	kindToken = iota
	kindString
	kindDate
	kindNumber
	kindQuantity
	kindReference
	kindURI
	kindComposite
	kindText
	kindCompartment
	numKinds
)

var idxTables = [numKinds]string{"idx_token", "idx_string", "idx_date", "idx_number", "idx_quantity", "idx_reference", "idx_uri",
	"idx_composite", "idx_text", "idx_compartment"}

// idxCols are the columns of each index table, in insert order; key is
// rid << 16 | n (see migrations/0001_init.sql).
var idxCols = [numKinds][]string{
	{"key", "rid", "type", "param", "system", "code", "text", "date_lo", "date_hi"},
	{"key", "rid", "type", "param", "norm", "exact"},
	{"key", "rid", "type", "param", "lo", "hi"},
	{"key", "rid", "type", "param", "lo", "hi"},
	{"key", "rid", "type", "param", "system", "code", "lo", "hi"},
	{"key", "rid", "type", "param", "ref_type", "ref_id", "url"},
	{"key", "rid", "type", "param", "value"},
	{"key", "rid", "type", "param",
		"p0_system", "p0_code", "p0_text", "p0_lo", "p0_hi",
		"p1_system", "p1_code", "p1_text", "p1_lo", "p1_hi",
		"p2_system", "p2_code", "p2_text", "p2_lo", "p2_hi"},
	// FTS5: the key is the rowid, and the value goes in its parameter's
	// column (the other is NULL).
	{"rowid", "t_text", "t_content"},
	{"key", "rid", "type", "comp_type", "comp_id"},
}

// idxKeyCol is the column holding the row key of index table k.
func idxKeyCol(k int) string { return idxCols[k][0] }

// idxKeyBits is how many low bits of an index row's key number the
// resource's rows of one kind.
const idxKeyBits = 16

// insertChunk is how many index rows one INSERT carries. Measured: one.
// A multi-row INSERT can fail half-way, so SQLite gives it a statement
// journal inside our transaction, which cost more (12% of the writer's CPU
// at 16 rows) than the per-statement overhead it saved.
const insertChunk = 1

// insertSQL is a multi-row INSERT of n rows into index table k.
func insertSQL(k, n int) string {
	cols := idxCols[k]
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	return "INSERT INTO " + idxTables[k] + " (" + strings.Join(cols, ", ") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(row+",", n), ",")
}

// versionCols are the columns scanned by scanVersion, in its order.
const versionCols = "r.type, r.id, v.version, v.last_updated, v.deleted, v.seq, v.body"

// readSQL is read by id: one indexed lookup of (type, id), then the body by
// rowid.
const readSQL = "SELECT " + versionCols + " FROM resources r JOIN resource_versions v ON v.seq = r.seq WHERE r.type = ? AND r.id = ?"

// vreadSQL reads one version through the (rid, version) index.
const vreadSQL = "SELECT " + versionCols + " FROM resources r JOIN resource_versions v ON v.rid = r.rid WHERE r.type = ? AND r.id = ? AND v.version = ?"

type prepareFunc func(ctx context.Context, query string) (*sql.Stmt, error)

func prepare(ctx context.Context, p prepareFunc, writer bool) (*stmts, error) {
	s := &stmts{prep: p}
	var err error
	prep := func(dst **sql.Stmt, q string) {
		if err != nil {
			return
		}
		var st *sql.Stmt
		if st, err = p(ctx, q); err != nil {
			err = fmt.Errorf("sqlite: prepare %q: %w", q, err)
			return
		}
		*dst = st
		s.all = append(s.all, st)
	}
	prep(&s.ping, "SELECT 1")
	// One indexed lookup of (type, id), then the body by rowid.
	prep(&s.read, readSQL)
	prep(&s.vread, vreadSQL)
	prep(&s.secretGet, "SELECT value FROM secrets WHERE name = ?")
	prep(&s.ridOf, "SELECT rid FROM resources WHERE type = ? AND id = ?")
	if !writer {
		if err != nil {
			s.close()
			return nil, err
		}
		return s, nil
	}
	prep(&s.secretPut, "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
	prep(&s.current, "SELECT rid, version, idx_mask FROM resources WHERE type = ? AND id = ?")
	prep(&s.insertRes, "INSERT INTO resources (rid, type, id, version, seq, last_updated, deleted, idx_mask, source, labelled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	prep(&s.updateRes, "UPDATE resources SET version = ?, seq = ?, last_updated = ?, deleted = ?, idx_mask = ?, source = ?, labelled = ? WHERE rid = ?")
	prep(&s.insertVer, "INSERT INTO resource_versions (seq, rid, type, version, last_updated, deleted, body, lu_hw) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
	prep(&s.maxHW, "SELECT coalesce((SELECT lu_hw FROM resource_versions ORDER BY seq DESC LIMIT 1), 0)")
	prep(&s.maxSeq, "SELECT coalesce(max(seq), 0) FROM resource_versions")
	prep(&s.maxRID, "SELECT coalesce(max(rid), 0) FROM resources")
	for k := range numKinds {
		prep(&s.delIdx[k], "DELETE FROM "+idxTables[k]+" WHERE "+idxKeyCol(k)+" BETWEEN ? AND ?")
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// insert returns the statement inserting n (1..insertChunk) rows into index
// table k.
func (s *stmts) insert(ctx context.Context, k, n int) (*sql.Stmt, error) {
	if st := s.insIdx[k][n]; st != nil {
		return st, nil
	}
	st, err := s.prep(ctx, insertSQL(k, n))
	if err != nil {
		return nil, err
	}
	s.insIdx[k][n] = st
	s.all = append(s.all, st)
	return st, nil
}

func (s *stmts) close() {
	for _, st := range s.all {
		st.Close()
	}
}

// queryCache keeps the prepared statements of generated queries (searches,
// history), keyed by their SQL text, which depends only on the query's
// shape, not its values. It stops growing at queryCacheMax entries and then
// prepares uncached statements, so odd query shapes cannot exhaust memory.
type queryCache struct {
	prepare prepareFunc
	mu      sync.Mutex
	m       map[string]*sql.Stmt
}

const queryCacheMax = 512

func newQueryCache(p prepareFunc) *queryCache {
	return &queryCache{prepare: p, m: map[string]*sql.Stmt{}}
}

// get returns a statement for q and whether the caller must close it.
func (c *queryCache) get(ctx context.Context, q string) (*sql.Stmt, bool, error) {
	c.mu.Lock()
	st, ok := c.m[q]
	c.mu.Unlock()
	if ok {
		return st, false, nil
	}
	st, err := c.prepare(ctx, q)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: prepare %q: %w", q, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[q]; ok {
		return st, true, nil // lost a race: use ours once, keep theirs
	}
	if len(c.m) >= queryCacheMax {
		return st, true, nil
	}
	c.m[q] = st
	return st, false, nil
}

func (c *queryCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}
