package postgres

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// This file translates a store.Query into SQL over the index tables, with
// the semantics of the SQLite store's translate.go clause for clause (the
// engine's search suite runs on both).
//
// A query's WHERE is built over one resources row (alias r). One clause,
// the driver, becomes "r.rid IN (<set>)", a UNION of index lookups; every
// other clause becomes correlated EXISTS tests on r.rid through each
// table's rid index. PostgreSQL has statistics and could choose on its own,
// but an OR of EXISTS is never turned into a join, so the driver keeps a
// query with OR'ed conditions off a scan of every resource.
//
// Text columns are COLLATE "C" (bytewise, as in SQLite), and the long
// ones are indexed through left(col, 256); equality and prefix tests
// compare the left() form first (which the index serves) and then the
// whole value, so truncation never widens a result.
//
// Every node is translated exactly or refused with ENotSupported: a wider
// result is never returned.

// sqlBuilder accumulates a WHERE clause over resources r and its arguments.
type sqlBuilder struct {
	sb     strings.Builder
	args   []any
	filter *store.Filter
	nalias int
	// stream is set by wherePage when the driving lookup can be walked in
	// rid order (streamable): the page then reads index rows d joined to
	// r, stopping at the page's end, instead of building the whole rid set
	// first (as the SQLite store does). For a common code that is the
	// difference between reading 101 qualifying rows and tens of thousands.
	stream     bool
	streamFrom string
	// bare is set with stream when no condition needs the resources row
	// (its id, last_updated or deleted flag): the page then reads the index
	// rows d alone, every correlated test on d.rid. A resource's index rows
	// are those of its current version and a deleted resource has none, so
	// "current and not deleted" holds for every rid they name; skipping the
	// join saves a resources lookup per candidate row, about a third of the
	// cost of a page driven by a common code (measured: 445 rows read to
	// fill a page of Observation by code and date range).
	bare bool
	// template makes every placeholder '?' instead of $n: the SQL of an
	// access filter is built once this way (filterTest) and numbered
	// wherever it is used.
	template bool
}

// sortNeedsResourceRow reports whether a sort key is a column of the
// resources row (id, last updated) rather than index rows.
func sortNeedsResourceRow(keys []store.SortKey) bool {
	for _, k := range keys {
		if k.Kind == store.CondID || k.Kind == store.CondLastUpdated {
			return true
		}
	}
	return false
}

// needsResourceRow reports whether a top-level condition reads columns of
// the resources row other than rid and type.
func needsResourceRow(clauses []store.Clause) bool {
	for _, cl := range clauses {
		for _, c := range cl {
			switch c.Kind {
			case store.CondID, store.CondLastUpdated, store.CondHas:
				return true
			}
		}
	}
	return false
}

// arg adds an argument and returns its placeholder.
func (b *sqlBuilder) arg(v any) string {
	b.args = append(b.args, v)
	if b.template {
		return "?"
	}
	return "$" + strconv.Itoa(len(b.args))
}

// w writes s, replacing each '?' by the placeholder of the next of args.
func (b *sqlBuilder) w(s string, args ...any) {
	for {
		i := strings.IndexByte(s, '?')
		if i < 0 {
			break
		}
		if len(args) == 0 {
			panic("postgres: more placeholders than arguments in " + s)
		}
		b.sb.WriteString(s[:i])
		b.sb.WriteString(b.arg(args[0]))
		args, s = args[1:], s[i+1:]
	}
	if len(args) > 0 {
		panic("postgres: more arguments than placeholders in " + s)
	}
	b.sb.WriteString(s)
}

func (b *sqlBuilder) alias(prefix string) string {
	b.nalias++
	return prefix + strconv.Itoa(b.nalias)
}

// inTypes writes the test that col is one of types: "= $n" for one type
// (so that an index ending in (type, rid) yields rids in order), "= ANY".
func (b *sqlBuilder) inTypes(col string, types []string) {
	if len(types) == 1 {
		b.w(col+" = ?", clean(types[0]))
		return
	}
	b.w(col+" = ANY(?::text[])", cleanAll(types))
}

func cleanAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clean(s)
	}
	return out
}

// left256 is left(v, 256) as PostgreSQL computes it (characters).
func left256(v string) string {
	n := 0
	for i := range v {
		if n == 256 {
			return v[:i]
		}
		n++
	}
	return v
}

// eqText writes "col = v" so that an index on left(col, 256) serves it.
// When v is shorter than 256 characters, left(col, 256) = v already implies
// col = v, and repeating the test would make the planner multiply two
// selectivities it takes for independent: an estimate of 1 row for a code
// 7,500 Observations share, and a plan built for 1 row (measured).
func (b *sqlBuilder) eqText(col, v string) {
	v = clean(v)
	if short(v) {
		b.w("left("+col+", 256) = ?", v)
		return
	}
	b.w("left("+col+", 256) = ? AND "+col+" = ?", left256(v), v)
}

// short reports whether v has fewer than 256 characters, so that a test on
// left(col, 256) against it is a test on col.
func short(v string) bool {
	return len(v) < 256 || utf8.RuneCountInString(v) < 256
}

