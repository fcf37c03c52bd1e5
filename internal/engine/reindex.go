package engine

import (
	"context"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Reindex rebuilds the index rows of every current resource from its stored
// body, batch resources per transaction, calling progress (if non-nil) with
// the running count after each batch. It pages through the store in rid
// order with the ordinary search cursor, so resources written meanwhile are
// either indexed by their own write or reached by a later page. The backend
// must implement store.Reindexer. Rows are extracted as the engine's writes
// extract them (same base URL).
func (e *Engine) Reindex(ctx context.Context, batch int, progress func(done int)) (int, error) {
	st := e.st
	if batch <= 0 {
		batch = 500
	}
	done := 0
	q := &store.Query{Count: batch}
	for {
		res, err := st.Search(ctx, q)
		if err != nil {
			return done, err
		}
		type item struct {
			v   *store.Version
			idx store.Index
		}
		items := make([]item, 0, len(res.Versions))
		for _, v := range res.Versions {
			r, err := fhir.ParseObject(v.Body, 0)
			if err != nil {
				return done, fhir.Errorf(fhir.EInternal, "", "%s/%s version %d does not parse: %v", v.Type, v.ID, v.VersionID, err)
			}
			items = append(items, item{v, e.ix.Index(v.Type, r)})
		}
		err = st.Write(ctx, func(tx store.Tx) error {
			ri, ok := tx.(store.Reindexer)
			if !ok {
				return fhir.Errorf(fhir.ENotSupported, "", "this store cannot rebuild index rows in place (store.Reindexer)")
			}
			for _, it := range items {
				err := ri.Reindex(ctx, it.v.Type, it.v.ID, it.v.VersionID, it.idx)
				if err != nil && !fhir.IsKind(err, fhir.EConflict) && !fhir.IsKind(err, fhir.ENotFound) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return done, err
		}
		done += len(items)
		if progress != nil {
			progress(done)
		}
		if res.Next == "" {
			return done, nil
		}
		q.Cursor = res.Next
	}
}
