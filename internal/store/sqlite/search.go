package sqlite

import (
	"context"
	"strings"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Search returns current, non-deleted resources matching q, one page at a
// time, in the order of q.Sort (rid when empty).
func (s *Store) Search(ctx context.Context, q *store.Query) (*store.Result, error) {
	if s.down.Load() {
		return nil, errClosed()
	}
	select {
	case s.searchSlots <- struct{}{}:
		defer func() { <-s.searchSlots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return search(ctx, s.rq, q)
}

// search translates q into SQL over the index tables (never reading a body
// to filter) and runs it on the connection behind qc.
//
// Paging is keyset paging on (sort values..., rid): the cursor holds the
// last (or, for a previous page, the first) row's sort values and rid, and
// the next page starts strictly after it in the query's order. A resource's
// rid never changes, so a resource whose sort values did not change between
// two pages is neither skipped nor repeated however the store changes in
// between; resources created, changed or deleted meanwhile appear or drop
// out according to their new values.
func search(ctx context.Context, qc *queryCache, q *store.Query) (*store.Result, error) {
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
		var cb sqlBuilder
		if err := cb.where(q); err != nil {
			return nil, err
		}
		total, err := cb.count(ctx, qc)
		if err != nil {
			return nil, err
		}
		res.Total = total
	}
	pageSQL, args, err := b.page(q.Sort, cur, n+1)
	if err != nil {
		return nil, err
	}
	rows, err := queryRows(ctx, qc, pageSQL, args)
	if err != nil {
		return nil, err
	}
	type row struct {
		v    *store.Version
		key  cursor
		rid  int64
		vals []any
	}
	var got []row
	for rows.Next() {
		vals := make([]any, len(q.Sort))
		var rid int64
		dest := make([]any, 0, 1+len(vals))
		dest = append(dest, &rid)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		v, err := scanVersion(prefixScanner{rows, dest})
		if err != nil {
			rows.Close()
			return nil, toError(err)
		}
		for i, x := range vals {
			if bs, ok := x.([]byte); ok {
				vals[i] = string(bs)
			}
		}
		got = append(got, row{v: v, rid: rid, vals: vals})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, toError(err)
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
		if err := includes(ctx, qc, q, rids, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// prefixScanner scans extra leading columns into dest before a versionCols
// scan.
type prefixScanner struct {
	sc   scanner
	dest []any
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.sc.Scan(append(p.dest, dest...)...)
}

// queryRows runs a generated query through the statement cache.
func queryRows(ctx context.Context, qc *queryCache, sqlText string, args []any) (*rowsCloser, error) {
	st, tmp, err := qc.get(ctx, sqlText)
	if err != nil {
		return nil, toError(err)
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		if tmp {
			st.Close()
		}
		return nil, toError(err)
	}
	rc := &rowsCloser{Rows: rows}
	if tmp {
		rc.st = st
	}
	return rc, nil
}

func (b *sqlBuilder) count(ctx context.Context, qc *queryCache) (int, error) {
	rows, err := queryRows(ctx, qc, b.countSQL(), b.args)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, toError(err)
		}
	}
	return n, toError(rows.Err())
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func notSupported(format string, a ...any) error {
	return fhir.Errorf(fhir.ENotSupported, "", format, a...)
}
