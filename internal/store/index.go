package store

import "context"

// Index holds the search index rows of one resource version, grouped by the
// kind of search parameter they serve. The engine extracts them; the store
// writes them into narrow tables (one per kind) keyed by resource, so that a
// search touches only index rows.
type Index struct {
	Tokens     []Token
	Strings    []String
	Dates      []Date
	Numbers    []Number
	Quantities []Quantity
	References []Reference
	URIs       []URI
	Composites []Composite
	Texts      []Text
	// Compartments lists the compartments the resource belongs to (for
	// now only Patient compartments, from the R4 CompartmentDefinition).
	Compartments []Compartment
}

// Token indexes a code, an identifier, a boolean or a ContactPoint.
//
// Two derived parameter names exist so that modifiers need no special
// support in a backend: "<param>:of-type" rows index an Identifier for
// :of-type (System = the type coding's system, Code = type code + "|" +
// identifier value), and "<param>:identifier" rows index a Reference's
// identifier for reference :identifier (System, Code = the identifier's).
type Token struct {
	Param  string
	System string // "" when the value has no system
	Code   string
	Text   string // display or text, normalised like String.Norm, for :text; may be ""
}

// String indexes a string element. Norm is lower-cased with accents removed
// (the FHIR default string match); Exact is the value as written.
type String struct {
	Param string
	Norm  string
	Exact string
}

// Date indexes a date, dateTime, instant or Period as the closed range of
// instants it covers, in Unix milliseconds: "2020" covers the whole year.
type Date struct {
	Param string
	Lo    int64
	Hi    int64
}

// Number indexes a number. The indexer writes the value as written (Lo = Hi
// = the value): FHIR puts implicit precision on the search value, which the
// engine widens into the Cond's range.
type Number struct {
	Param string
	Lo    float64
	Hi    float64
}

// Quantity indexes a Quantity (Lo = Hi = value) or a Range (Lo = low, Hi =
// high; a missing bound is -Inf/+Inf) plus its unit system and code. The
// indexer writes a second row with Code = the unit text when a Quantity has
// a unit but no code, so "|mg" style searches work.
type Quantity struct {
	Param  string
	System string
	Code   string
	Lo     float64
	Hi     float64
}

// Reference indexes a reference. Type and ID are set for references to
// resources (relative, or absolute on this server); URL holds other
// references (absolute URLs elsewhere, canonicals) as written. References
// to contained resources ("#x") are not indexed.
type Reference struct {
	Param string
	Type  string
	ID    string
	URL   string
}

// URI indexes a uri, url or canonical element.
type URI struct {
	Param string
	Value string
}

// Composite indexes one element instance of a composite search parameter
// (Observation code-value-quantity: one row per Observation or component
// holding both the code and the value), so that a composite search ties its
// parts to the same instance. It has 2 or 3 parts (R4's largest composite
// has 3).
type Composite struct {
	Param string
	Parts []CompositePart
}

// CompositePart is one component's value inside a Composite row, in the
// columns the component's kind uses:
//
//	token      System, Code (Text for :text)
//	string     Code = the normalised value, Text = the value as written
//	uri        Code = the value
//	reference  Code = "Type/id" or the URL
//	date       Lo, Hi as Unix milliseconds
//	number     Lo, Hi
//	quantity   System, Code (the unit), Lo, Hi
//
// A composite component with several values (a CodeableConcept with two
// codings) yields one Composite row per combination.
type CompositePart struct {
	System string
	Code   string
	Text   string
	Lo     float64
	Hi     float64
}

// Text indexes a resource's text for _text (Param "_text": the narrative,
// tags stripped) and _content (Param "_content": every string in the
// resource). Value is normalised like String.Norm; terms are runs of
// letters and digits. SQLite serves it with FTS5, PostgreSQL with tsvector
// ('simple' configuration: no stemming, so both stores agree).
type Text struct {
	Param string
	Value string
}

// Compartment records that a resource belongs to a compartment: Type
// "Patient", ID the patient's id. The indexer derives it from the R4
// Patient CompartmentDefinition (a resource references the patient through
// one of the listed parameters) plus the Patient itself.
type Compartment struct {
	Type string
	ID   string
}

// Source and Labels are what the access filter (Filter) tests of a
// resource besides its compartments and type, read from its index rows:
// the access layer decides a read by id with them, and the SQLite store
// keeps the source and whether there are labels on the resource's own row
// (so that a filtered search tests them on the row it has already read
// instead of probing the index tables for every candidate).

// Source is the resource's meta.source (its "_source" URI row); ok is
// false without one.
func (ix *Index) Source() (source string, ok bool) {
	for i := range ix.URIs {
		if ix.URIs[i].Param == "_source" {
			return ix.URIs[i].Value, true
		}
	}
	return "", false
}

// Labels are the resource's security labels (its "_security" Token
// rows); nil without any.
func (ix *Index) Labels() []Label {
	var out []Label
	for i := range ix.Tokens {
		if t := &ix.Tokens[i]; t.Param == "_security" {
			out = append(out, Label{System: t.System, Code: t.Code})
		}
	}
	return out
}

// Reindexer is implemented by a backend's Tx that can replace the index rows
// of a resource's current version without writing a new version, for
// `sharedcare reindex` after the indexer changes. Reindex returns EConflict
// when version is no longer the current version of typ/id (a write raced
// the rebuild; that write indexed the resource itself) and ENotFound when the
// resource does not exist.
type Reindexer interface {
	Reindex(ctx context.Context, typ, id string, version int64, idx Index) error
}