// prefixText writes "col starts with v" so that an index on left(col, 256)
// serves it as a range.
func (b *sqlBuilder) prefixText(col, v string) {
	v = clean(v)
	if v == "" {
		b.w("true")
		return
	}
	lo := left256(v)
	b.w("left("+col+", 256) >= ?", lo)
	if hi, ok := nextPrefix(lo); ok {
		b.w(" AND left("+col+", 256) < ?", hi)
	}
	if !short(v) {
		b.w(" AND starts_with("+col+", ?)", v)
	}
}

// nextPrefix returns the least string greater than every string starting
// with v, in code point (= UTF-8 byte, = "C" collation) order: v with its
// last character incremented (dropping trailing U+10FFFF, skipping
// surrogates). ok is false when there is none.
func nextPrefix(v string) (string, bool) {
	for v != "" {
		r, size := utf8.DecodeLastRuneInString(v)
		v = v[:len(v)-size]
		if r == utf8.MaxRune || r == utf8.RuneError {
			continue
		}
		r++
		if r >= 0xD800 && r <= 0xDFFF {
			r = 0xE000
		}
		return v + string(r), true
	}
	return "", false
}

// where builds the WHERE of q over alias r.
func (b *sqlBuilder) where(q *store.Query) error {
	b.filter = q.Filter
	return b.resourceWhere("r", q.Types, q.Clauses, true)
}

// wherePage builds the WHERE of q for a page query: like where, but with
// the driving clause read as a join from index rows d when that yields
// rid order (see stream). The count query must use where.
func (b *sqlBuilder) wherePage(q *store.Query) error {
	b.filter = q.Filter
	if len(q.Types) == 1 {
		if d := store.PickDriver(q.Clauses, true); d >= 0 && len(q.Clauses[d]) == 1 && streamable(q.Clauses[d][0]) {
			if len(q.Sort) == 0 {
				b.stream = true
				b.bare = !needsResourceRow(q.Clauses)
			} else if !needsResourceRow(q.Clauses) && !sortNeedsResourceRow(q.Sort) {
				// A sorted page reads every match to sort them, so it
				// gains nothing from the rid order; read bare, the index
				// rows d stand for the resource and each candidate is
				// tested without its resources row (Observation by patient
				// and code sorted by date: one lookup fewer for each of a
				// patient's Observations).
				b.stream, b.bare = true, true
			}
		}
	}
	if b.bare {
		return b.resourceWhere("d", q.Types, q.Clauses, true)
	}
	return b.resourceWhere("r", q.Types, q.Clauses, true)
}

// streamable reports whether c's lookup fixes every index column before
// (type, rid) by equality, so that with one type its rows come in rid
// order.
func streamable(c store.Cond) bool {
	if c.Not || c.Missing != store.NotMissingTest {
		return false
	}
	switch c.Kind {
	case store.CondToken: // idx_token_code (param, left(code), left(system), type, rid)
		return !c.AnyCode && !c.AnySystem && !c.Text
	case store.CondReference: // idx_reference_target (param, left(ref_id), left(ref_type), type, rid)
		return c.RefID != "" && c.RefType != ""
	case store.CondCompartment: // idx_compartment_member (comp_type, left(comp_id), type, rid)
		return true
	case store.CondURI: // idx_uri_value (param, left(value), type, rid)
		return c.Match == store.MatchExact
	}
	return false
}

// resourceWhere writes the conditions for resources row a: current, of one
// of types, satisfying clauses, visible through the filter. With drive set,
// one clause may become a driving rid set; otherwise (a is already bound by
// a join, as in a chain's target) every clause is a correlated test.
func (b *sqlBuilder) resourceWhere(a string, types []string, clauses []store.Clause, drive bool) error {
	driver := -1
	if drive {
		driver = store.PickDriver(clauses, len(types) > 0)
	}
	pageRow := drive && (a == "r" || a == "d" && b.bare)
	if a == "d" && b.bare {
		// The index rows d stand for the resource (see bare): they carry
		// its type, and only current, live resources have rows.
		b.w("true")
	} else {
		b.w("NOT " + a + ".deleted")
		if len(types) > 0 {
			b.w(" AND ")
			b.inTypes(a+".type", types)
		}
	}
	if driver >= 0 && pageRow && b.stream {
		c := clauses[driver][0]
		if c.Kind == store.CondCompartment {
			b.streamFrom = "idx_compartment"
			b.w(" AND d.comp_type = ? AND ", clean(c.RefType))
			b.eqText("d.comp_id", c.RefID)
		} else {
			b.streamFrom, _ = idxTable(c.Kind)
			b.w(" AND d.param = ? AND ", clean(c.Param))
			if err := b.rowPred("d", c); err != nil {
				return err
			}
			if c.Kind == store.CondToken {
				b.spanPred("d", clauses, driver)
			}
		}
		b.w(" AND ")
		b.inTypes("d.type", types)
	} else if driver >= 0 {
		b.w(" AND " + a + ".rid IN (")
		for i, c := range clauses[driver] {
			if i > 0 {
				b.w(" UNION ")
			}
			if err := b.condSet(c, types); err != nil {
				return err
			}
		}
		// OFFSET 0 keeps the driving set a subquery of its own: the plan,
		// even a generic one made without the values, reads it first and
		// looks each rid up, instead of driving from another clause.
		b.w(" OFFSET 0)")
	}
	for i, cl := range clauses {
		if i == driver {
			continue
		}
		if len(cl) == 0 {
			// An empty OR holds for nothing: fail closed, never wider.
			b.w(" AND false")
			continue
		}
		b.w(" AND (")
		for j, c := range cl {
			if j > 0 {
				b.w(" OR ")
			}
			if err := b.condTest(c, a); err != nil {
				return err
			}
		}
		b.w(")")
	}
	return b.filterTest(a)
}

