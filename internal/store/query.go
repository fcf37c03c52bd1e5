package store

import "slices"

// Query is a search in the store's terms: already parsed and resolved by the
// engine (package search turns FHIR's URL syntax into it), so a backend only
// translates it to its query language. It is FHIR-neutral in the sense that
// a backend needs no FHIR knowledge beyond what this file and index.go say:
// every condition names an index row kind, a parameter name and values
// already normalised by the engine.
//
// All Clauses must hold (AND); within a Clause any Cond may hold (OR). A
// backend that cannot translate some node exactly must return an error
// (fhir.ENotSupported), never a wider result.
//
// Filter, when non-nil, is the caller's access predicate: a resource that
// does not pass it does not exist for this query. The backend applies it
// inside the database query to every resource the query touches: matches,
// totals, page boundaries, includes, revincludes, resources traversed by a
// chain and resources tested by _has.
type Query struct {
	Types   []string // resource types to search; empty means every type
	Clauses []Clause
	// Sort lists the sort keys, most significant first; empty means the
	// store's natural order (rid ascending). Every sort ends with rid
	// ascending as the final tie-break so that the order is total.
	Sort []SortKey
	// Include and RevInclude select resources to return alongside the
	// page's matches in Result.Included (search.mode "include").
	Include    []Include
	RevInclude []Include
	// MaxIncluded caps len(Result.Included); 0 means a backend default of
	// 1000. Reaching it is not an error: Result.IncludedTruncated says so.
	MaxIncluded int
	Count       int    // page size; 0 means a backend default of 100
	Cursor      string // from a previous Result.Next or Result.Prev; "" for the first page
	Total       bool   // compute Result.Total (exact count of matches that pass Filter)
	Filter      *Filter
}

// Clause is an OR of conditions.
type Clause []Cond

// CondKind says what a Cond matches on. For a condition on an index row kind,
// it names the kind (and so the table) the rows live in.
type CondKind int

// Condition kinds.
const (
	// CondID matches the logical id: Cond.Code is the id.
	CondID CondKind = iota + 1
	// CondToken matches a Token row of Cond.Param.
	CondToken
	// CondString matches a String row of Cond.Param (Cond.Match, Cond.Value).
	CondString
	// CondDate matches a Date row of Cond.Param by Cond.Prefix over
	// [Cond.Lo, Cond.Hi].
	CondDate
	// CondNumber matches a Number row of Cond.Param by Cond.Prefix over
	// [Cond.NumLo, Cond.NumHi].
	CondNumber
	// CondQuantity matches a Quantity row of Cond.Param: the unit as a
	// token (System, Code, AnySystem, AnyCode) and the value by Cond.Prefix
	// over [Cond.NumLo, Cond.NumHi].
	CondQuantity
	// CondReference matches a Reference row of Cond.Param (RefType, RefID,
	// URL).
	CondReference
	// CondURI matches a URI row of Cond.Param (Cond.Match, Cond.Value).
	CondURI
	// CondComposite matches a Composite row of Cond.Param whose parts
	// satisfy Cond.Parts, all of them in the same row.
	CondComposite
	// CondText matches a Text row of Cond.Param ("_text" or "_content")
	// holding every term of Cond.Value.
	CondText
	// CondLastUpdated matches the resource's last-updated instant (on the
	// resources table, not an index row) by Cond.Prefix over [Lo, Hi]; the
	// instant is treated as the range [t, t] in Unix milliseconds.
	CondLastUpdated
	// CondChain matches a resource having a Reference row of Cond.Param
	// that points (RefType/RefID) to an existing, current resource of one
	// of Cond.Sub.Types that passes Query.Filter and satisfies
	// Cond.Sub.Clauses (chaining: subject:Patient.name=x).
	CondChain
	// CondHas matches a resource R for which there exists a current
	// resource S of one of Cond.Sub.Types that passes Query.Filter,
	// satisfies Cond.Sub.Clauses and has a Reference row of Cond.Param
	// pointing at R (RefType = R's type and RefID = R's id): reverse
	// chaining, _has:Observation:patient:code=x.
	CondHas
	// CondCompartment matches a resource having a Compartment row with
	// Type Cond.RefType and ID Cond.RefID (a member of Patient/123's
	// compartment). The compartment's own resource (the Patient itself)
	// carries a membership row too.
	CondCompartment
)

