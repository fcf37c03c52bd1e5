package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sharedcare/sharedcare/internal/store"
)

// Search returns current, non-deleted resources matching q, one page at a
// time, in the order of q.Sort (rid when empty).
func (s *Store) Search(ctx context.Context, q *store.Query) (*store.Result, error) {
	select {
	case s.searchSlots <- struct{}{}:
		defer func() { <-s.searchSlots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res, err := search(ctx, s.pool, q)
	if err != nil {
		return nil, dbError(err)
	}
	return res, nil
}

// search translates q into SQL over resources and the index tables (never
// reading a body to filter; see translate.go) and runs it on qr.
//
// Paging is keyset paging on (sort values..., rid): the cursor holds the
// last (or, for a previous page, the first) row's sort values and rid, and
// the next page starts strictly after it in the query's order. A resource's
// rid never changes, so a resource whose sort values did not change between
// two pages is neither skipped nor repeated however the store changes in
// between; resources created, changed or deleted meanwhile appear or drop
// out according to their new values.
func search(ctx context.Context, qr querier, q *store.Query) (*store.Result, error) {
	cur, err := decodeCursor(q.Cursor, q.Sort)
	if err != nil {
		return nil, err
	}
	var b sqlBuilder
	if err := b.wherePage(q); err != nil {
		return nil, err
	}
	n := q.Count
	if n <= 0 {
		n = defaultCount
	}
	res := &store.Result{Total: -1}
	if q.Total {
		// The same conditions (filter included), without the page's keyset.
		var cb sqlBuilder
		if err := cb.where(q); err != nil {
			return nil, err
		}
		if err := qr.QueryRow(ctx, `SELECT count(*) FROM resources r WHERE `+cb.sb.String(), cb.args...).Scan(&res.Total); err != nil {
			return nil, err
		}
	}
	pageSQL, err := b.page(q.Sort, cur, n+1)
	if err != nil {
		return nil, err
	}
	args := b.args
	if len(q.Sort) > 0 {
		args = custom(args)
	}
	rows, err := qr.Query(ctx, pageSQL, args...)
	if err != nil {
		return nil, err
	}
	type row struct {
		v    *store.Version
		rid  int64
		vals []any
	}
	var got []row
	for rows.Next() {
		r := row{vals: make([]any, len(q.Sort))}
		dest := make([]any, 0, 1+len(r.vals))
		dest = append(dest, &r.rid)
		for i := range r.vals {
			dest = append(dest, &r.vals[i])
		}
		r.v, err = scanVersion(prefixRow{rows, dest})
		if err != nil {
			rows.Close()
			return nil, err
		}
		got = append(got, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// The rows are in forward order either way (page sorts them so); a
	// backward page fetched one extra row at its far (first) end.
	more := len(got) > n
	if cur.back {
		if more {
			got = got[1:]
		}
	} else if more {
		got = got[:n]
	}
	res.Versions = make([]*store.Version, len(got))
	rids := make([]int64, len(got))
	for i, r := range got {
		res.Versions[i] = r.v
		rids[i] = r.rid
	}
	if len(got) > 0 {
		first, last := got[0], got[len(got)-1]
		if cur.back {
			res.Next = encodeCursor(q.Sort, cursor{vals: last.vals, rid: last.rid})
			if more {
				res.Prev = encodeCursor(q.Sort, cursor{back: true, vals: first.vals, rid: first.rid})
			}
		} else {
			if more {
				res.Next = encodeCursor(q.Sort, cursor{vals: last.vals, rid: last.rid})
			}
			if q.Cursor != "" {
				res.Prev = encodeCursor(q.Sort, cursor{back: true, vals: first.vals, rid: first.rid})
			}
		}
	}
	if len(rids) > 0 && (len(q.Include) > 0 || len(q.RevInclude) > 0) {
		if err := includes(ctx, qr, q, rids, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// custom makes a search statement run with its values written into it
// (pgx's simple protocol, which quotes them), so that PostgreSQL plans it
// for its values every time; a prepared statement runs its generic plan,
// planned without the values (Open sets plan_cache_mode): for
// Observation by patient and code sorted by date the generic plan drove
// from the code and took 3 s at p50 on 1.3 million resources, against
// 5 ms for plans made for the values (measured). Unsorted pages keep the
// cached statement: their generic plan streams the driving index in rid
// order, where per-value plans (misled by estimates of left() ranges) read
// every row of a common code first: Observation by code and date range
// went from 8 ms to 1.4 s at p50, $everything from 30 ms to 860 ms.
func custom(args []any) []any {
	return append([]any{pgx.QueryExecModeSimpleProtocol}, args...)
}

// prefixRow scans extra leading columns into dest before a versionColumns
// scan.
type prefixRow struct {
	row  pgx.Row
	dest []any
}

func (p prefixRow) Scan(dest ...any) error {
	return p.row.Scan(append(p.dest, dest...)...)
}