// spanPred narrows a walk of token rows x (idx_token) by the bounds the
// query's date clauses imply on the span of each resource's dates
// (store.SpanTests; the span is on every token row, migration 0008). A
// NULL span (a row written before the migration reached it) is unknown,
// and kept: the tests compare spanLo and spanHi, which make it the widest
// span, and which are key columns of idx_token_value (migration 0009), so
// that the B-tree tests them on each entry it walks. A bound at the far
// end of int64 (no date has one) is exact too: no row can meet it, so the
// clause itself fails for every resource.
func (b *sqlBuilder) spanPred(x string, clauses []store.Clause, skip int) {
	lo, hi := fmt.Sprintf(spanLo, x), fmt.Sprintf(spanHi, x)
	for _, t := range store.SpanTests(clauses, skip) {
		b.w(" AND "+t.SQL(lo, hi), t.Value)
	}
}

// spanLo and spanHi are a token row's date span as idx_token_value's key
// columns hold it (migration 0009), written exactly as there so that the
// planner matches them; %s is the row's alias.
const (
	spanLo = "coalesce(%s.date_lo, -9223372036854775808)"
	spanHi = "coalesce(%s.date_hi, 9223372036854775807)"
)

// idxTable is the index table of a condition kind that has rows.
func idxTable(k store.CondKind) (string, bool) {
	switch k {
	case store.CondToken:
		return "idx_token", true
	case store.CondString:
		return "idx_string", true
	case store.CondDate:
		return "idx_date", true
	case store.CondNumber:
		return "idx_number", true
	case store.CondQuantity:
		return "idx_quantity", true
	case store.CondReference:
		return "idx_reference", true
	case store.CondURI:
		return "idx_uri", true
	case store.CondComposite:
		return "idx_composite", true
	}
	return "", false
}

// condSet writes c as a SELECT of the rids of matching resources of types.
// Only conditions with condRank >= 0 have one.
func (b *sqlBuilder) condSet(c store.Cond, types []string) error {
	typeFilter := func(col string) {
		// The type test inside the lookup lets the covering index (...,
		// type, rid) answer it alone.
		if len(types) > 0 {
			b.w(" AND ")
			b.inTypes(col, types)
		}
	}
	switch c.Kind {
	case store.CondID:
		b.w("SELECT rid FROM resources WHERE id = ?", clean(c.Code))
		typeFilter("type")
		return nil
	case store.CondLastUpdated:
		b.w("SELECT rid FROM resources WHERE ")
		if err := b.lastUpdated("last_updated", c); err != nil {
			return err
		}
		typeFilter("type")
		return nil
	case store.CondCompartment:
		b.w("SELECT rid FROM idx_compartment WHERE comp_type = ? AND ", clean(c.RefType))
		b.eqText("comp_id", c.RefID)
		typeFilter("type")
		return nil
	case store.CondText:
		b.w("SELECT rid FROM idx_text WHERE ")
		if err := b.textPred("", c); err != nil {
			return err
		}
		typeFilter("type")
		return nil
	case store.CondChain:
		if c.Sub == nil {
			return notSupported("chain on %s without a sub-query", c.Param)
		}
		x, t := b.alias("x"), b.alias("t")
		b.w("SELECT "+x+".rid FROM resources "+t+" JOIN idx_reference "+x+" ON "+x+".param = ? AND "+
			refTarget(x, t)+" WHERE ", clean(c.Param))
		if err := b.resourceWhere(t, c.Sub.Types, c.Sub.Clauses, true); err != nil {
			return err
		}
		typeFilter(x + ".type")
		return nil
	case store.CondHas:
		if c.Sub == nil {
			return notSupported("_has on %s without a sub-query", c.Param)
		}
		x, s, t := b.alias("x"), b.alias("s"), b.alias("t")
		b.w("SELECT "+t+".rid FROM resources "+s+" JOIN idx_reference "+x+" ON "+x+".rid = "+s+".rid AND "+x+".param = ?"+
			" JOIN resources "+t+" ON "+t+".type = "+x+".ref_type AND "+t+".id = "+x+".ref_id WHERE ", clean(c.Param))
		if err := b.resourceWhere(s, c.Sub.Types, c.Sub.Clauses, true); err != nil {
			return err
		}
		typeFilter(t + ".type")
		return nil
	}
	if (c.Kind == store.CondDate || c.Kind == store.CondNumber) && (c.Prefix == store.PrefixGE || c.Prefix == store.PrefixLE) && c.Missing == store.NotMissingTest {
		// ge is gt or eq, le is lt or eq: as a UNION each half seeks its
		// own index (by hi for gt, by lo for lt and eq).
		half := c
		if c.Prefix == store.PrefixGE {
			half.Prefix = store.PrefixGT
		} else {
			half.Prefix = store.PrefixLT
		}
		if err := b.condSet(half, types); err != nil {
			return err
		}
		b.w(" UNION ")
		half.Prefix = store.PrefixEQ
		return b.condSet(half, types)
	}
	tbl, ok := idxTable(c.Kind)
	if !ok {
		return notSupported("search condition kind %d", c.Kind)
	}
	x := b.alias("x")
	b.w("SELECT "+x+".rid FROM "+tbl+" "+x+" WHERE "+x+".param = ?", clean(c.Param))
	if c.Missing != store.MissingFalse {
		b.w(" AND ")
		if err := b.rowPred(x, c); err != nil {
			return err
		}
	}
	typeFilter(x + ".type")
	return nil
}

