package sqlite

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Search returns current, non-deleted resources matching q, ordered by rid,
// one page at a time.
func (s *Store) Search(ctx context.Context, q *store.Query) (*store.Result, error) {
	if s.down.Load() {
		return nil, errClosed()
	}
	return search(ctx, s.rq, q)
}

// search translates q into SQL over the index tables (never reading a body
// to filter) and runs it on the connection behind qc.
//
// Paging is keyset paging on rid: the cursor is the last rid returned, and
// the next page is "rid > cursor". A resource's rid never changes, and new
// resources get larger rids, so rows that exist on both pages' reads are
// neither skipped nor repeated however the store changes in between; rows
// created meanwhile appear on a later page, and rows deleted meanwhile drop
// out.
func search(ctx context.Context, qc *queryCache, q *store.Query) (*store.Result, error) {
	after, err := decodeCursor(q.Cursor)
	if err != nil {
		return nil, err
	}
	var b sqlBuilder
	if err := b.where(q); err != nil {
		return nil, err
	}
	n := q.Count
	if n <= 0 {
		n = defaultCount
	}
	res := &store.Result{Total: -1}
	if q.Total {
		total, err := b.count(ctx, qc)
		if err != nil {
			return nil, err
		}
		res.Total = total
	}

	args := append(b.args, after, n+1)
	st, tmp, err := qc.get(ctx, b.pageSQL())
	if err != nil {
		return nil, toError(err)
	}
	if tmp {
		defer st.Close()
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, toError(err)
	}
	defer rows.Close()
	res.Versions = make([]*store.Version, 0, min(n, 64))
	var last int64
	for rows.Next() {
		if len(res.Versions) == n {
			res.Next = encodeCursor(last)
			break
		}
		var v *store.Version
		v, err = scanVersion(ridScanner{rows, &last})
		if err != nil {
			return nil, toError(err)
		}
		res.Versions = append(res.Versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, toError(err)
	}
	return res, nil
}

// ridScanner prepends the rid column to a versionCols scan.
type ridScanner struct {
	sc  scanner
	rid *int64
}

func (r ridScanner) Scan(dest ...any) error {
	return r.sc.Scan(append([]any{r.rid}, dest...)...)
}

// sqlBuilder accumulates a WHERE clause over resources r and its arguments.
type sqlBuilder struct {
	sb   strings.Builder
	args []any
}

func (b *sqlBuilder) where(q *store.Query) error {
	b.sb.WriteString("r.deleted = 0")
	if len(q.Types) > 0 {
		// With clauses, the unary + keeps SQLite from driving the query by
		// scanning every resource of the type: the clauses' rid sets are far
		// more selective, and each already filters by type inside its index.
		if len(q.Clauses) > 0 {
			b.sb.WriteString(" AND +r.type IN (" + placeholders(len(q.Types)) + ")")
		} else {
			b.sb.WriteString(" AND r.type IN (" + placeholders(len(q.Types)) + ")")
		}
		for _, t := range q.Types {
			b.args = append(b.args, t)
		}
	}
	// Each clause becomes one set of rids (a UNION of its conditions'
	// index lookups), so the planner drives from an index lookup and probes
	// the other clauses' sets, never scanning resources.
	for _, cl := range q.Clauses {
		if len(cl) == 0 {
			// An empty OR holds for nothing: fail closed, never wider.
			b.sb.WriteString(" AND 0")
			continue
		}
		b.sb.WriteString(" AND r.rid IN (")
		for i, c := range cl {
			if i > 0 {
				b.sb.WriteString(" UNION ")
			}
			if err := b.cond(c, q.Types); err != nil {
				return err
			}
		}
		b.sb.WriteString(")")
	}
	return nil
}

// cond writes one condition as a SELECT of matching rids.
func (b *sqlBuilder) cond(c store.Cond, types []string) error {
	switch c.Kind {
	case store.CondID:
		b.sb.WriteString("SELECT rid FROM resources WHERE id = ?")
		b.args = append(b.args, c.Code)
	case store.CondToken:
		b.sb.WriteString("SELECT rid FROM idx_token WHERE param = ?")
		b.args = append(b.args, c.Param)
		if !c.AnyCode {
			b.sb.WriteString(" AND code = ?")
			b.args = append(b.args, c.Code)
		}
		if !c.AnySystem {
			b.sb.WriteString(" AND system = ?")
			b.args = append(b.args, c.System)
		}
	default:
		// A condition this store cannot answer exactly is an error, never a
		// wider result.
		return fhir.Errorf(fhir.ENotSupported, "", "search condition kind %d is not supported by this store", c.Kind)
	}
	// The type filter inside the lookup lets the covering index (..., type,
	// rid) or UNIQUE (type, id) answer it alone.
	if len(types) > 0 {
		b.sb.WriteString(" AND type IN (" + placeholders(len(types)) + ")")
		for _, t := range types {
			b.args = append(b.args, t)
		}
	}
	return nil
}

// pageSQL selects one page; its last two arguments are the cursor's rid
// and the row limit.
func (b *sqlBuilder) pageSQL() string {
	return "SELECT r.rid, " + versionCols + " FROM resources r JOIN resource_versions v ON v.seq = r.seq WHERE " +
		b.sb.String() + " AND r.rid > ? ORDER BY r.rid LIMIT ?"
}

func (b *sqlBuilder) countSQL() string {
	return "SELECT count(*) FROM resources r WHERE " + b.sb.String()
}

func (b *sqlBuilder) count(ctx context.Context, qc *queryCache) (int, error) {
	st, tmp, err := qc.get(ctx, b.countSQL())
	if err != nil {
		return 0, toError(err)
	}
	if tmp {
		defer st.Close()
	}
	var n int
	if err := st.QueryRowContext(ctx, b.args...).Scan(&n); err != nil {
		return 0, toError(err)
	}
	return n, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// Cursors are "r" and the last rid, base64url-encoded: opaque to clients,
// and versioned by the prefix letter should the paging key ever change.
func encodeCursor(rid int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("r" + strconv.FormatInt(rid, 10)))
}

func decodeCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil && len(raw) > 1 && raw[0] == 'r' {
		if rid, err := strconv.ParseInt(string(raw[1:]), 10, 64); err == nil && rid > 0 {
			return rid, nil
		}
	}
	return 0, fhir.Invalid("", "invalid or expired page cursor %s", fmt.Sprintf("%q", c))
}
