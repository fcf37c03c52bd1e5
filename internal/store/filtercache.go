package store

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
)

// FilterCache keeps the SQL a backend built for an access filter, with its
// arguments, by the filter's content and the alias it tests, so that the
// same caller's next request reuses it. A caller's filter is the same from
// one request to the next (the access layer compiles it once and narrows
// it the same way for the same kind of request); building its SQL was
// about 6 us of the 25 us a GP clinician's search by subject paid over the
// operator's on SQLite, and keeping it took about 5 us off the same search
// on PostgreSQL (docs/ACCESS.md).
//
// It is keyed by content, not by pointer, and a hit is compared in full
// with the filter it was built from, so that a hash collision or a filter
// changed after use can never be answered with another filter's SQL. The
// zero value is ready to use.
type FilterCache struct {
	mu sync.Mutex
	m  map[uint64]*filterEntry
}

// filterCacheMax bounds the filters whose SQL is kept; past it the cache
// starts afresh. filterCacheItems bounds the size of a filter worth
// keeping: one listing hundreds of people is rare, its query costs far
// more than building it, and keeping it would hold a lot of memory.
const (
	filterCacheMax   = 256
	filterCacheItems = 256
)

var filterSeed = maphash.MakeSeed()

type filterEntry struct {
	a    string
	f    Filter // a deep copy
	sql  string
	args []any
}

// Get returns the SQL and arguments Put kept for alias a and a filter
// equal to f.
func (c *FilterCache) Get(a string, f *Filter) (sql string, args []any, ok bool) {
	h, ok := filterKey(a, f)
	if !ok {
		return "", nil, false
	}
	c.mu.Lock()
	e := c.m[h]
	c.mu.Unlock()
	if e == nil || e.a != a || !sameFilter(&e.f, f) {
		return "", nil, false
	}
	return e.sql, e.args, true
}

// Put keeps sql and args as what alias a and filter f translate to. The
// cache keeps its own copies of all three.
func (c *FilterCache) Put(a string, f *Filter, sql string, args []any) {
	h, ok := filterKey(a, f)
	if !ok {
		return
	}
	e := &filterEntry{a: a, f: copyFilter(f), sql: strings.Clone(sql), args: slices.Clone(args)}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= filterCacheMax {
		c.m = map[uint64]*filterEntry{}
	}
	c.m[h] = e
	c.mu.Unlock()
}

// filterKey hashes a and f; ok is false for a filter too large to cache.
func filterKey(a string, f *Filter) (uint64, bool) {
	var h maphash.Hash
	h.SetSeed(filterSeed)
	h.WriteString(a)
	n := 0
	for _, g := range f.Grants {
		n += len(g.Patients) + len(g.Types) + len(g.Sources) + len(g.DenyLabels)
		if n > filterCacheItems {
			return 0, false
		}
		h.WriteByte(0)
		for _, l := range [][]string{g.Patients, g.Types, g.Sources} {
			if l == nil {
				h.WriteByte(2) // no condition, unlike an empty list
			} else {
				h.WriteByte(1)
			}
			for _, s := range l {
				h.WriteString(s)
				h.WriteByte(0)
			}
		}
		for _, l := range g.DenyLabels {
			h.WriteString(l.System)
			h.WriteByte(0)
			h.WriteString(l.Code)
			h.WriteByte(0)
		}
	}
	return h.Sum64(), true
}

// sameFilter reports whether f and g are the same test, telling a nil
// list (no condition) from an empty one (nothing passes).
func sameFilter(f, g *Filter) bool {
	if len(f.Grants) != len(g.Grants) {
		return false
	}
	for i := range f.Grants {
		x, y := &f.Grants[i], &g.Grants[i]
		if x.NoPatient != y.NoPatient || !sameList(x.Patients, y.Patients) || !sameList(x.Types, y.Types) ||
			!sameList(x.Sources, y.Sources) || (x.DenyLabels == nil) != (y.DenyLabels == nil) || !slices.Equal(x.DenyLabels, y.DenyLabels) {
			return false
		}
	}
	return true
}

func sameList(a, b []string) bool {
	return (a == nil) == (b == nil) && slices.Equal(a, b)
}

func copyFilter(f *Filter) Filter {
	out := Filter{Grants: make([]Grant, len(f.Grants))}
	for i, g := range f.Grants {
		out.Grants[i] = Grant{
			Patients:   slices.Clone(g.Patients),
			NoPatient:  g.NoPatient,
			Types:      slices.Clone(g.Types),
			Sources:    slices.Clone(g.Sources),
			DenyLabels: slices.Clone(g.DenyLabels),
		}
	}
	return out
}

// PlainLiteral reports whether v may be written into SQL as a string
// literal between single quotes on every backend: it is made only of
// characters that need no quoting care and that no backend reads as a
// placeholder. Backends write a security label's code or system this way
// (policy constants, few and fixed, so the statements they make are few
// too) instead of as an argument, which each query copies and encodes.
func PlainLiteral(v string) bool {
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._:/#", c)) {
			return false
		}
	}
	return true
}