// refTarget joins reference rows x to the resources t they point at, in the
// left() form idx_reference_target is built on.
func refTarget(x, t string) string {
	return "left(" + x + ".ref_id, 256) = left(" + t + ".id, 256) AND " + x + ".ref_id = " + t + ".id AND left(" +
		x + ".ref_type, 256) = left(" + t + ".type, 256) AND " + x + ".ref_type = " + t + ".type"
}

// condTest writes c as a boolean test on resources row a.
func (b *sqlBuilder) condTest(c store.Cond, a string) error {
	if c.Missing != store.NotMissingTest {
		tbl, ok := idxTable(c.Kind)
		if !ok {
			return notSupported(":missing on a condition of kind %d", c.Kind)
		}
		if c.Missing == store.MissingTrue {
			b.w("NOT ")
		}
		b.w("EXISTS (SELECT 1 FROM "+tbl+" WHERE rid = "+a+".rid AND param = ?)", clean(c.Param))
		return nil
	}
	if c.Not {
		// :not holds when no row matches, including when there is no row.
		b.w("NOT ")
	}
	switch c.Kind {
	case store.CondID:
		b.w("("+a+".id = ?)", clean(c.Code))
		return nil
	case store.CondLastUpdated:
		b.w("(")
		if err := b.lastUpdated(a+".last_updated", c); err != nil {
			return err
		}
		b.w(")")
		return nil
	case store.CondCompartment:
		b.w("(SELECT true FROM idx_compartment WHERE rid = "+a+".rid AND comp_type = ? AND comp_id = ? LIMIT 1) IS NOT NULL", clean(c.RefType), clean(c.RefID))
		return nil
	case store.CondText:
		b.w("(SELECT true FROM idx_text WHERE rid = " + a + ".rid AND ")
		if err := b.textPred("", c); err != nil {
			return err
		}
		b.w(" LIMIT 1) IS NOT NULL")
		return nil
	case store.CondChain:
		if c.Sub == nil {
			return notSupported("chain on %s without a sub-query", c.Param)
		}
		x, t := b.alias("x"), b.alias("t")
		b.w("EXISTS (SELECT 1 FROM idx_reference "+x+" JOIN resources "+t+" ON "+t+".type = "+x+".ref_type AND "+t+".id = "+x+".ref_id WHERE "+
			x+".rid = "+a+".rid AND "+x+".param = ? AND ", clean(c.Param))
		if err := b.resourceWhere(t, c.Sub.Types, c.Sub.Clauses, false); err != nil {
			return err
		}
		b.w(")")
		return nil
	case store.CondHas:
		if c.Sub == nil {
			return notSupported("_has on %s without a sub-query", c.Param)
		}
		x, s := b.alias("x"), b.alias("s")
		b.w("EXISTS (SELECT 1 FROM idx_reference "+x+" JOIN resources "+s+" ON "+s+".rid = "+x+".rid WHERE "+
			x+".param = ? AND "+refTarget(x, a)+" AND ", clean(c.Param))
		if len(c.Sub.Types) > 0 {
			b.inTypes(x+".type", c.Sub.Types)
			b.w(" AND ")
		}
		if err := b.resourceWhere(s, c.Sub.Types, c.Sub.Clauses, false); err != nil {
			return err
		}
		b.w(")")
		return nil
	}
	tbl, ok := idxTable(c.Kind)
	if !ok {
		return notSupported("search condition kind %d", c.Kind)
	}
	// A probe of the resource's own rows: a scalar subquery, which
	// PostgreSQL never turns into a join. As an EXISTS it was planned as a
	// semi-join whenever the estimates favoured one, and a page of 51
	// Observations by a common code in a date range then read 37,000 date
	// rows to merge with (14 to 190 ms) instead of probing the date rows of
	// the ~200 it walked (1 ms). The driver, chosen by the store, is the
	// selective clause; the others test what it yields, as on SQLite.
	x := b.alias("x")
	b.w("(SELECT true FROM "+tbl+" "+x+" WHERE "+x+".rid = "+a+".rid AND "+x+".param = ? AND ", clean(c.Param))
	if plainToken(c) {
		// With the type every column of idx_token_value is fixed: one
		// descent of that index, read alone, in place of the resource's
		// token rows read from the table through idx_token_rid.
		b.w(x + ".type = " + a + ".type AND ")
	}
	if err := b.rowPred(x, c); err != nil {
		return err
	}
	b.w(" LIMIT 1) IS NOT NULL")
	return nil
}

