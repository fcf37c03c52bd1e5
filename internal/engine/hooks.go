package engine

import (
	"context"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// AfterWrite is called once a store transaction the engine ran has
// committed, with every version it wrote (in write order), from every write
// path alike: create, update, patch, delete and their conditional forms, each
// entry of a batch, and a whole transaction bundle. It runs on the caller's
// goroutine before the interaction returns, with the request's context, so
// what it does is visible to the client's next request. It cannot fail the
// write, which is already durable.
//
// The master patient index (internal/mpi/service) links every Patient written
// through it; it is the only reason this hook exists.
type AfterWrite func(ctx context.Context, written []*store.Version)

// hookedStore runs an AfterWrite after each committed Write.
type hookedStore struct {
	store.Store
	after AfterWrite
}

// Write records the versions fn puts and hands them to the hook once the
// transaction has committed. A backend may run fn more than once (a
// retried serialisation conflict): only the last, committed run counts.
func (s *hookedStore) Write(ctx context.Context, fn func(store.Tx) error) error {
	var rec *recordingTx
	err := s.Store.Write(ctx, func(tx store.Tx) error {
		rec = &recordingTx{Tx: tx}
		return fn(rec)
	})
	if err == nil && rec != nil && len(rec.written) > 0 {
		s.after(ctx, rec.written)
	}
	return err
}

// recordingTx notes every successful Put of a transaction.
type recordingTx struct {
	store.Tx
	written []*store.Version
}

func (t *recordingTx) Put(ctx context.Context, p *store.Put) error {
	if err := t.Tx.Put(ctx, p); err != nil {
		return err
	}
	t.written = append(t.written, versionOf(p))
	return nil
}

// Reindex forwards to the backend's store.Reindexer, so that `sharedcare
// reindex` works on an engine with a hook; a rebuilt index row is not a
// write, so the hook does not see it.
func (t *recordingTx) Reindex(ctx context.Context, typ, id string, version int64, idx store.Index) error {
	ri, ok := t.Tx.(store.Reindexer)
	if !ok {
		return fhir.Errorf(fhir.ENotSupported, "", "this store cannot rebuild index rows in place (store.Reindexer)")
	}
	return ri.Reindex(ctx, typ, id, version, idx)
}