// Comparison prefixes. The semantics are over two closed ranges: the row's
// [lo, hi] (what the resource holds) and the condition's [Lo, Hi] (what the
// client asked for, already widened by the engine for implicit precision and
// for ap). They are FHIR R4 search.html 3.1.1.4, written as comparisons:
//
//	PrefixEQ  lo >= Lo AND hi <= Hi            (search range contains the row)
//	PrefixNE  NOT (lo >= Lo AND hi <= Hi)      (per row; see Cond.Not for "no row")
//	PrefixGT  hi > Hi                           (row reaches above the search range)
//	PrefixLT  lo < Lo                           (row reaches below the search range)
//	PrefixGE  hi > Hi OR (lo >= Lo AND hi <= Hi)
//	PrefixLE  lo < Lo OR (lo >= Lo AND hi <= Hi)
//	PrefixSA  lo > Hi                           (row starts after the search range)
//	PrefixEB  hi < Lo                           (row ends before the search range)
//	PrefixAP  lo <= Hi AND hi >= Lo             (ranges overlap; the engine widens [Lo, Hi])
//
// The zero value is PrefixEQ.
type Prefix uint8

// The comparison prefixes; see Prefix.
const (
	PrefixEQ Prefix = iota
	PrefixNE
	PrefixGT
	PrefixLT
	PrefixGE
	PrefixLE
	PrefixSA
	PrefixEB
	PrefixAP
)

// Match says how a string or uri value is compared.
type Match uint8

// String and uri matches.
const (
	// MatchPrefix: String rows whose Norm starts with Value (the FHIR
	// default string search; Value is normalised like Norm). For URI rows
	// it is :below: Value is a prefix of the row's value.
	MatchPrefix Match = iota
	// MatchExact: String rows whose Exact equals Value (:exact, case- and
	// accent-sensitive); URI rows whose value equals Value (the default
	// uri search).
	MatchExact
	// MatchContains: String rows whose Norm contains Value anywhere
	// (:contains; Value normalised).
	MatchContains
	// MatchAbove: URI rows whose value is a prefix of Value (:above).
	MatchAbove
)

// Missing is a :missing test.
type Missing uint8

// Missing tests.
const (
	// NotMissingTest: the Cond is an ordinary value condition.
	NotMissingTest Missing = iota
	// MissingTrue (param:missing=true) matches resources with no row of
	// Cond.Param in the table of Cond.Kind. The value fields are ignored.
	MissingTrue
	// MissingFalse (param:missing=false) matches resources with at least
	// one row of Cond.Param in the table of Cond.Kind.
	MissingFalse
)

// Cond is one condition. Which fields apply depends on Kind.
//
// A value condition holds for a resource when at least one of its index rows
// of Kind and Param satisfies it (FHIR: a repeating element matches when any
// of its values matches). With Not set it holds when no row satisfies it,
// which includes resources without any row of Param (FHIR token :not: "the
// resource does not have the element, or has it with another value").
//
// For CondToken, the FHIR token forms map as follows (the same fields
// describe a Quantity's unit):
//
//	code          AnySystem true,  Code set
//	system|code   System set, Code set
//	|code         System "",  Code set (only rows without a system)
//	system|       System set, Code "", AnyCode true
//
// With Text set (token :text) the row matches when its Text starts with
// Code; both are normalised by the engine (lower case, accents removed), so
// the backend compares bytes. Identifier :of-type and reference :identifier
// need no special support: the indexer writes them as Token rows of their
// own parameter names (see index.go).
type Cond struct {
	Kind    CondKind
	Param   string
	Not     bool
	Missing Missing

	// Token, quantity unit, id.
	System    string
	Code      string
	AnySystem bool
	AnyCode   bool
	Text      bool

	// String, uri, text: Match and Value.
	Match Match
	Value string

	// Date and last-updated (Unix milliseconds, inclusive), number and
	// quantity (NumLo, NumHi, inclusive): compared by Prefix.
	Prefix Prefix
	Lo, Hi int64
	NumLo  float64
	NumHi  float64

	// Reference: RefType "" means any type. Either RefID or URL is set.
	// Compartment: RefType and RefID name the compartment.
	RefType string
	RefID   string
	URL     string

	// Composite: Parts[i] applies to part i of one Composite row; each
	// part condition has the Kind of the component (token, string, date,
	// number, quantity, reference, uri) and is compared with the part's
	// fields exactly as the kind's own rows are (see CompositePart).
	Parts []Cond

	// Chain and _has: the sub-query (Types and Clauses only; it may hold
	// further chains and _has, to any depth).
	Sub *Query
}