// textPred tests idx_text rows (columns prefixed by x) for c: the
// parameter, and every term of c.Value present as a lexeme.
func (b *sqlBuilder) textPred(x string, c store.Cond) error {
	if c.Param != "_text" && c.Param != "_content" {
		return notSupported("text search on %q", c.Param)
	}
	terms := textTerms(clean(c.Value))
	if len(terms) == 0 {
		return notSupported("text search without a term")
	}
	for _, t := range terms {
		if len(t) > maxLexeme {
			// Such terms are not indexed (tsvectorLiteral): no row has it.
			b.w("false")
			return nil
		}
	}
	b.w(x+"param = ? AND "+x+"tsv @@ ?::tsquery", c.Param, tsqueryLiteral(c.Value))
	return nil
}

// rowPred writes the test of one index row x of c's kind against c's value
// (without :not, which the callers apply to the whole row set).
func (b *sqlBuilder) rowPred(x string, c store.Cond) error {
	switch c.Kind {
	case store.CondToken:
		if plainToken(c) {
			b.w(x+".code = ? AND "+x+".system = ? AND "+tokenValueCovers(x), clean(c.Code), clean(c.System))
			return nil
		}
		return b.tokenPred(x+".system", x+".code", x+".text", c)
	case store.CondString:
		return b.stringPred(x+".norm", x+".exact", c)
	case store.CondDate:
		b.rangePred(x+".lo", x+".hi", c.Prefix, c.Lo, c.Hi)
		return nil
	case store.CondNumber:
		b.rangePred(x+".lo", x+".hi", c.Prefix, c.NumLo, c.NumHi)
		return nil
	case store.CondQuantity:
		if err := b.unitPred(x+".system", x+".code", c); err != nil {
			return err
		}
		b.w(" AND ")
		b.rangePred(x+".lo", x+".hi", c.Prefix, c.NumLo, c.NumHi)
		return nil
	case store.CondReference:
		switch {
		case c.RefID != "":
			b.eqText(x+".ref_id", c.RefID)
			if c.RefType != "" {
				b.w(" AND ")
				b.eqText(x+".ref_type", c.RefType)
			}
		case c.URL != "":
			// url <> '' lets PostgreSQL use the partial index idx_reference_url.
			b.eqText(x+".url", c.URL)
			b.w(" AND " + x + ".url <> ''")
		default:
			return notSupported("reference condition on %s without an id or URL", c.Param)
		}
		return nil
	case store.CondURI:
		return b.uriPred(x+".value", c.Match, c.Value)
	case store.CondComposite:
		if len(c.Parts) == 0 || len(c.Parts) > 3 {
			return notSupported("composite %s with %d parts", c.Param, len(c.Parts))
		}
		for i, p := range c.Parts {
			if i > 0 {
				b.w(" AND ")
			}
			if err := b.partPred(fmt.Sprintf("%s.p%d_", x, i), p); err != nil {
				return err
			}
		}
		return nil
	}
	return notSupported("search condition kind %d", c.Kind)
}

// tokenValueLimit bounds the rows idx_token_value holds (migration 0006):
// those whose code and system together take fewer bytes.
const tokenValueLimit = 2000

// tokenValueCovers is idx_token_value's predicate over token rows x, word
// for word: a query that states it lets the planner read that index, and
// read it alone (see the migration).
func tokenValueCovers(x string) string {
	return "octet_length(" + x + ".code) + octet_length(" + x + ".system) < " + strconv.Itoa(tokenValueLimit)
}

// plainToken reports whether c fixes both the system and the code of a
// token row and the two are short enough that every matching row is in
// idx_token_value: such a test compares the columns themselves, which
// that index holds, so the walk of a code's rows and the probe of a
// resource's rows read no table page.
func plainToken(c store.Cond) bool {
	return c.Kind == store.CondToken && !c.Text && !c.AnyCode && !c.AnySystem &&
		len(clean(c.Code))+len(clean(c.System)) < tokenValueLimit
}

// tokenPred tests a token (system, code, text) against c's token form.
func (b *sqlBuilder) tokenPred(system, code, text string, c store.Cond) error {
	n := 0
	and := func() {
		if n > 0 {
			b.w(" AND ")
		}
		n++
	}
	if c.Text {
		// :text matches the start of the normalised display/text.
		if c.Code != "" {
			and()
			b.w("starts_with("+text+", ?)", clean(c.Code))
		}
	} else if !c.AnyCode {
		and()
		b.eqText(code, c.Code)
	}
	if !c.AnySystem {
		and()
		b.eqText(system, c.System)
	}
	if n == 0 {
		b.w("true")
	}
	return nil
}

// unitPred tests a quantity's unit (system, code) like a token.
func (b *sqlBuilder) unitPred(system, code string, c store.Cond) error {
	u := c
	u.Text = false
	return b.tokenPred(system, code, "", u)
}

// stringPred tests a string row by c.Match.
func (b *sqlBuilder) stringPred(norm, exact string, c store.Cond) error {
	switch c.Match {
	case store.MatchPrefix:
		b.prefixText(norm, c.Value)
	case store.MatchExact:
		b.w(exact+" = ?", clean(c.Value))
	case store.MatchContains:
		// strpos compares characters exactly: no wildcard to escape, no
		// case folding (ILIKE would fold: a wider result).
		b.w("strpos("+norm+", ?) > 0", clean(c.Value))
	default:
		return notSupported("string match %d", c.Match)
	}
	return nil
}

