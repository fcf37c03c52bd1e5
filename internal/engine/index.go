package engine

import (
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/search"
	"github.com/sharedcare/sharedcare/internal/store"
)

// indexer extracts the index rows of every R4 search parameter (package
// search). It has no base URL: the engine writes references relative, and a
// client's absolute reference is indexed as the URL it wrote.
var indexer = &search.Indexer{}

// indexResource returns the index rows of resource r of type typ.
func indexResource(typ string, r fhir.Object) store.Index {
	return indexer.Index(typ, r)
}
