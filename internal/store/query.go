package store

// Query is a search in the store's terms: already parsed and resolved by the
// engine, so a backend only translates it to its query language. All
// Clauses must hold (AND); within a Clause any Cond may hold (OR).
//
// Query is deliberately small for now: it answers _id and token parameters
// (identifier and the like). The full FHIR search engine extends it.
type Query struct {
	Types   []string // resource types to search; empty means every type
	Clauses []Clause
	Count   int    // page size; 0 means a backend default of 100
	Cursor  string // from a previous Result.Next; "" for the first page
	Total   bool   // compute Result.Total
}

// Clause is an OR of conditions.
type Clause []Cond

// CondKind says what a Cond matches on.
type CondKind int

// Condition kinds.
const (
	// CondID matches the logical id: Cond.Code is the id.
	CondID CondKind = iota + 1
	// CondToken matches a Token index row of Cond.Param.
	CondToken
)

// Cond is one condition.
//
// For CondToken, the FHIR token forms map as follows:
//
//	code          AnySystem true,  Code set
//	system|code   System set, Code set
//	|code         System "",  Code set (only rows without a system)
//	system|       System set, Code "", AnyCode true
type Cond struct {
	Kind      CondKind
	Param     string
	System    string
	Code      string
	AnySystem bool
	AnyCode   bool
}