// uriPred tests a uri value by m.
func (b *sqlBuilder) uriPred(col string, m store.Match, v string) error {
	v = clean(v)
	switch m {
	case store.MatchExact:
		b.eqText(col, v)
	case store.MatchPrefix: // :below
		b.prefixText(col, v)
	case store.MatchAbove:
		// Every prefix of v sorts at or before v.
		b.w(col+" <= ? AND starts_with(?::text, "+col+")", v, v)
	default:
		return notSupported("uri match %d", m)
	}
	return nil
}

// partPred tests one part of a composite row (columns p + system, code,
// text, lo, hi) by the part's kind, as index.go's CompositePart lays it out.
func (b *sqlBuilder) partPred(p string, c store.Cond) error {
	if c.Not || c.Missing != store.NotMissingTest {
		return notSupported(":not or :missing inside a composite")
	}
	switch c.Kind {
	case store.CondToken:
		return b.tokenPred(p+"system", p+"code", p+"text", c)
	case store.CondString:
		switch c.Match {
		case store.MatchExact:
			b.w(p+"text = ?", clean(c.Value))
			return nil
		default:
			return b.stringPred(p+"code", p+"text", c)
		}
	case store.CondURI:
		return b.uriPred(p+"code", c.Match, c.Value)
	case store.CondReference:
		switch {
		case c.RefID != "" && c.RefType != "":
			b.eqText(p+"code", c.RefType+"/"+c.RefID)
		case c.RefID != "":
			// Any type: the value ends with "/id".
			v := "/" + clean(c.RefID)
			b.w("right("+p+"code, ?) = ?", utf8.RuneCountInString(v), v)
		case c.URL != "":
			b.eqText(p+"code", c.URL)
		default:
			return notSupported("reference part without an id or URL")
		}
		return nil
	case store.CondDate:
		b.rangePred(p+"lo", p+"hi", c.Prefix, float64(c.Lo), float64(c.Hi))
		return nil
	case store.CondNumber:
		b.rangePred(p+"lo", p+"hi", c.Prefix, c.NumLo, c.NumHi)
		return nil
	case store.CondQuantity:
		if err := b.unitPred(p+"system", p+"code", c); err != nil {
			return err
		}
		b.w(" AND ")
		b.rangePred(p+"lo", p+"hi", c.Prefix, c.NumLo, c.NumHi)
		return nil
	}
	return notSupported("composite part of kind %d", c.Kind)
}

// rangePred writes the prefix comparison of the row range [lo, hi] with
// the search range [L, H], as the table in store/query.go defines it.
func (b *sqlBuilder) rangePred(lo, hi string, p store.Prefix, L, H any) {
	eq := "(" + lo + " >= ? AND " + hi + " <= ?)"
	switch p {
	case store.PrefixEQ:
		// lo <= H follows from lo <= hi <= H; it bounds the index range.
		b.w("("+lo+" >= ? AND "+lo+" <= ? AND "+hi+" <= ?)", L, H, H)
	case store.PrefixNE:
		b.w("NOT "+eq, L, H)
	case store.PrefixGT:
		b.w(hi+" > ?", H)
	case store.PrefixLT:
		b.w(lo+" < ?", L)
	case store.PrefixGE:
		b.w("("+hi+" > ? OR "+eq+")", H, L, H)
	case store.PrefixLE:
		b.w("("+lo+" < ? OR "+eq+")", L, L, H)
	case store.PrefixSA:
		b.w(lo+" > ?", H)
	case store.PrefixEB:
		b.w(hi+" < ?", L)
	case store.PrefixAP:
		b.w("("+hi+" >= ? AND "+lo+" <= ?)", L, H)
	default:
		b.w("false") // unreachable for valid prefixes; fail closed
	}
}

// Instants outside these bounds (years about -3900 and 190000) are clamped:
// timestamptz cannot hold the contract's open ends, and no stored
// last-updated lies beyond them.
const (
	minInstantMs = -185_000_000_000_000
	maxInstantMs = 6_000_000_000_000_000
)

func instant(ms int64) time.Time {
	return time.UnixMilli(min(max(ms, minInstantMs), maxInstantMs)).UTC()
}

// lastUpdated writes c's prefix comparison over the last-updated instant
// (microseconds in a timestamptz): the row range is the millisecond [t, t],
// so t >= L is "at or after L ms" and t <= H is "before H+1 ms".
func (b *sqlBuilder) lastUpdated(col string, c store.Cond) error {
	lo := instant(c.Lo)                 // t >= L  <=>  col >= lo
	hiAfter := instant(satAdd(c.Hi, 1)) // t <= H  <=>  col < hiAfter; t > H <=> col >= hiAfter
	eq := "(" + col + " >= ? AND " + col + " < ?)"
	switch c.Prefix {
	case store.PrefixEQ, store.PrefixAP:
		b.w(eq, lo, hiAfter)
	case store.PrefixNE:
		b.w("NOT "+eq, lo, hiAfter)
	case store.PrefixGT, store.PrefixSA:
		b.w(col+" >= ?", hiAfter)
	case store.PrefixLT, store.PrefixEB:
		b.w(col+" < ?", lo)
	case store.PrefixGE:
		b.w("("+col+" >= ? OR "+eq+")", hiAfter, lo, hiAfter)
	case store.PrefixLE:
		b.w("("+col+" < ? OR "+eq+")", lo, lo, hiAfter)
	default:
		return notSupported("date prefix %d", c.Prefix)
	}
	return nil
}

