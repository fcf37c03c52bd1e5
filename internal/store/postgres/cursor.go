package postgres

import "github.com/sharedcare/sharedcare/internal/store"

// cursor is a position in a query's order: a row's sort values and rid;
// back marks a cursor for the page before that row. Its encoding is
// store.EncodeCursor, shared by every backend.
type cursor struct {
	back bool
	vals []any // int64, float64, string, time.Time or nil, one per sort key
	rid  int64
}

func encodeCursor(keys []store.SortKey, c cursor) string {
	return store.EncodeCursor(keys, store.Cursor{Back: c.back, Vals: c.vals, RID: c.rid})
}

func decodeCursor(s string, keys []store.SortKey) (cursor, error) {
	c, err := store.DecodeCursor(s, keys)
	return cursor{back: c.Back, vals: c.Vals, rid: c.RID}, err
}
