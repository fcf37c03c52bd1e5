package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// The audit log (store.AuditStore, migrations/0005_audit.sql). Every node
// sharing the database appends under one row lock, audit_head's, taken
// first in the append transaction and held to its COMMIT: the size read
// under it is the size appended at, so leaf numbers neither collide nor
// gap across nodes. The batch each node group-commits (package audit)
// makes one transaction, so the lock is taken once per batch, not per
// entry.

var _ store.AuditStore = (*Store)(nil)

// auditTx is the store.AuditTx of one AppendAudit.
type auditTx struct {
	tx   pgx.Tx
	size int64
}

// AppendAudit runs fn in one transaction holding the append lock.
func (s *Store) AppendAudit(ctx context.Context, fn func(store.AuditTx) error) (err error) {
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return dbError(err)
	}
	defer func() {
		if err != nil {
			ptx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	a := &auditTx{tx: ptx}
	if err := ptx.QueryRow(ctx, `SELECT size FROM audit_head WHERE one = 1 FOR UPDATE`).Scan(&a.size); err != nil {
		return dbError(err)
	}
	if err := fn(a); err != nil {
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		return dbError(err)
	}
	return nil
}

func (a *auditTx) Size(ctx context.Context) (int64, error) { return a.size, nil }

func (a *auditTx) Hashes(ctx context.Context, ids []int64) ([][]byte, error) {
	return auditHashes(ctx, a.tx, ids)
}

func (a *auditTx) Append(ctx context.Context, entries []*store.AuditEntry, firstHash int64, hashes [][]byte) error {
	// Each table's rows in one statement of arrays (unnest): a statement
	// per entry made the audit mover's transactions of a thousand entries
	// cost 3.5 times as much per entry as SQLite's.
	n := len(entries)
	var (
		idx, tm                                                 = make([]int64, n), make([]int64, n)
		user, role, org, client, patients, action, outcome, flg = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		restricted                                              = make([]bool, n)
		event                                                   = make([][]byte, n)
		pPatient                                                []string
		pIdx                                                    []int64
		pRestricted                                             []bool
	)
	for i, e := range entries {
		if e.Index != a.size+int64(i) {
			return fhir.Internal(fmt.Errorf("postgres: audit entry appended at %d, the log's next index is %d", e.Index, a.size+int64(i)))
		}
		idx[i], tm[i], user[i], role[i], org[i], client[i] = e.Index, e.Time, e.User, e.Role, e.Org, e.Client
		patients[i], action[i], outcome[i], flg[i] = strings.Join(e.Patients, " "), e.Action, e.Outcome, strings.Join(e.Flags, " ")
		restricted[i], event[i] = e.Restricted, e.Event
		for _, p := range e.Patients {
			pPatient, pIdx, pRestricted = append(pPatient, p), append(pIdx, e.Index), append(pRestricted, e.Restricted)
		}
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO audit_entries
		(idx, time, who_user, who_role, who_org, who_client, patients, action, outcome, flags, restricted, event)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::text[], $11::boolean[], $12::bytea[])`,
		idx, tm, user, role, org, client, patients, action, outcome, flg, restricted, event)
	if len(pPatient) > 0 {
		b.Queue(`INSERT INTO audit_patients (patient, idx, restricted)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::boolean[]) ON CONFLICT DO NOTHING`,
			pPatient, pIdx, pRestricted)
	}
	ids := make([]int64, len(hashes))
	for i := range hashes {
		ids[i] = firstHash + int64(i)
	}
	b.Queue(`INSERT INTO audit_hashes (id, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, ids, hashes)
	a.size += int64(len(entries))
	b.Queue(`UPDATE audit_head SET size = $1 WHERE one = 1`, a.size)
	if err := a.tx.SendBatch(ctx, b).Close(); err != nil {
		return dbError(err)
	}
	return nil
}

func (a *auditTx) SetSpooled(ctx context.Context, node string, pos int64) error {
	_, err := a.tx.Exec(ctx, `INSERT INTO audit_spool (node, pos) VALUES ($1, $2)
		ON CONFLICT (node) DO UPDATE SET pos = excluded.pos`, node, pos)
	if err != nil {
		return dbError(err)
	}
	return nil
}

// AuditSpooled is how far node's spool has been moved into the log.
func (s *Store) AuditSpooled(ctx context.Context, node string) (int64, error) {
	var pos int64
	err := s.pool.QueryRow(ctx, `SELECT pos FROM audit_spool WHERE node = $1`, node).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, dbError(err)
	}
	return pos, nil
}