func satAdd(a, d int64) int64 {
	if d > 0 && a > math.MaxInt64-d {
		return math.MaxInt64
	}
	if d < 0 && a < math.MinInt64-d {
		return math.MinInt64
	}
	return a + d
}

// filterTest writes the access filter over resources row a: visible when
// it passes at least one grant (store.Filter). Its SQL, written with '?'
// for each argument, and its arguments are kept and reused
// (store.FilterCache); each use numbers the placeholders where it lands.
func (b *sqlBuilder) filterTest(a string) error {
	f := b.filter
	if f == nil {
		return nil
	}
	if sql, args, hit := filterSQLs.Get(a, f); hit {
		b.w(sql, args...)
		return nil
	}
	t := &sqlBuilder{template: true}
	t.writeFilter(a, f)
	sql := t.sb.String()
	filterSQLs.Put(a, f, sql, t.args)
	b.w(sql, t.args...)
	return nil
}

// filterSQLs is the cache of filterTest.
var filterSQLs store.FilterCache

// writeFilter writes the SQL of filterTest.
func (b *sqlBuilder) writeFilter(a string, f *store.Filter) {
	if len(f.Grants) == 0 {
		b.w(" AND false")
		return
	}
	// See store.Filter.Shape: the people every grant requires are tested
	// once, and when every grant requires a source, the source row is found
	// once with each grant's test made on it (a GP clinician's search for
	// one person went from three compartment and three source probes per
	// row to one of each).
	common, sourced := f.Shape()
	if common != nil {
		b.patientsTest(a, common)
	}
	if sourced {
		b.w(" AND EXISTS (SELECT 1 FROM idx_uri WHERE rid = " + a + ".rid AND param = '_source' AND (")
	} else {
		b.w(" AND (")
	}
	for i, g := range f.Grants {
		if i > 0 {
			b.w(" OR ")
		}
		b.w("(true")
		if g.Patients != nil && common == nil {
			b.patientsTest(a, g.Patients)
		}
		if g.NoPatient {
			b.w(" AND NOT EXISTS (SELECT 1 FROM idx_compartment WHERE rid = " + a + ".rid AND comp_type = 'Patient')")
		}
		if g.Types != nil {
			if len(g.Types) == 0 {
				b.w(" AND false")
			} else {
				b.w(" AND ")
				b.inTypes(a+".type", g.Types)
			}
		}
		if g.Sources != nil {
			if len(g.Sources) == 0 {
				b.w(" AND false")
			} else {
				if !sourced {
					b.w(" AND EXISTS (SELECT 1 FROM idx_uri WHERE rid = " + a + ".rid AND param = '_source'")
				}
				b.w(" AND (")
				for j, s := range g.Sources {
					if j > 0 {
						b.w(" OR ")
					}
					// s itself, or s + "#" + anything.
					b.w("value = ? OR starts_with(value, ?)", clean(s), clean(s)+"#")
				}
				b.w(")")
				// On the source row the grant's label test is made too:
				// its labels column (migration 0010).
				if len(g.DenyLabels) > 0 {
					b.w(" AND NOT coalesce(labels && ARRAY[")
					for j, l := range g.DenyLabels {
						if j > 0 {
							b.w(", ")
						}
						b.value(labelKey(l.System, l.Code))
					}
					b.w("]::text[], true)")
				}
				if !sourced {
					b.w(")")
				}
			}
		}
		// A grant with sources tested its labels on the source row above
		// (or is "AND false" for an empty list, which needs no more).
		if len(g.DenyLabels) > 0 && g.Sources == nil {
			b.w(" AND NOT EXISTS (SELECT 1 FROM idx_token WHERE rid = " + a + ".rid AND param = '_security' AND (")
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
			b.w("))")
		}
		b.w(")")
	}
	if sourced {
		b.w("))")
	} else {
		b.w(")")
	}
}

// value writes v as an SQL string literal when store.PlainLiteral allows
// (a security label's code or system), and as an argument otherwise.
func (b *sqlBuilder) value(v string) {
	if !store.PlainLiteral(v) {
		b.w("?", clean(v))
		return
	}
	b.w("'" + v + "'")
}

// patientsTest requires a Patient compartment row of resources row a for
// one of people (none: nothing passes).
func (b *sqlBuilder) patientsTest(a string, people []string) {
	if len(people) == 0 {
		b.w(" AND false")
		return
	}
	b.w(" AND EXISTS (SELECT 1 FROM idx_compartment WHERE rid = "+a+".rid AND comp_type = 'Patient' AND comp_id = ANY(?::text[]))", cleanAll(people))
}

