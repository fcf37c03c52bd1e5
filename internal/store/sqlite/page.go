package sqlite

import (
	"database/sql"
	"fmt"
	"strings"

	"github.com/sharedcare/sharedcare/internal/store"
)

// This file orders and pages a query's matches: sort keys as per-resource
// aggregates of their index rows, and keyset cursors over (sort values...,
// rid).

// sortExpr is the SQL value of sort key k for resources row r.
func sortExpr(k store.SortKey) (string, []any, error) {
	agg := "min"
	if k.Desc {
		agg = "max"
	}
	var tbl, asc, desc string
	switch k.Kind {
	case store.CondID:
		return "r.id", nil, nil
	case store.CondLastUpdated:
		return "r.last_updated", nil, nil
	case store.CondDate, store.CondNumber, store.CondQuantity:
		t, _ := condTable(k.Kind)
		tbl, asc, desc = idxTables[t], "lo", "hi"
	case store.CondString:
		tbl, asc, desc = "idx_string", "norm", "norm"
	case store.CondToken:
		tbl, asc, desc = "idx_token", "code || char(31) || system", "code || char(31) || system"
	case store.CondReference:
		tbl, asc, desc = "idx_reference", "ref_type || '/' || ref_id || char(31) || url", "ref_type || '/' || ref_id || char(31) || url"
	case store.CondURI:
		tbl, asc, desc = "idx_uri", "value", "value"
	default:
		return "", nil, notSupported("sort by a parameter of kind %d (%s)", k.Kind, k.Param)
	}
	col := asc
	if k.Desc {
		col = desc
	}
	if len(k.Also) == 0 {
		return "(SELECT " + agg + "(" + col + ") FROM " + tbl + " WHERE " + rowsOf("key", "r") + " AND +param = ?)", []any{k.Param}, nil
	}
	args := []any{k.Param}
	for _, p := range k.Also {
		args = append(args, p)
	}
	return "(SELECT " + agg + "(" + col + ") FROM " + tbl + " WHERE " + rowsOf("key", "r") + " AND +param IN (?" + strings.Repeat(", ?", len(k.Also)) + "))", args, nil
}

// page returns the SQL and arguments of one page of at most limit rows
// after (or, for a backward cursor, before) cur, in the query's order. Its
// columns are rid, the sort values, then versionCols.
func (b *sqlBuilder) page(keys []store.SortKey, cur cursor, limit int) (string, []any, error) {
	if len(keys) == 0 {
		// rid order: the keyset is one comparison inside the query, on
		// the driving rows' rid when streaming, so the index walk starts
		// at the cursor and stops after limit rows.
		from, ridCol, group := "resources r", "r.rid", ""
		if b.stream {
			from, ridCol, group = b.streamFrom(b.streamCond), "d.rid", " GROUP BY d.rid"
		}
		cmp, dir := " > ?", ""
		if cur.back {
			cmp, dir = " < ?", " DESC"
		}
		args := append([]any{}, b.args...)
		keyset := ""
		if cur.rid > 0 {
			keyset = " AND " + ridCol + cmp
			args = append(args, cur.rid)
		}
		args = append(args, limit)
		inner := "SELECT r.rid AS rid FROM " + from + " WHERE " + b.sb.String() + keyset + group + " ORDER BY " + ridCol + dir + " LIMIT ?"
		return "SELECT p.rid, " + versionCols + " FROM (" + inner + ") p JOIN resources r ON r.rid = p.rid JOIN resource_versions v ON v.seq = r.seq ORDER BY p.rid", args, nil
	}
	var sel, order, outer strings.Builder
	var args []any
	exprs := make([]string, len(keys))
	for i, k := range keys {
		e, a, err := sortExpr(k)
		if err != nil {
			return "", nil, err
		}
		exprs[i] = e
		fmt.Fprintf(&sel, ", %s AS s%d", e, i)
		args = append(args, a...)
	}
	args = append(args, b.args...)
	// Order: per key, rows without a value last, then the value in the
	// key's direction; rid ascending last. A backward page reads the
	// reverse order and the outer query restores the forward one.
	for i, k := range keys {
		fwd, bwd := "", " DESC"
		if k.Desc {
			fwd, bwd = " DESC", ""
		}
		if cur.back {
			fmt.Fprintf(&order, "s%d IS NULL DESC, s%d%s, ", i, i, bwd)
		} else {
			fmt.Fprintf(&order, "s%d IS NULL, s%d%s, ", i, i, fwd)
		}
		fmt.Fprintf(&outer, "p.s%d IS NULL, p.s%d%s, ", i, i, fwd)
	}
	if cur.back {
		order.WriteString("rid DESC")
	} else {
		order.WriteString("rid")
	}
	outer.WriteString("p.rid")
	var keyset string
	if cur.rid > 0 {
		var ka []any
		keyset, ka = keysetPred(keys, cur)
		keyset = " AND " + keyset
		args = append(args, ka...)
	}
	args = append(args, limit)
	inner := "SELECT r.rid AS rid" + sel.String() + " FROM resources r WHERE " + b.sb.String()
	var cols strings.Builder
	for i := range keys {
		fmt.Fprintf(&cols, ", p.s%d", i)
	}
	q := "SELECT p.rid" + cols.String() + ", " + versionCols + " FROM (SELECT * FROM (" + inner + ") WHERE 1" + keyset +
		" ORDER BY " + order.String() + " LIMIT ?) p JOIN resources r ON r.rid = p.rid JOIN resource_versions v ON v.seq = r.seq ORDER BY " + outer.String()
	return q, args, nil
}

// keysetPred is the test "strictly after cur" (before, for a backward
// cursor) in the order of keys then rid, over the columns s0.. and rid.
func keysetPred(keys []store.SortKey, cur cursor) (string, []any) {
	var args []any
	pred := "rid > ?"
	if cur.back {
		pred = "rid < ?"
	}
	tail := []any{cur.rid}
	for i := len(keys) - 1; i >= 0; i-- {
		s := fmt.Sprintf("s%d", i)
		v := cur.vals[i]
		var beyond, same string
		var bargs, sargs []any
		if v == nil {
			if cur.back {
				beyond = s + " IS NOT NULL" // every value comes before NULL
			} else {
				beyond = "0" // nothing comes after NULL
			}
			same = s + " IS NULL"
		} else {
			gt := (keys[i].Desc == cur.back) // ascending forward, or descending backward
			op := "<"
			if gt {
				op = ">"
			}
			if cur.back {
				beyond = s + " " + op + " ?"
			} else {
				beyond = "(" + s + " IS NULL OR " + s + " " + op + " ?)"
			}
			bargs = []any{v}
			same = s + " = ?"
			sargs = []any{v}
		}
		pred = "(" + beyond + " OR (" + same + " AND " + pred + "))"
		tail = append(append(append([]any{}, bargs...), sargs...), tail...)
	}
	args = append(args, tail...)
	return pred, args
}

// rowsCloser is query rows that also close their statement when it was
// not cached.
type rowsCloser struct {
	*sql.Rows
	st *sql.Stmt
}

func (r *rowsCloser) Close() error {
	err := r.Rows.Close()
	if r.st != nil {
		r.st.Close()
		r.st = nil
	}
	return err
}
