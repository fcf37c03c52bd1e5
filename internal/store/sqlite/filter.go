package sqlite

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"

	"github.com/sharedcare/sharedcare/internal/store"
)

// filterTest writes the access filter over resources row a: visible when
// it passes at least one grant (store.Filter).
//
// A caller's filter is the same from one request to the next (the access
// layer compiles it once and narrows it the same way for the same kind of
// request), so its SQL and arguments are cached by content: building them
// was about 6 us of the 25 us that a GP clinician's search by subject paid
// over the operator's (BenchmarkAccessCost, docs/ACCESS.md "Cost").
func (b *sqlBuilder) filterTest(a string) error {
	f := b.filter
	if f == nil {
		return nil
	}
	h, ok := filterKey(a, f)
	if ok {
		if sql, args, hit := filterSQLs.get(h, a, f); hit {
			b.sb.WriteString(sql)
			b.args = append(b.args, args...)
			return nil
		}
	}
	from, nargs := b.sb.Len(), len(b.args)
	b.writeFilter(a, f)
	if ok {
		filterSQLs.put(h, a, f, b.sb.String()[from:], b.args[nargs:])
	}
	return nil
}

// writeFilter writes the SQL of filterTest. A resource's source and
// whether it has security labels are columns of its resources row
// (migrations/0006), tested on the row the query has already read; only a
// labelled resource's labels are probed.
func (b *sqlBuilder) writeFilter(a string, f *store.Filter) {
	if len(f.Grants) == 0 {
		b.w(" AND 0")
		return
	}
	// See store.Filter.Shape: the people every grant requires are tested
	// once.
	common, _ := f.Shape()
	if common != nil {
		b.patientsTest(a, common)
	}
	b.w(" AND (")
	for i, g := range f.Grants {
		if i > 0 {
			b.w(" OR ")
		}
		b.w("(1")
		if g.Patients != nil && common == nil {
			b.patientsTest(a, g.Patients)
		}
		if g.NoPatient {
			b.w(" AND NOT EXISTS (SELECT 1 FROM idx_compartment WHERE " + rowsOf("key", a) + " AND +comp_type = 'Patient')")
		}
		if g.Types != nil {
			if len(g.Types) == 0 {
				b.w(" AND 0")
			} else {
				b.w(" AND " + a + ".type IN ")
				b.inList(g.Types)
			}
		}
		if g.Sources != nil {
			if len(g.Sources) == 0 {
				b.w(" AND 0")
			} else {
				b.w(" AND (")
				b.sourcesTest(a+".source", g.Sources)
				b.w(")")
			}
		}
		if len(g.DenyLabels) > 0 {
			b.w(" AND (" + a + ".labelled = 0 OR NOT EXISTS (SELECT 1 FROM idx_token WHERE " + rowsOf("key", a) + " AND +param = '_security' AND (")
			for j, l := range g.DenyLabels {
				if j > 0 {
					b.w(" OR ")
				}
				if l.System == "" {
					b.w("code = ")
					b.value(l.Code)
				} else {
					b.w("(system = ")
					b.value(l.System)
					b.w(" AND code = ")
					b.value(l.Code)
					b.w(")")
				}
			}
			b.w(")))")
		}
		b.w(")")
	}
	b.w(")")
}

// sourcesTest tests col, a resource's meta.source (NULL without one, which
// passes nothing): one of sources itself, or one of them followed by "#"
// and anything (store.Grant.Sources).
func (b *sqlBuilder) sourcesTest(col string, sources []string) {
	if !slices.ContainsFunc(sources, func(s string) bool { return strings.ContainsRune(s, '#') }) {
		// No source holds a "#", so the test is exactly "the value up to
		// its first #, or all of it, is one of sources": one argument a
		// source instead of three. Each text argument is copied into
		// SQLite's memory per query, and an organisation's grants name
		// several sources.
		// At most two a list: SQLite tests a list of up to two values by
		// comparisons, and builds a table of a longer one on every run.
		for i := 0; i < len(sources); i += 2 {
			if i > 0 {
				b.w(" OR ")
			}
			b.w("substr(" + col + ", 1, instr(" + col + " || '#', '#') - 1) IN ")
			b.inList(sources[i:min(i+2, len(sources))])
		}
		return
	}
	for j, s := range sources {
		if j > 0 {
			b.w(" OR ")
		}
		// s itself, or s + "#" + anything: substr compares characters,
		// exactly.
		b.w(col+" = ? OR substr("+col+", 1, ?) = ?", s, len([]rune(s))+1, s+"#")
	}
}

