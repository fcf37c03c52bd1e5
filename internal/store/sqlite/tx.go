package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// tx is the store.Tx handed to a Write's function. It runs on the write
// connection, inside the batch transaction and the request's savepoint, so
// its reads see its own (and the batch's earlier) writes; with a single
// writer nothing else can change a row between its Read and its Put.
type tx struct {
	s      *Store
	ctx    context.Context // the caller's: checked before each operation
	sqlCtx context.Context // never cancelled; see Store.commit
	done   bool            // set when fn has returned: the Tx is dead
	broken error           // a Put failed after writing: the request must fail
}

var _ store.Tx = (*tx)(nil)

func (t *tx) check(ctx context.Context) error {
	if t.done {
		return fhir.Internal(errors.New("sqlite: Tx used after its Write returned"))
	}
	if err := t.ctx.Err(); err != nil {
		return toError(err)
	}
	if err := ctx.Err(); err != nil {
		return toError(err)
	}
	return nil
}

// Read returns the latest version of a resource as this transaction sees it.
func (t *tx) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	return readOne(t.s.w.read.QueryRowContext(t.sqlCtx, typ, id), typ, id)
}

// Search runs a search as this transaction sees the store.
func (t *tx) Search(ctx context.Context, q *store.Query) (*store.Result, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	return search(t.sqlCtx, t.s.wq, q)
}

// Put writes a new version and replaces the resource's index rows.
func (t *tx) Put(ctx context.Context, p *store.Put) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if t.broken != nil {
		return t.broken
	}
	if p.Type == "" || p.ID == "" {
		return fhir.Internal(fmt.Errorf("sqlite: Put without type or id (%q/%q)", p.Type, p.ID))
	}
	if !p.Deleted && len(p.Body) == 0 {
		return fhir.Internal(fmt.Errorf("sqlite: Put of %s/%s without a body", p.Type, p.ID))
	}
	s, ctx := t.s, t.sqlCtx
	var rid, version, mask int64
	err := s.w.current.QueryRowContext(ctx, p.Type, p.ID).Scan(&rid, &version, &mask)
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return toError(err)
	}
	if p.VersionID != version+1 {
		return fhir.Errorf(fhir.EConflict, "", "version conflict on %s/%s: the latest version is %d, so the next must be %d, not %d",
			p.Type, p.ID, version, version+1, p.VersionID)
	}
	// From here on a failure leaves partial writes in the savepoint: mark
	// the transaction broken so that it cannot commit them.
	if err := t.put(ctx, p, exists, rid, mask); err != nil {
		t.broken = toError(err)
		return t.broken
	}
	return nil
}

func (t *tx) put(ctx context.Context, p *store.Put, exists bool, rid, oldMask int64) error {
	s := t.s
	seq := s.nextSeq
	s.nextSeq++
	lu := p.LastUpdated.UnixMicro()
	var body []byte
	newMask := int64(0)
	if !p.Deleted {
		body = p.Body
		newMask = indexMask(&p.Index)
	}
	if !exists {
		rid = s.nextRID
		s.nextRID++
		if _, err := s.w.insertRes.ExecContext(ctx, rid, p.Type, p.ID, p.VersionID, seq, lu, p.Deleted, newMask); err != nil {
			return err
		}
	} else {
		for k := range numKinds {
			if oldMask&(1<<k) != 0 {
				if _, err := s.w.delIdx[k].ExecContext(ctx, rid); err != nil {
					return err
				}
			}
		}
		if _, err := s.w.updateRes.ExecContext(ctx, p.VersionID, seq, lu, p.Deleted, newMask, rid); err != nil {
			return err
		}
	}
	if _, err := s.w.insertVer.ExecContext(ctx, seq, rid, p.Type, p.VersionID, lu, p.Deleted, body); err != nil {
		return err
	}
	if p.Deleted {
		return nil
	}
	return insertIndex(ctx, s.w, rid, p.Type, &p.Index)
}

func indexMask(ix *store.Index) int64 {
	var m int64
	set := func(k int, n int) {
		if n > 0 {
			m |= 1 << k
		}
	}
	set(kindToken, len(ix.Tokens))
	set(kindString, len(ix.Strings))
	set(kindDate, len(ix.Dates))
	set(kindNumber, len(ix.Numbers))
	set(kindQuantity, len(ix.Quantities))
	set(kindReference, len(ix.References))
	set(kindURI, len(ix.URIs))
	return m
}

func insertIndex(ctx context.Context, w *stmts, rid int64, typ string, ix *store.Index) error {
	for _, r := range ix.Tokens {
		if _, err := w.insIdx[kindToken].ExecContext(ctx, rid, typ, r.Param, r.System, r.Code, r.Text); err != nil {
			return err
		}
	}
	for _, r := range ix.Strings {
		if _, err := w.insIdx[kindString].ExecContext(ctx, rid, typ, r.Param, r.Norm, r.Exact); err != nil {
			return err
		}
	}
	for _, r := range ix.Dates {
		if _, err := w.insIdx[kindDate].ExecContext(ctx, rid, typ, r.Param, r.Lo, r.Hi); err != nil {
			return err
		}
	}
	for _, r := range ix.Numbers {
		if _, err := w.insIdx[kindNumber].ExecContext(ctx, rid, typ, r.Param, r.Lo, r.Hi); err != nil {
			return err
		}
	}
	for _, r := range ix.Quantities {
		if _, err := w.insIdx[kindQuantity].ExecContext(ctx, rid, typ, r.Param, r.System, r.Code, r.Lo, r.Hi); err != nil {
			return err
		}
	}
	for _, r := range ix.References {
		if _, err := w.insIdx[kindReference].ExecContext(ctx, rid, typ, r.Param, r.Type, r.ID, r.URL); err != nil {
			return err
		}
	}
	for _, r := range ix.URIs {
		if _, err := w.insIdx[kindURI].ExecContext(ctx, rid, typ, r.Param, r.Value); err != nil {
			return err
		}
	}
	return nil
}
