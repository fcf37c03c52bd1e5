package sqlite

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sharedcare/sharedcare/internal/store"
)

// This file translates a store.Query into SQL over the index tables.
//
// A query's WHERE is built over one resources row (alias r). One clause,
// the driver, becomes "r.rid IN (<set>)", a UNION of index lookups that
// SQLite evaluates once and walks in rid order; every other clause becomes
// correlated tests on r.rid. An index row's key is rid << 16 | n, so "the
// rows of resource r" is the key range [r.rid << 16, r.rid << 16 | 65535]:
// a correlated test is one seek into the index table's rowid B-tree, with
// no per-rid index to maintain. The driver is the clause whose lookups are
// likely the most selective (rank); SQLite has no statistics to choose
// (we run no ANALYZE, so plans are the same on every node).
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
	// first. For a common code that is the difference between reading 50
	// qualifying rows and tens of thousands.
	stream     bool
	streamCond store.Cond
}

func (b *sqlBuilder) w(s string, args ...any) {
	b.sb.WriteString(s)
	b.args = append(b.args, args...)
}

func (b *sqlBuilder) alias(prefix string) string {
	b.nalias++
	return prefix + strconv.Itoa(b.nalias)
}

func (b *sqlBuilder) inList(types []string) {
	b.w("(" + placeholders(len(types)) + ")")
	for _, t := range types {
		b.args = append(b.args, t)
	}
}

// rowsOf is the key range of resource a's index rows in a table whose key
// column is col.
func rowsOf(col, a string) string {
	return col + " BETWEEN " + a + ".rid * 65536 AND " + a + ".rid * 65536 + 65535"
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
	if len(q.Sort) == 0 && len(q.Types) == 1 {
		if d := store.PickDriver(q.Clauses, true); d >= 0 && len(q.Clauses[d]) == 1 && streamable(q.Clauses[d][0]) {
			b.stream = true
		}
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
	case store.CondToken: // idx_token_code (param, code, system, type, rid)
		return !c.AnyCode && !c.AnySystem && !c.Text
	case store.CondReference: // idx_reference_target (param, ref_id, ref_type, type, rid)
		return c.RefID != "" && c.RefType != ""
	case store.CondCompartment: // idx_compartment_member (comp_type, comp_id, type, rid)
		return true
	case store.CondURI: // idx_uri_value (param, value, type, rid)
		return c.Match == store.MatchExact
	}
	return false
}

// streamFrom is the FROM of a streamed page: the driving index rows d,
// then their resources.
func (b *sqlBuilder) streamFrom(c store.Cond) string {
	if c.Kind == store.CondCompartment {
		return "idx_compartment d CROSS JOIN resources r ON r.rid = d.rid"
	}
	k, _ := condTable(c.Kind)
	return idxTables[k] + " d CROSS JOIN resources r ON r.rid = d.rid"
}

