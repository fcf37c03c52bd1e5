package sqlite

import (
	"slices"
	"strings"

	"github.com/sharedcare/sharedcare/internal/store"
)

// filterTest writes the access filter over resources row a: visible when
// it passes at least one grant (store.Filter).
//
// Its SQL and arguments are kept and reused (store.FilterCache).
func (b *sqlBuilder) filterTest(a string) error {
	f := b.filter
	if f == nil {
		return nil
	}
	if sql, args, hit := filterSQLs.Get(a, f); hit {
		b.sb.WriteString(sql)
		b.args = append(b.args, args...)
		return nil
	}
	from, nargs := b.sb.Len(), len(b.args)
	b.writeFilter(a, f)
	filterSQLs.Put(a, f, b.sb.String()[from:], b.args[nargs:])
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

// value writes v as an SQL string literal when store.PlainLiteral allows,
// and as an argument otherwise. Each text argument is copied into SQLite's
// memory on every query.
func (b *sqlBuilder) value(v string) {
	if !store.PlainLiteral(v) {
		b.w("?", v)
		return
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

// filterSQLs is the cache of filterTest.
var filterSQLs store.FilterCache
