package engine

import (
	"context"
	"strconv"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Read returns the current version of a resource: ENotFound if it never
// existed, EGone if its latest version is a deletion (FHIR http.html#read:
// 410 for a deleted resource).
func (e *Engine) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	if err := checkType(typ); err != nil {
		return nil, err
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	v, err := e.st.Read(ctx, typ, id)
	if err != nil {
		return nil, notFound(err, typ, id)
	}
	if err := e.visible(ctx, typ, id); err != nil {
		return nil, err
	}
	if v.Deleted {
		return nil, gone(v)
	}
	return v, nil
}

// visible applies the context's access filter (WithAccess) to a read: a
// resource the filter withholds gets the same 404 as one that never existed,
// so a read cannot tell withheld from missing. A deleted resource is judged
// as missing too: its index rows are gone, so the filter cannot vouch for it.
func (e *Engine) visible(ctx context.Context, typ, id string) error {
	return visibleIn(ctx, e.st, typ, id)
}

// searcher is what visibleIn asks: the store, or a store transaction (a
// bundle's read sees the transaction's own writes, and is judged on them).
type searcher interface {
	Search(ctx context.Context, q *store.Query) (*store.Result, error)
}

// visibleIn is visible, asking s.
func visibleIn(ctx context.Context, s searcher, typ, id string) error {
	f := readAccessFilter(ctx)
	if f == nil {
		return nil
	}
	res, err := s.Search(ctx, &store.Query{Types: []string{typ}, Clauses: []store.Clause{{{Kind: store.CondID, Code: id}}}, Count: 1, Filter: f})
	if err != nil {
		return err
	}
	if len(res.Versions) == 0 {
		return fhir.Errorf(fhir.ENotFound, "", "%s/%s not found", typ, id)
	}
	return nil
}

// VRead returns one version of a resource. Version ids here are the integers
// the server assigns; a well-formed vid that is not one of them simply names
// no version (404), while a vid that is not even a valid FHIR id is a
// malformed request (400). A deletion marker is EGone.
func (e *Engine) VRead(ctx context.Context, typ, id, vid string) (*store.Version, error) {
	if err := checkType(typ); err != nil {
		return nil, err
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	if !fhir.ValidID(vid) {
		return nil, fhir.Invalid("", "invalid version id %q", trunc(vid))
	}
	n, err := strconv.ParseInt(vid, 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != vid {
		return nil, fhir.Errorf(fhir.ENotFound, "", "%s/%s has no version %q", typ, id, vid)
	}
	if err := e.visible(ctx, typ, id); err != nil {
		return nil, err
	}
	v, err := e.st.VRead(ctx, typ, id, n)
	if err != nil {
		if fhir.IsKind(err, fhir.ENotFound) {
			return nil, fhir.Errorf(fhir.ENotFound, "", "%s/%s has no version %s", typ, id, vid)
		}
		return nil, err
	}
	if v.Deleted {
		return nil, gone(v)
	}
	return v, nil
}

// notFound gives a store's ENotFound a message naming the resource.
func notFound(err error, typ, id string) error {
	if fhir.IsKind(err, fhir.ENotFound) {
		return fhir.Errorf(fhir.ENotFound, "", "%s/%s not found", typ, id)
	}
	return err
}

// gone is the EGone error for a deletion marker.
func gone(v *store.Version) error {
	return fhir.Errorf(fhir.EGone, "", "%s/%s was deleted (version %d)", v.Type, v.ID, v.VersionID)
}
