package store

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
}

// Token indexes a code, an identifier, a boolean or a ContactPoint.
type Token struct {
	Param  string
	System string // "" when the value has no system
	Code   string
	Text   string // display or text, for :text; may be ""
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

// Number indexes a number as the range its written precision implies.
type Number struct {
	Param string
	Lo    float64
	Hi    float64
}

// Quantity indexes a Quantity as a range plus its unit system and code.
type Quantity struct {
	Param  string
	System string
	Code   string
	Lo     float64
	Hi     float64
}

// Reference indexes a reference. Type and ID are set for references to
// resources (relative, or absolute on this server); URL holds other
// references (absolute URLs elsewhere, canonicals) as written.
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
