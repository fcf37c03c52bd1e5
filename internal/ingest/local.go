package ingest

import (
	"context"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// Local is a Sink that hands bundles to the engine in-process, on a store
// opened directly: the same validation and transaction semantics as the
// server, without HTTP, authentication or encoding a response body.
type Local struct {
	st      store.Store
	eng     *engine.Engine
	lenient bool
}

// localBase is the base URL the engine is told it serves at. Nothing the
// loader writes depends on it (stored references are relative); it only
// shapes fullUrls in the response bundles the loader reads.
const localBase = "http://localhost/fhir"

// OpenLocal opens the store of a data directory (PostgreSQL when dbURL is
// set, else the SQLite file in dataDir) and an engine over it. source, when
// not "", is stamped as meta.source on every resource loaded without one
// (engine.Config.Source): the organisation whose records these are. The server
// should not be running on an SQLite store at the same time: both would
// write, and only one process can hold its single writer.
func OpenLocal(ctx context.Context, dataDir, dbURL string, lenient bool, source string) (*Local, error) {
	st, err := backend.Open(ctx, dataDir, dbURL)
	if err != nil {
		return nil, err
	}
	return NewLocal(st, lenient, source), nil
}

// NewLocal returns a sink writing through an engine over st; Close closes st.
// source is as for OpenLocal.
func NewLocal(st store.Store, lenient bool, source string) *Local {
	return &Local{st: st, eng: engine.New(st, engine.Config{BaseURL: localBase, Lenient: lenient, Source: source}), lenient: lenient}
}

// Bundle runs a batch or transaction through the engine.
func (l *Local) Bundle(ctx context.Context, body []byte, want bool) (fhir.Object, error) {
	return l.eng.Bundle(ctx, body, engine.WriteOptions{Lenient: l.lenient})
}

// Close closes the store; every acknowledged write is durable by then.
func (l *Local) Close() error { return l.st.Close() }

// Analyze brings the store's planner statistics up to date after a load
// (store.Analyzer); a backend without statistics does nothing.
func (l *Local) Analyze(ctx context.Context) error {
	if a, ok := l.st.(store.Analyzer); ok {
		return a.Analyze(ctx)
	}
	return nil
}
