package postgres

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Search returns current, non-deleted resources matching q, in rid order, one
// page at a time.
func (s *Store) Search(ctx context.Context, q *store.Query) (*store.Result, error) {
	res, err := search(ctx, s.pool, q)
	if err != nil {
		return nil, dbError(err)
	}
	return res, nil
}

// search translates q into SQL over resources and the index tables (never
// reading a body to filter) and runs it on qr.
//
// Paging is keyset paging on rid: the cursor is the last rid returned and
// the next page is "rid > cursor". A resource's rid never changes and new
// resources get larger rids, so rows present at both pages' reads are
// neither skipped nor repeated however the store changes in between.
func search(ctx context.Context, qr querier, q *store.Query) (*store.Result, error) {
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
		if err := qr.QueryRow(ctx, `SELECT count(*) FROM resources r WHERE `+b.sb.String(), b.args...).Scan(&res.Total); err != nil {
			return nil, err
		}
	}
	sql := `SELECT r.rid, ` + versionColumns + ` FROM resources r JOIN resource_versions v ON v.seq = r.seq WHERE ` +
		b.sb.String() + ` AND r.rid > ` + b.arg(after) + ` ORDER BY r.rid LIMIT ` + b.arg(n+1)
	rows, err := qr.Query(ctx, sql, b.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	res.Versions = make([]*store.Version, 0, min(n, 64))
	var last int64
	for rows.Next() {
		if len(res.Versions) == n {
			res.Next = encodeCursor(last)
			break
		}
		v, err := scanVersion(ridRow{rows, &last})
		if err != nil {
			return nil, err
		}
		res.Versions = append(res.Versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// ridRow prepends the rid column to a versionColumns scan.
type ridRow struct {
	row interface{ Scan(...any) error }
	rid *int64
}

func (r ridRow) Scan(dest ...any) error { return r.row.Scan(append([]any{r.rid}, dest...)...) }

// sqlBuilder accumulates a WHERE clause over resources r and its arguments.
type sqlBuilder struct {
	sb   strings.Builder
	args []any
}

func (b *sqlBuilder) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

func (b *sqlBuilder) where(q *store.Query) error {
	b.sb.WriteString("NOT r.deleted")
	types := ""
	if len(q.Types) > 0 {
		types = b.arg(q.Types)
		b.sb.WriteString(" AND r.type = ANY(" + types + "::text[])")
	}
	for _, cl := range q.Clauses {
		if len(cl) == 0 {
			// An empty OR holds for nothing: fail closed, never wider.
			b.sb.WriteString(" AND false")
			continue
		}
		b.sb.WriteString(" AND (")
		for i, c := range cl {
			if i > 0 {
				b.sb.WriteString(" OR ")
			}
			if err := b.cond(c, types); err != nil {
				return err
			}
		}
		b.sb.WriteString(")")
	}
	return nil
}

// cond writes one condition. Index lookups are "rid IN (subquery)" with the
// type filter repeated inside, so the planner can answer the subquery from
// the index table's (type, param, ...) index alone and probe resources by
// rid.
func (b *sqlBuilder) cond(c store.Cond, types string) error {
	switch c.Kind {
	case store.CondID:
		b.sb.WriteString("r.id = " + b.arg(clean(c.Code)))
	case store.CondToken:
		b.sb.WriteString("r.rid IN (SELECT rid FROM idx_token WHERE param = " + b.arg(clean(c.Param)))
		if types != "" {
			b.sb.WriteString(" AND type = ANY(" + types + "::text[])")
		}
		if !c.AnyCode {
			// left() first so the (…, left(code, 256), …) index applies;
			// the full comparison keeps the match exact.
			p := b.arg(clean(c.Code))
			b.sb.WriteString(" AND left(code, 256) = left(" + p + "::text, 256) AND code = " + p)
		}
		if !c.AnySystem {
			p := b.arg(clean(c.System))
			b.sb.WriteString(" AND left(system, 256) = left(" + p + "::text, 256) AND system = " + p)
		}
		b.sb.WriteString(")")
	default:
		// A condition this store cannot answer exactly is an error, never a
		// wider result.
		return fhir.Errorf(fhir.ENotSupported, "", "search condition kind %d is not supported by this store", c.Kind)
	}
	return nil
}

// Cursors are "r" and the last rid, base64url-encoded (the same form as the
// SQLite store's): opaque to clients, and versioned by the prefix letter
// should the paging key ever change.
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