// value writes v as an SQL string literal when it is made only of
// characters that need no quoting care (a security label's code or
// system: policy constants, few and fixed, so the statements they make
// are few too), and as an argument otherwise. Each text argument is
// copied into SQLite's memory on every query.
func (b *sqlBuilder) value(v string) {
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._:/#", c)) {
			b.w("?", v)
			return
		}
	}
	b.w("'" + v + "'")
}

// patientsTest requires a Patient compartment row of resources row a for
// one of people (none: nothing passes).
func (b *sqlBuilder) patientsTest(a string, people []string) {
	if len(people) == 0 {
		b.w(" AND 0")
		return
	}
	b.w(" AND EXISTS (SELECT 1 FROM idx_compartment WHERE " + rowsOf("key", a) + " AND +comp_type = 'Patient' AND comp_id IN ")
	b.inList(people)
	b.w(")")
}

// filterCacheMax bounds the filters whose SQL is kept; past it the cache
// starts afresh. filterCacheItems bounds the size of a filter worth
// keeping: one listing hundreds of people is rare, its query costs far
// more than building it, and keeping it would hold a lot of memory.
const (
	filterCacheMax   = 256
	filterCacheItems = 256
)

// filterSQLs is the cache of filterTest. It is keyed by content, not by
// pointer, and a hit is compared in full with the filter it was built
// from, so that a hash collision or a filter changed after use can never
// be answered with another filter's SQL.
var filterSQLs = filterCache{m: map[uint64]*filterEntry{}}

var filterSeed = maphash.MakeSeed()

type filterCache struct {
	mu sync.Mutex
	m  map[uint64]*filterEntry
}

type filterEntry struct {
	a    string
	f    store.Filter // a deep copy
	sql  string
	args []any
}

// filterKey hashes a and f; ok is false for a filter too large to cache.
func filterKey(a string, f *store.Filter) (uint64, bool) {
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

func (c *filterCache) get(h uint64, a string, f *store.Filter) (string, []any, bool) {
	c.mu.Lock()
	e := c.m[h]
	c.mu.Unlock()
	if e == nil || e.a != a || !sameFilter(&e.f, f) {
		return "", nil, false
	}
	return e.sql, e.args, true
}

func (c *filterCache) put(h uint64, a string, f *store.Filter, sql string, args []any) {
	e := &filterEntry{a: a, f: copyFilter(f), sql: strings.Clone(sql), args: slices.Clone(args)}
	c.mu.Lock()
	if len(c.m) >= filterCacheMax {
		c.m = map[uint64]*filterEntry{}
	}
	c.m[h] = e
	c.mu.Unlock()
}

// sameFilter reports whether f and g are the same test, telling a nil
// list (no condition) from an empty one (nothing passes).
func sameFilter(f, g *store.Filter) bool {
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

func copyFilter(f *store.Filter) store.Filter {
	out := store.Filter{Grants: make([]store.Grant, len(f.Grants))}
	for i, g := range f.Grants {
		out.Grants[i] = store.Grant{
			Patients:   slices.Clone(g.Patients),
			NoPatient:  g.NoPatient,
			Types:      slices.Clone(g.Types),
			Sources:    slices.Clone(g.Sources),
			DenyLabels: slices.Clone(g.DenyLabels),
		}
	}
	return out
}