// auditQuerier is a pool or a transaction.
type auditQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func auditHashes(ctx context.Context, q auditQuerier, ids []int64) ([][]byte, error) {
	out := make([][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT id, hash FROM audit_hashes WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	got := make(map[int64][]byte, len(ids))
	for rows.Next() {
		var id int64
		var h []byte
		if err := rows.Scan(&id, &h); err != nil {
			return nil, dbError(err)
		}
		got[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err)
	}
	for i, id := range ids {
		if out[i] = got[id]; out[i] == nil {
			return nil, fhir.Errorf(fhir.ENotFound, "", "no stored audit hash %d", id)
		}
	}
	return out, nil
}

// AuditSize is the number of entries in the log.
func (s *Store) AuditSize(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT size FROM audit_head WHERE one = 1`).Scan(&n); err != nil {
		return 0, dbError(err)
	}
	return n, nil
}

// AuditHashes returns stored hashes by id.
func (s *Store) AuditHashes(ctx context.Context, ids []int64) ([][]byte, error) {
	return auditHashes(ctx, s.pool, ids)
}

const auditColumns = `e.idx, e.time, e.who_user, e.who_role, e.who_org, e.who_client, e.patients, e.action, e.outcome, e.flags, e.restricted, e.event`

func scanAudit(rows pgx.Rows, err error) ([]*store.AuditEntry, error) {
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*store.AuditEntry
	for rows.Next() {
		e := &store.AuditEntry{}
		var patients, flags string
		if err := rows.Scan(&e.Index, &e.Time, &e.User, &e.Role, &e.Org, &e.Client, &patients,
			&e.Action, &e.Outcome, &flags, &e.Restricted, &e.Event); err != nil {
			return nil, dbError(err)
		}
		e.Patients, e.Flags = store.SplitAuditList(patients), store.SplitAuditList(flags)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err)
	}
	return out, nil
}

// AuditEntries returns at most limit entries from Index from on, in index
// order.
func (s *Store) AuditEntries(ctx context.Context, from int64, limit int) ([]*store.AuditEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+`,
		coalesce((SELECT string_agg(p.patient || ':' || (CASE WHEN p.restricted THEN '1' ELSE '0' END), ' ' ORDER BY p.patient)
			FROM audit_patients p WHERE p.idx = e.idx), '')
		FROM audit_entries e WHERE e.idx >= $1 ORDER BY e.idx LIMIT $2`, from, limit)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*store.AuditEntry
	for rows.Next() {
		e := &store.AuditEntry{}
		var patients, flags, indexed string
		if err := rows.Scan(&e.Index, &e.Time, &e.User, &e.Role, &e.Org, &e.Client, &patients,
			&e.Action, &e.Outcome, &flags, &e.Restricted, &e.Event, &indexed); err != nil {
			return nil, dbError(err)
		}
		e.Patients, e.Flags = store.SplitAuditList(patients), store.SplitAuditList(flags)
		e.Indexed = store.ParseAuditIndexRows(indexed)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err)
	}
	return out, nil
}

// SearchAudit answers q from the index that fits it best (see the SQLite
// store's for the order); the partial indexes' predicates are repeated in
// the query so that the planner can use them.
func (s *Store) SearchAudit(ctx context.Context, q store.AuditQuery) ([]*store.AuditEntry, error) {
	if q.Limit <= 0 {
		return nil, fhir.Internal(errors.New("postgres: SearchAudit without a limit"))
	}
	sqlText, args := auditSearchSQL(q)
	return scanAudit(s.pool.Query(ctx, sqlText, args...))
}

// auditSearchSQL is the statement SearchAudit runs for q.
func auditSearchSQL(q store.AuditQuery) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	from, order := `audit_entries e`, "e.idx"
	if q.Patient != "" {
		from, order = `audit_patients p JOIN audit_entries e ON e.idx = p.idx`, "p.idx"
		where = append(where, "p.patient = "+arg(q.Patient))
		if q.Unrestricted {
			where = append(where, "NOT p.restricted")
		}
	}
	if q.User != "" {
		where = append(where, "e.who_user = "+arg(q.User)+" AND e.who_user <> ''")
	}
	if q.Org != "" {
		where = append(where, "e.who_org = "+arg(q.Org)+" AND e.who_org <> ''")
	}
	if q.Flagged {
		where = append(where, "e.flags <> ''")
	}
	if q.Unrestricted {
		where = append(where, "NOT e.restricted")
	}
	if q.Since != 0 {
		where = append(where, "e.time >= "+arg(q.Since))
	}
	if q.Until != 0 {
		where = append(where, "e.time < "+arg(q.Until))
	}
	if q.Before > 0 {
		where = append(where, order+" < "+arg(q.Before))
	}
	sqlText := `SELECT ` + auditColumns + ` FROM ` + from
	if len(where) > 0 {
		sqlText += ` WHERE ` + strings.Join(where, " AND ")
	}
	sqlText += ` ORDER BY ` + order + ` DESC LIMIT ` + arg(q.Limit)
	return sqlText, args
}

// PutAuditCheckpoint stores a signed checkpoint.
func (s *Store) PutAuditCheckpoint(ctx context.Context, c *store.AuditCheckpoint) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_checkpoints (size, root, note, time) VALUES ($1, $2, $3, $4)`,
		c.Size, c.Root, c.Note, c.Time)
	if err != nil {
		return dbError(err)
	}
	return nil
}

// AuditCheckpoints returns the stored checkpoints, smallest first, or the
// latest alone.
func (s *Store) AuditCheckpoints(ctx context.Context, latest bool) ([]*store.AuditCheckpoint, error) {
	q := `SELECT size, root, note, time FROM audit_checkpoints ORDER BY size, id`
	if latest {
		q = `SELECT size, root, note, time FROM audit_checkpoints ORDER BY size DESC, id DESC LIMIT 1`
	}
	rows, err := s.pool.Query(ctx, q)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*store.AuditCheckpoint
	for rows.Next() {
		c := &store.AuditCheckpoint{}
		if err := rows.Scan(&c.Size, &c.Root, &c.Note, &c.Time); err != nil {
			return nil, dbError(err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err)
	}
	return out, nil
}

// ExecAuditForTest runs one SQL statement on the store's database. It
// exists for the tests that tamper with the audit tables as an attacker
// with database access would, to show that audit verification catches it;
// nothing else calls it.
func (s *Store) ExecAuditForTest(ctx context.Context, sql string, args ...any) error {
	if _, err := s.pool.Exec(ctx, sql, args...); err != nil {
		return dbError(err)
	}
	return nil
}