// sortExpr writes the SQL value of sort key k for the resource whose rid
// is a.rid (a is resources r, or the index rows d of a bare page).
func (b *sqlBuilder) sortExpr(k store.SortKey, a string) (string, error) {
	agg := "min"
	if k.Desc {
		agg = "max"
	}
	var tbl, asc, desc string
	switch k.Kind {
	case store.CondID:
		return a + ".id", nil
	case store.CondLastUpdated:
		return a + ".last_updated", nil
	case store.CondDate, store.CondNumber, store.CondQuantity:
		tbl, _ = idxTable(k.Kind)
		asc, desc = "lo", "hi"
	case store.CondString:
		tbl, asc, desc = "idx_string", "norm", "norm"
	case store.CondToken:
		tbl, asc = "idx_token", `(code || chr(31) || system) COLLATE "C"`
		desc = asc
	case store.CondReference:
		tbl, asc = "idx_reference", `(ref_type || '/' || ref_id || chr(31) || url) COLLATE "C"`
		desc = asc
	case store.CondURI:
		tbl, asc, desc = "idx_uri", "value", "value"
	default:
		return "", notSupported("sort by a parameter of kind %d (%s)", k.Kind, k.Param)
	}
	col := asc
	if k.Desc {
		col = desc
	}
	var params string
	if len(k.Also) == 0 {
		params = b.arg(clean(k.Param))
	} else {
		params = "ANY(" + b.arg(cleanAll(append([]string{k.Param}, k.Also...))) + "::text[])"
	}
	return "(SELECT " + agg + "(" + col + ") FROM " + tbl + " WHERE rid = " + a + ".rid AND param = " + params + ")", nil
}

// page writes the SQL of one page of at most limit rows after (or, for a
// backward cursor, before) cur, in the query's order, around the WHERE
// already built. Its columns are rid, the sort values, then
// versionColumns.
func (b *sqlBuilder) page(keys []store.SortKey, cur cursor, limit int) (string, error) {
	where := b.sb.String()
	if len(keys) == 0 {
		cmp, dir := " > ", ""
		if cur.back {
			cmp, dir = " < ", " DESC"
		}
		from, ridCol, group := "resources r", "r.rid", ""
		if b.stream {
			from, ridCol, group = b.streamFrom+" d JOIN resources r ON r.rid = d.rid", "d.rid", " GROUP BY d.rid"
			if b.bare {
				from = b.streamFrom + " d"
			}
		}
		keyset := ""
		if cur.rid > 0 {
			keyset = " AND " + ridCol + cmp + b.arg(cur.rid)
		}
		inner := "SELECT " + ridCol + " AS rid FROM " + from + " WHERE " + where + keyset + group + " ORDER BY " + ridCol + dir + " LIMIT " + b.arg(limit)
		return "SELECT p.rid, " + versionColumns + " FROM (" + inner + ") p JOIN resources r ON r.rid = p.rid JOIN resource_versions v ON v.seq = r.seq ORDER BY p.rid", nil
	}
	var sel, order, outer, cols strings.Builder
	a := "r"
	if b.bare {
		a = "d"
	}
	for i, k := range keys {
		e, err := b.sortExpr(k, a)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&sel, ", %s AS s%d", e, i)
		fmt.Fprintf(&cols, ", p.s%d", i)
	}
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
	keyset := ""
	if cur.rid > 0 {
		keyset = " WHERE " + b.keysetPred(keys, cur)
	}
	inner := "SELECT r.rid AS rid" + sel.String() + " FROM resources r WHERE " + where
	if b.bare {
		// One row per resource (a resource may have several index rows
		// that match); the sort values are computed once per group.
		inner = "SELECT d.rid AS rid" + sel.String() + " FROM " + b.streamFrom + " d WHERE " + where + " GROUP BY d.rid"
	}
	q := "SELECT p.rid" + cols.String() + ", " + versionColumns + " FROM (SELECT * FROM (" + inner + ") q" + keyset +
		" ORDER BY " + order.String() + " LIMIT " + b.arg(limit) + ") p JOIN resources r ON r.rid = p.rid JOIN resource_versions v ON v.seq = r.seq ORDER BY " + outer.String()
	return q, nil
}

// keysetPred is the test "strictly after cur" (before, for a backward
// cursor) in the order of keys then rid, over the columns s0.. and rid.
func (b *sqlBuilder) keysetPred(keys []store.SortKey, cur cursor) string {
	op := " > "
	if cur.back {
		op = " < "
	}
	pred := "rid" + op + b.arg(cur.rid)
	for i := len(keys) - 1; i >= 0; i-- {
		s := fmt.Sprintf("s%d", i)
		v := cur.vals[i]
		var beyond, same string
		if v == nil {
			if cur.back {
				beyond = s + " IS NOT NULL" // every value comes before NULL
			} else {
				beyond = "false" // nothing comes after NULL
			}
			same = s + " IS NULL"
		} else {
			op := "<"
			if keys[i].Desc == cur.back { // ascending forward, or descending backward
				op = ">"
			}
			p := b.arg(v)
			if cur.back {
				beyond = s + " " + op + " " + p
			} else {
				beyond = "(" + s + " IS NULL OR " + s + " " + op + " " + p + ")"
			}
			same = s + " = " + p
		}
		pred = "(" + beyond + " OR (" + same + " AND " + pred + "))"
	}
	return pred
}

func notSupported(format string, a ...any) error {
	return fhir.Errorf(fhir.ENotSupported, "", format, a...)
}