// SortKey is one sort key of a search (_sort).
//
// A resource's sort value for a key is taken from its rows of Kind and Param:
// ascending uses the smallest value (Date: lo; Number, Quantity: lo; String:
// Norm; Token: Code then System; Reference: RefType/RefID then URL; URI:
// value), descending the largest (Date, Number, Quantity: hi). Resources
// with no row sort after every resource with one, in both directions. Param
// "_id" (Kind CondID) sorts by logical id and "_lastUpdated" (Kind
// CondLastUpdated) by last-updated instant; neither has rows.
//
// Also names further parameters whose rows count as Param's: the engine
// does not index a parameter that R4 defines as the union of others
// (Observation combo-code is code | component-code), so sorting by it
// sorts by Param and Also together.
type SortKey struct {
	Kind  CondKind
	Param string
	Also  []string
	Desc  bool
}

// Include selects resources to return alongside matches.
//
// As an _include (Query.Include), it adds every resource that a Reference
// row of Param ("*": any reference parameter) of a page match of type
// SourceType ("" or "*": any) points at, restricted to TargetType when set.
// As a _revinclude (Query.RevInclude), it adds every resource of type
// SourceType having a Reference row of Param pointing at a page match
// (TargetType restricts which matches count).
//
// Included resources are current, not deleted, pass Query.Filter and are not
// themselves page matches; each appears once. With Iterate set the include
// is applied again to the resources it (or any other include) added, until
// nothing new is found or MaxIncluded is reached.
type Include struct {
	SourceType string
	Param      string
	TargetType string
	Iterate    bool
}

// Filter is an access predicate the caller hands to search: a resource is
// visible when it passes at least one Grant. A nil *Filter means no
// restriction; a Filter with no Grants hides everything.
type Filter struct {
	Grants []Grant
}

// Grant is one conjunction of access conditions; every non-nil field must
// hold.
type Grant struct {
	// Patients, when non-nil, requires a Compartment row (Type "Patient")
	// whose ID is in the list: the resource belongs to one of these
	// people's records (a Patient resource is in its own compartment).
	Patients []string
	// NoPatient, when set, requires that the resource has no Compartment
	// row of Type "Patient" at all (organisations, practitioners,
	// medications, value sets...). It is not combined with Patients.
	NoPatient bool
	// Types, when non-nil, requires the resource type to be listed (data
	// categories are sets of types, decided by the caller).
	Types []string
	// Sources, when non-nil, requires a URI row of param "_source"
	// (meta.source) equal to one of the listed values, or equal to one of
	// them followed by "#" and anything (meta.source may carry a
	// "#request-id" fragment). A resource without meta.source fails.
	// Convention (issue 6): the writing node stamps meta.source with its
	// organisation's source URI, e.g. "https://sharedcare.example/ods/RXX".
	Sources []string
	// DenyLabels, when non-nil, requires that the resource has no Token
	// row of param "_security" (meta.security) matching any listed label;
	// a label with System "" matches that code in any system.
	DenyLabels []Label
}

// Shape says how a backend may test f with fewer probes than one set of
// subqueries per grant, by the equivalences
//
//	(P and A) or (P and B)      = P and (A or B)
//	(∃s. S(s) and A) or (∃s. T(s) and B) = ∃s. (S(s) and A) or (T(s) and B)
//
// (the second because A and B do not depend on s). Patients, when not nil,
// are the people every grant requires, to be tested once; Sourced reports
// that every grant requires a source, so that the source row is found once
// and each grant's source test made on it. A caller's filter narrowed to
// one person usually has both: three grants (its own organisation's
// records, and each sharing agreement's) for the same person.
func (f *Filter) Shape() (patients []string, sourced bool) {
	if f == nil || len(f.Grants) < 2 {
		return nil, false
	}
	sourced = true
	patients = f.Grants[0].Patients
	for _, g := range f.Grants {
		if g.Sources == nil || len(g.Sources) == 0 {
			sourced = false
		}
		if patients != nil && (g.Patients == nil || len(g.Patients) == 0 || g.NoPatient || !slices.Equal(g.Patients, patients)) {
			patients = nil
		}
	}
	return patients, sourced
}

// Label is a security label, system and code (meta.security).
type Label struct {
	System string
	Code   string
}
