package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// The audit log (store.AuditStore), in a file of its own (auditdb.go; the
// tables of migrations/0005_audit.sql). Appends run one at a time on that
// file's write connection (the audit package's committer batches the entries of
// concurrent requests into each), and BEGIN IMMEDIATE holds its write lock
// against every other process on the file: the size an append reads stays
// the size it appends at. Reads use the file's read pool.

var _ store.AuditStore = (*Store)(nil)

// auditTx is the store.AuditTx of one AppendAudit, on the audit file's
// write connection.
type auditTx struct {
	a   *auditDB
	ctx context.Context // the caller's: checked between statements
}

// AppendAudit runs fn in one durable write transaction of the audit file.
func (s *Store) AppendAudit(ctx context.Context, fn func(store.AuditTx) error) error {
	if s.down.Load() {
		return errClosed()
	}
	return s.audit.write(ctx, func(*sql.Conn) error { return fn(auditTx{s.audit, ctx}) })
}

func (a auditTx) check() error {
	if err := a.ctx.Err(); err != nil {
		return toError(err)
	}
	return nil
}

func (a auditTx) Size(ctx context.Context) (int64, error) {
	if err := a.check(); err != nil {
		return 0, err
	}
	st, closeIt, err := a.a.wq.get(context.Background(), `SELECT size FROM audit_head WHERE one = 1`)
	if err != nil {
		return 0, toError(err)
	}
	if closeIt {
		defer st.Close()
	}
	var n int64
	err = st.QueryRowContext(context.Background()).Scan(&n)
	return n, toError(err)
}

func (a auditTx) Hashes(ctx context.Context, ids []int64) ([][]byte, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return auditHashes(context.Background(), a.a.wq, ids)
}

func (a auditTx) Append(ctx context.Context, entries []*store.AuditEntry, firstHash int64, hashes [][]byte) error {
	if err := a.check(); err != nil {
		return err
	}
	size, err := a.Size(ctx)
	if err != nil {
		return err
	}
	var erows, prows, hrows [][]any
	for i, e := range entries {
		if e.Index != size+int64(i) {
			return fhir.Internal(fmt.Errorf("sqlite: audit entry appended at %d, the log's next index is %d", e.Index, size+int64(i)))
		}
		erows = append(erows, []any{e.Index, e.Time, e.User, e.Role, e.Org, e.Client, strings.Join(e.Patients, " "),
			e.Action, e.Outcome, strings.Join(e.Flags, " "), e.Restricted, e.Event})
		for _, p := range e.Patients {
			prows = append(prows, []any{p, e.Index, e.Restricted})
		}
	}
	for i, h := range hashes {
		hrows = append(hrows, []any{firstHash + int64(i), h})
	}
	if err := a.insert(`INSERT INTO audit_entries
			(idx, time, who_user, who_role, who_org, who_client, patients, action, outcome, flags, restricted, event) VALUES `, erows); err != nil {
		return err
	}
	if err := a.insert(`INSERT OR IGNORE INTO audit_patients (patient, idx, restricted) VALUES `, prows); err != nil {
		return err
	}
	if err := a.insert(`INSERT INTO audit_hashes (id, hash) VALUES `, hrows); err != nil {
		return err
	}
	return a.exec(`UPDATE audit_head SET size = ? WHERE one = 1`, size+int64(len(entries)))
}

func (a auditTx) SetSpooled(ctx context.Context, node string, pos int64) error {
	if err := a.check(); err != nil {
		return err
	}
	return a.exec(`INSERT INTO audit_spool (node, pos) VALUES (?, ?) ON CONFLICT (node) DO UPDATE SET pos = excluded.pos`, node, pos)
}

// AuditSpooled is how far node's spool has been moved into the log.
func (s *Store) AuditSpooled(ctx context.Context, node string) (int64, error) {
	if s.down.Load() {
		return 0, errClosed()
	}
	var pos int64
	err := s.audit.rdb.QueryRowContext(ctx, `SELECT pos FROM audit_spool WHERE node = ?`, node).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return pos, toError(err)
}

