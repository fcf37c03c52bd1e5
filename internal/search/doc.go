// Package search is FHIR search's domain: which index rows a resource
// yields for every R4 SearchParameter (Indexer, driven by the FHIRPath
// expressions of the official definitions), and how a FHIR search URL
// becomes the store's query AST (Parse). It knows nothing of SQL or HTTP:
// the engine calls it, the store backends translate its store.Query.
//
// Its rule is FHIR's and the project's: a query that cannot be answered
// exactly is an error, never a wider result.
package search