// resourceWhere writes the conditions for resources row a: current, of one
// of types, satisfying clauses, visible through the filter. With drive set,
// one clause may become a driving rid set; otherwise (a is already bound by
// a join, as in a chain's target) every clause is a correlated test.
func (b *sqlBuilder) resourceWhere(a string, types []string, clauses []store.Clause, drive bool) error {
	b.w(a + ".deleted = 0")
	driver := -1
	if drive {
		driver = store.PickDriver(clauses, len(types) > 0)
	}
	if len(types) > 0 {
		// With a driving clause, the unary + keeps SQLite from driving by
		// scanning every resource of the type instead: the clause's rid set
		// is far more selective, and it already filters by type.
		if driver >= 0 {
			b.w(" AND +" + a + ".type IN ")
		} else {
			b.w(" AND " + a + ".type IN ")
		}
		b.inList(types)
	}
	if driver >= 0 && a == "r" && b.stream {
		c := clauses[driver][0]
		b.streamCond = c
		if c.Kind == store.CondCompartment {
			b.w(" AND d.comp_type = ? AND d.comp_id = ?", c.RefType, c.RefID)
		} else {
			b.w(" AND d.param = ? AND ", c.Param)
			if err := b.rowPred("d", c); err != nil {
				return err
			}
			if c.Kind == store.CondToken {
				// The span of the resource's dates on each entry of
				// idx_token_code (migrations/0007): entries whose resource
				// cannot meet the date clauses are dropped before the
				// resource is read or its dates probed.
				for _, t := range store.SpanTests(clauses, driver) {
					b.w(" AND "+t.SQL("d.date_lo", "d.date_hi"), t.Value)
				}
			}
		}
		b.w(" AND d.type IN ")
		b.inList(types)
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
		b.w(")")
	}
	for i, cl := range clauses {
		if i == driver {
			continue
		}
		if len(cl) == 0 {
			// An empty OR holds for nothing: fail closed, never wider.
			b.w(" AND 0")
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

// condSet writes c as a SELECT of the rids of matching resources of types.
// Only conditions with condRank >= 0 have one.
func (b *sqlBuilder) condSet(c store.Cond, types []string) error {
	typeFilter := func(col string) {
		// The type test inside the lookup lets the covering index (...,
		// type, rid) answer it alone.
		if len(types) > 0 {
			b.w(" AND " + col + " IN ")
			b.inList(types)
		}
	}
	switch c.Kind {
	case store.CondID:
		b.w("SELECT rid FROM resources WHERE id = ?", c.Code)
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
		b.w("SELECT rid FROM idx_compartment WHERE comp_type = ? AND comp_id = ?", c.RefType, c.RefID)
		typeFilter("type")
		return nil
	case store.CondText:
		m, err := ftsQuery(c)
		if err != nil {
			return err
		}
		// Types are tested on the resources row (FTS5 holds no type).
		b.w("SELECT rowid >> 16 FROM idx_text WHERE idx_text MATCH ?", m)
		return nil
	case store.CondChain:
		// CROSS JOIN keeps the target outermost: it is found through the
		// sub-query's own driving lookup, then the references to it
		// through idx_reference_target; the other order would read every
		// reference of the parameter.
		x, t := b.alias("x"), b.alias("t")
		b.w("SELECT "+x+".rid FROM resources "+t+" CROSS JOIN idx_reference "+x+" ON "+x+".param = ? AND "+
			x+".ref_id = "+t+".id AND "+x+".ref_type = "+t+".type WHERE ", c.Param)
		if c.Sub == nil {
			return notSupported("chain on %s without a sub-query", c.Param)
		}
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
		// As for chains, the referring resource s is found first through
		// its own lookup, then its reference rows by key range.
		b.w("SELECT "+t+".rid FROM resources "+s+" CROSS JOIN idx_reference "+x+" ON "+rowsOf(x+".key", s)+" AND +"+x+".param = ?"+
			" CROSS JOIN resources "+t+" ON "+t+".type = "+x+".ref_type AND "+t+".id = "+x+".ref_id WHERE ", c.Param)
		if err := b.resourceWhere(s, c.Sub.Types, c.Sub.Clauses, true); err != nil {
			return err
		}
		typeFilter(t + ".type")
		return nil
	}
	if (c.Kind == store.CondDate || c.Kind == store.CondNumber) && (c.Prefix == store.PrefixGE || c.Prefix == store.PrefixLE) && c.Missing == store.NotMissingTest {
		// ge is gt or eq, le is lt or eq: as a UNION each half seeks its
		// own index (by hi for gt, by lo for lt and eq); as one OR, SQLite
		// would read every row of the parameter.
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
	k, ok := condTable(c.Kind)
	if !ok {
		return notSupported("search condition kind %d", c.Kind)
	}
	x := b.alias("x")
	b.w("SELECT "+x+".rid FROM "+idxTables[k]+" "+x+" WHERE "+x+".param = ?", c.Param)
	if c.Missing != store.MissingFalse {
		b.w(" AND ")
		if err := b.rowPred(x, c); err != nil {
			return err
		}
	}
	typeFilter(x + ".type")
	return nil
}

// condTable is the index table of a condition kind that has rows.
func condTable(k store.CondKind) (int, bool) {
	switch k {
	case store.CondToken:
		return kindToken, true
	case store.CondString:
		return kindString, true
	case store.CondDate:
		return kindDate, true
	case store.CondNumber:
		return kindNumber, true
	case store.CondQuantity:
		return kindQuantity, true
	case store.CondReference:
		return kindReference, true
	case store.CondURI:
		return kindURI, true
	case store.CondComposite:
		return kindComposite, true
	}
	return 0, false
}

// condTest writes c as a boolean test on resources row a.
func (b *sqlBuilder) condTest(c store.Cond, a string) error {
	if c.Missing != store.NotMissingTest {
		k, ok := condTable(c.Kind)
		if !ok {
			return notSupported(":missing on a condition of kind %d", c.Kind)
		}
		if c.Missing == store.MissingTrue {
			b.w("NOT ")
		}
		b.w("EXISTS (SELECT 1 FROM "+idxTables[k]+" WHERE "+rowsOf("key", a)+" AND +param = ?)", c.Param)
		return nil
	}
	if c.Not {
		// :not holds when no row matches, including when there is no row.
		b.w("NOT ")
	}
	switch c.Kind {
	case store.CondID:
		b.w("("+a+".id = ?)", c.Code)
		return nil
	case store.CondLastUpdated:
		b.w("(")
		if err := b.lastUpdated(a+".last_updated", c); err != nil {
			return err
		}
		b.w(")")
		return nil
	case store.CondCompartment:
		b.w("EXISTS (SELECT 1 FROM idx_compartment WHERE "+rowsOf("key", a)+" AND +comp_type = ? AND comp_id = ?)", c.RefType, c.RefID)
		return nil
	case store.CondText:
		m, err := ftsQuery(c)
		if err != nil {
			return err
		}
		b.w("EXISTS (SELECT 1 FROM idx_text WHERE idx_text MATCH ? AND "+rowsOf("rowid", a)+")", m)
		return nil
	case store.CondChain:
		if c.Sub == nil {
			return notSupported("chain on %s without a sub-query", c.Param)
		}
		x, t := b.alias("x"), b.alias("t")
		b.w("EXISTS (SELECT 1 FROM idx_reference "+x+" JOIN resources "+t+" ON "+t+".type = "+x+".ref_type AND "+t+".id = "+x+".ref_id WHERE "+
			rowsOf(x+".key", a)+" AND +"+x+".param = ? AND ", c.Param)
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
			x+".param = ? AND "+x+".ref_id = "+a+".id AND "+x+".ref_type = "+a+".type AND ", c.Param)
		if len(c.Sub.Types) > 0 {
			b.w(x + ".type IN ")
			b.inList(c.Sub.Types)
			b.w(" AND ")
		}
		if err := b.resourceWhere(s, c.Sub.Types, c.Sub.Clauses, false); err != nil {
			return err
		}
		b.w(")")
		return nil
	}
	k, ok := condTable(c.Kind)
	if !ok {
		return notSupported("search condition kind %d", c.Kind)
	}
	x := b.alias("x")
	b.w("EXISTS (SELECT 1 FROM "+idxTables[k]+" "+x+" WHERE "+rowsOf(x+".key", a)+" AND +"+x+".param = ? AND ", c.Param)
	if err := b.rowPred(x, c); err != nil {
		return err
	}
	b.w(")")
	return nil
}

// rowPred writes the test of one index row x of c's kind against c's value
// (without :not, which the callers apply to the whole row set).
func (b *sqlBuilder) rowPred(x string, c store.Cond) error {
	switch c.Kind {
	case store.CondToken:
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
			b.w(x+".ref_id = ?", c.RefID)
			if c.RefType != "" {
				b.w(" AND "+x+".ref_type = ?", c.RefType)
			}
		case c.URL != "":
			// url <> '' lets SQLite use the partial index idx_reference_url.
			b.w(x+".url = ? AND "+x+".url <> ''", c.URL)
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

// tokenPred tests a token (system, code, text) against c's token form.
func (b *sqlBuilder) tokenPred(system, code, text string, c store.Cond) error {
	var parts []string
	var args []any
	if c.Text {
		// :text matches the start of the normalised display/text.
		if c.Code != "" {
			lo, hi, bounded := prefixRange(c.Code)
			parts, args = append(parts, text+" >= ?"), append(args, lo)
			if bounded {
				parts, args = append(parts, text+" < ?"), append(args, hi)
			}
		}
	} else if !c.AnyCode {
		parts, args = append(parts, code+" = ?"), append(args, c.Code)
	}
	if !c.AnySystem {
		parts, args = append(parts, system+" = ?"), append(args, c.System)
	}
	if len(parts) == 0 {
		parts = []string{"1"}
	}
	b.w(strings.Join(parts, " AND "), args...)
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
		if c.Value == "" {
			b.w("1")
			return nil
		}
		lo, hi, bounded := prefixRange(c.Value)
		b.w(norm+" >= ?", lo)
		if bounded {
			b.w(" AND "+norm+" < ?", hi)
		}
	case store.MatchExact:
		b.w(exact+" = ?", c.Value)
	case store.MatchContains:
		// instr compares bytes, so no wildcard needs escaping and ASCII
		// case is not folded (LIKE would fold it: a wider result).
		b.w("instr("+norm+", ?) > 0", c.Value)
	default:
		return notSupported("string match %d", c.Match)
	}
	return nil
}

// uriPred tests a uri value by m.
func (b *sqlBuilder) uriPred(col string, m store.Match, v string) error {
	switch m {
	case store.MatchExact:
		b.w(col+" = ?", v)
	case store.MatchPrefix: // :below
		if v == "" {
			b.w("1")
			return nil
		}
		lo, hi, bounded := prefixRange(v)
		b.w(col+" >= ?", lo)
		if bounded {
			b.w(" AND "+col+" < ?", hi)
		}
	case store.MatchAbove:
		// Every prefix of v sorts at or before v.
		b.w(col+" <= ? AND substr(?, 1, length("+col+")) = "+col, v, v)
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
			b.w(p+"text = ?", c.Value)
			return nil
		default:
			return b.stringPred(p+"code", p+"text", c)
		}
	case store.CondURI:
		return b.uriPred(p+"code", c.Match, c.Value)
	case store.CondReference:
		switch {
		case c.RefID != "" && c.RefType != "":
			b.w(p+"code = ?", c.RefType+"/"+c.RefID)
		case c.RefID != "":
			// Any type: the value ends with "/id" (ids are ASCII, so
			// characters are bytes).
			b.w("substr("+p+"code, ?) = ?", -(len(c.RefID) + 1), "/"+c.RefID)
		case c.URL != "":
			b.w(p+"code = ?", c.URL)
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
		b.w("0") // unreachable for valid prefixes; fail closed
	}
}

// lastUpdated writes c's prefix comparison over the last-updated instant,
// stored in microseconds: the row range is the millisecond [t, t], and
// t >= L, t <= H become µs bounds (floor division keeps them exact).
func (b *sqlBuilder) lastUpdated(col string, c store.Cond) error {
	lo := satMul(c.Lo, 1000)                    // t >= L  <=>  µs >= L*1000
	hi := satAdd(satMul(c.Hi, 1000), 999)       // t <= H  <=>  µs <= H*1000+999
	loBefore := satAdd(satMul(c.Lo, 1000), -1)  // t < L   <=>  µs <= L*1000-1
	hiAfter := satAdd(satMul(c.Hi, 1000), 1000) // t > H   <=>  µs >= H*1000+1000
	eq := "(" + col + " >= ? AND " + col + " <= ?)"
	switch c.Prefix {
	case store.PrefixEQ, store.PrefixAP:
		b.w(eq, lo, hi)
	case store.PrefixNE:
		b.w("NOT "+eq, lo, hi)
	case store.PrefixGT, store.PrefixSA:
		b.w(col+" >= ?", hiAfter)
	case store.PrefixLT, store.PrefixEB:
		b.w(col+" <= ?", loBefore)
	case store.PrefixGE:
		b.w("("+col+" >= ? OR "+eq+")", hiAfter, lo, hi)
	case store.PrefixLE:
		b.w("("+col+" <= ? OR "+eq+")", loBefore, lo, hi)
	default:
		return notSupported("date prefix %d", c.Prefix)
	}
	return nil
}

func satMul(a, m int64) int64 {
	if a > math.MaxInt64/m {
		return math.MaxInt64
	}
	if a < math.MinInt64/m {
		return math.MinInt64
	}
	return a * m
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

// prefixRange returns the byte range [lo, hi) of the strings starting with
// v: SQLite compares TEXT with memcmp, so s starts with v exactly when
// v <= s < v with its last byte incremented (after dropping trailing 0xff
// bytes, which cannot be incremented). bounded is false when there is no
// upper bound (v is all 0xff).
func prefixRange(v string) (lo, hi string, bounded bool) {
	bs := []byte(v)
	for len(bs) > 0 && bs[len(bs)-1] == 0xff {
		bs = bs[:len(bs)-1]
	}
	if len(bs) == 0 {
		return v, "", false
	}
	bs[len(bs)-1]++
	return v, string(bs), true
}

// ftsQuery is the FTS5 query for a text condition: every term, quoted, in
// the column of the parameter (all in one row, which FTS5 matches per row).
func ftsQuery(c store.Cond) (string, error) {
	var col string
	switch c.Param {
	case "_text":
		col = "t_text"
	case "_content":
		col = "t_content"
	default:
		return "", notSupported("text search on %q", c.Param)
	}
	terms := strings.Fields(c.Value)
	if len(terms) == 0 {
		return "", notSupported("text search without a term")
	}
	q := make([]string, len(terms))
	for i, t := range terms {
		q[i] = col + ` : "` + strings.ReplaceAll(t, `"`, `""`) + `"`
	}
	return strings.Join(q, " AND "), nil
}

func (b *sqlBuilder) countSQL() string {
	return "SELECT count(*) FROM resources r WHERE " + b.sb.String()
}