// insert inserts rows (all of one width) with multi-row INSERTs of 64,
// 32, 16, 8, 4, 2 and 1 rows, so that a batch of n rows takes at most
// n/64+6 statements, each text prepared once per store.
func (a auditTx) insert(prefix string, rows [][]any) error {
	for len(rows) > 0 {
		n := 64
		for n > len(rows) {
			n /= 2
		}
		var q strings.Builder
		q.WriteString(prefix)
		one := "(?" + strings.Repeat(", ?", len(rows[0])-1) + ")"
		args := make([]any, 0, n*len(rows[0]))
		for i := range n {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(one)
			args = append(args, rows[i]...)
		}
		if err := a.exec(q.String(), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// exec runs a statement of the append, prepared once per store: the SQL
// text is fixed, and preparing it anew per entry was a third of an
// append's CPU (measured with BenchmarkRecord).
func (a auditTx) exec(q string, args ...any) error {
	st, closeIt, err := a.a.wq.get(context.Background(), q)
	if err != nil {
		return toError(err)
	}
	if closeIt {
		defer st.Close()
	}
	_, err = st.ExecContext(context.Background(), args...)
	return toError(err)
}

// auditHashes reads stored hashes by id with one statement whatever their
// number (the ids go in as a JSON array), so that it is prepared once.
func auditHashes(ctx context.Context, qc *queryCache, ids []int64) ([][]byte, error) {
	out := make([][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	pos := make(map[int64][]int, len(ids))
	list := make([]byte, 0, 12*len(ids))
	list = append(list, '[')
	for i, id := range ids {
		if i > 0 {
			list = append(list, ',')
		}
		list = strconv.AppendInt(list, id, 10)
		pos[id] = append(pos[id], i)
	}
	list = append(list, ']')
	st, closeIt, err := qc.get(ctx, `SELECT id, hash FROM audit_hashes WHERE id IN (SELECT value FROM json_each(?))`)
	if err != nil {
		return nil, toError(err)
	}
	if closeIt {
		defer st.Close()
	}
	rows, err := st.QueryContext(ctx, string(list))
	if err != nil {
		return nil, toError(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var h []byte
		if err := rows.Scan(&id, &h); err != nil {
			return nil, toError(err)
		}
		for _, i := range pos[id] {
			out[i] = h
		}
	}
	if err := rows.Err(); err != nil {
		return nil, toError(err)
	}
	for i, h := range out {
		if h == nil {
			return nil, fhir.Errorf(fhir.ENotFound, "", "no stored audit hash %d", ids[i])
		}
	}
	return out, nil
}

// AuditSize is the number of entries in the log.
func (s *Store) AuditSize(ctx context.Context) (int64, error) {
	if s.down.Load() {
		return 0, errClosed()
	}
	var n int64
	err := s.audit.rdb.QueryRowContext(ctx, `SELECT size FROM audit_head WHERE one = 1`).Scan(&n)
	return n, toError(err)
}

// AuditHashes returns stored hashes by id.
func (s *Store) AuditHashes(ctx context.Context, ids []int64) ([][]byte, error) {
	if s.down.Load() {
		return nil, errClosed()
	}
	return auditHashes(ctx, s.audit.rq, ids)
}

const auditColumns = `e.idx, e.time, e.who_user, e.who_role, e.who_org, e.who_client, e.patients, e.action, e.outcome, e.flags, e.restricted, e.event`

func scanAudit(rows *sql.Rows) ([]*store.AuditEntry, error) {
	defer rows.Close()
	var out []*store.AuditEntry
	for rows.Next() {
		e := &store.AuditEntry{}
		var patients, flags string
		if err := rows.Scan(&e.Index, &e.Time, &e.User, &e.Role, &e.Org, &e.Client, &patients,
			&e.Action, &e.Outcome, &flags, &e.Restricted, &e.Event); err != nil {
			return nil, toError(err)
		}
		e.Patients, e.Flags = store.SplitAuditList(patients), store.SplitAuditList(flags)
		out = append(out, e)
	}
	return out, toError(rows.Err())
}

// scanAuditIndexed scans entries followed by their aggregated index rows.
func scanAuditIndexed(rows *sql.Rows) ([]*store.AuditEntry, error) {
	defer rows.Close()
	var out []*store.AuditEntry
	for rows.Next() {
		e := &store.AuditEntry{}
		var patients, flags, indexed string
		if err := rows.Scan(&e.Index, &e.Time, &e.User, &e.Role, &e.Org, &e.Client, &patients,
			&e.Action, &e.Outcome, &flags, &e.Restricted, &e.Event, &indexed); err != nil {
			return nil, toError(err)
		}
		e.Patients, e.Flags = store.SplitAuditList(patients), store.SplitAuditList(flags)
		e.Indexed = store.ParseAuditIndexRows(indexed)
		out = append(out, e)
	}
	return out, toError(rows.Err())
}

// AuditEntries returns at most limit entries from Index from on, in index
// order.
func (s *Store) AuditEntries(ctx context.Context, from int64, limit int) ([]*store.AuditEntry, error) {
	if s.down.Load() {
		return nil, errClosed()
	}
	rows, err := s.audit.rdb.QueryContext(ctx, `SELECT `+auditColumns+`,
		coalesce((SELECT group_concat(p.patient || ':' || p.restricted, ' ' ORDER BY p.patient)
			FROM audit_patients p WHERE p.idx = e.idx), '')
		FROM audit_entries e WHERE e.idx >= ? ORDER BY e.idx LIMIT ?`, from, limit)
	if err != nil {
		return nil, toError(err)
	}
	return scanAuditIndexed(rows)
}

// SearchAudit answers q from the index that fits it best: the person's
// (patient, idx) key, then the user's or the organisation's (…, idx)
// index, the flagged entries, else the log newest first (a time range
// alone reads the time index and sorts what it finds).
func (s *Store) SearchAudit(ctx context.Context, q store.AuditQuery) ([]*store.AuditEntry, error) {
	if s.down.Load() {
		return nil, errClosed()
	}
	if q.Limit <= 0 {
		return nil, fhir.Internal(errors.New("sqlite: SearchAudit without a limit"))
	}
	sqlText, args := auditSearchSQL(q)
	rows, err := s.audit.rdb.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, toError(err)
	}
	return scanAudit(rows)
}

// auditSearchSQL is the statement SearchAudit runs for q. INDEXED BY pins
// the plan: with no statistics, SQLite could otherwise walk the primary
// key newest first and test every row.
func auditSearchSQL(q store.AuditQuery) (string, []any) {
	var from string
	var where []string
	var args []any
	order := "e.idx"
	switch {
	case q.Patient != "":
		from = `audit_patients p JOIN audit_entries e ON e.idx = p.idx`
		where = append(where, "p.patient = ?")
		args = append(args, q.Patient)
		if q.Unrestricted {
			where = append(where, "p.restricted = 0")
		}
		order = "p.idx"
	case q.User != "":
		from = `audit_entries e INDEXED BY audit_by_user`
	case q.Org != "":
		from = `audit_entries e INDEXED BY audit_by_org`
	case q.Flagged:
		from = `audit_entries e INDEXED BY audit_flagged`
	default:
		from = `audit_entries e`
	}
	if q.User != "" {
		where = append(where, "e.who_user = ? AND e.who_user <> ''")
		args = append(args, q.User)
	}
	if q.Org != "" {
		where = append(where, "e.who_org = ? AND e.who_org <> ''")
		args = append(args, q.Org)
	}
	if q.Flagged {
		where = append(where, "e.flags <> ''")
	}
	if q.Unrestricted {
		where = append(where, "e.restricted = 0")
	}
	if q.Since != 0 {
		where = append(where, "e.time >= ?")
		args = append(args, q.Since)
	}
	if q.Until != 0 {
		where = append(where, "e.time < ?")
		args = append(args, q.Until)
	}
	if q.Before > 0 {
		where = append(where, order+" < ?")
		args = append(args, q.Before)
	}
	sqlText := `SELECT ` + auditColumns + ` FROM ` + from
	if len(where) > 0 {
		sqlText += ` WHERE ` + strings.Join(where, " AND ")
	}
	sqlText += ` ORDER BY ` + order + ` DESC LIMIT ?`
	return sqlText, append(args, q.Limit)
}

// PutAuditCheckpoint stores a signed checkpoint.
func (s *Store) PutAuditCheckpoint(ctx context.Context, c *store.AuditCheckpoint) error {
	if s.down.Load() {
		return errClosed()
	}
	return s.audit.write(ctx, func(c2 *sql.Conn) error {
		_, err := c2.ExecContext(context.Background(), `INSERT INTO audit_checkpoints (size, root, note, time) VALUES (?, ?, ?, ?)`,
			c.Size, c.Root, c.Note, c.Time)
		return err
	})
}

// AuditCheckpoints returns the stored checkpoints, smallest first, or the
// latest alone.
func (s *Store) AuditCheckpoints(ctx context.Context, latest bool) ([]*store.AuditCheckpoint, error) {
	if s.down.Load() {
		return nil, errClosed()
	}
	q := `SELECT size, root, note, time FROM audit_checkpoints ORDER BY size, id`
	if latest {
		q = `SELECT size, root, note, time FROM audit_checkpoints ORDER BY size DESC, id DESC LIMIT 1`
	}
	rows, err := s.audit.rdb.QueryContext(ctx, q)
	if err != nil {
		return nil, toError(err)
	}
	defer rows.Close()
	var out []*store.AuditCheckpoint
	for rows.Next() {
		c := &store.AuditCheckpoint{}
		if err := rows.Scan(&c.Size, &c.Root, &c.Note, &c.Time); err != nil {
			return nil, toError(err)
		}
		out = append(out, c)
	}
	return out, toError(rows.Err())
}

// ExecAuditForTest runs one SQL statement on the audit file's write
// connection. It
// exists for the tests that tamper with the audit tables as an attacker
// with access to the file would, to show that audit verification catches
// it; nothing else calls it.
func (s *Store) ExecAuditForTest(ctx context.Context, sqlText string, args ...any) error {
	return s.audit.write(ctx, func(c *sql.Conn) error {
		_, err := c.ExecContext(context.Background(), sqlText, args...)
		return err
	})
}
