package engine

// Index extraction lives in package search (search.Indexer, one per engine
// so that absolute references under the engine's base URL are indexed as
// the local Type/id they name).
