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
	if n := maxIndexRows(&p.Index); n >= 1<<idxKeyBits {
		return fhir.Errorf(fhir.EUnprocessable, "", "%s/%s has %d search index entries of one kind; at most %d are supported",
			p.Type, p.ID, n, 1<<idxKeyBits-1)
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
	var source any // NULL: none
	labelled := false
	if !p.Deleted {
		body = p.Body
		newMask = indexMask(&p.Index)
		source, labelled = accessColumns(&p.Index)
	}
	if !exists {
		rid = s.nextRID
		s.nextRID++
		if _, err := s.w.insertRes.ExecContext(ctx, rid, p.Type, p.ID, p.VersionID, seq, lu, p.Deleted, newMask, source, labelled); err != nil {
			return err
		}
	} else {
		for k := range numKinds {
			if oldMask&(1<<k) != 0 {
				first := rid << idxKeyBits
				if _, err := s.w.delIdx[k].ExecContext(ctx, first, first|(1<<idxKeyBits-1)); err != nil {
					return err
				}
			}
		}
		if _, err := s.w.updateRes.ExecContext(ctx, p.VersionID, seq, lu, p.Deleted, newMask, source, labelled, rid); err != nil {
			return err
		}
	}
	// A Put rolled back with its savepoint may leave hw higher than any
	// committed row: harmless, lu_hw need only never be below last_updated.
	s.hw = max(s.hw, lu)
	if _, err := s.w.insertVer.ExecContext(ctx, seq, rid, p.Type, p.VersionID, lu, p.Deleted, body, s.hw); err != nil {
		return err
	}
	if p.Deleted {
		return nil
	}
	var err error
	s.args, err = insertIndex(ctx, s.w, s.args, rid, p.Type, &p.Index)
	return err
}

func maxIndexRows(ix *store.Index) int {
	return max(len(ix.Tokens), len(ix.Strings), len(ix.Dates), len(ix.Numbers), len(ix.Quantities), len(ix.References), len(ix.URIs),
		len(ix.Composites), len(ix.Texts), len(ix.Compartments))
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
	set(kindComposite, len(ix.Composites))
	set(kindText, len(ix.Texts))
	set(kindCompartment, len(ix.Compartments))
	return m
}

// insertIndex writes the index rows of one resource, insertChunk rows per
// statement. args is scratch space, returned for reuse.
func insertIndex(ctx context.Context, w *stmts, args []any, rid int64, typ string, ix *store.Index) ([]any, error) {
	spanLo, spanHi := ix.DateSpan() // on every token row (migrations/0007)
	for k := range numKinds {
		n := 0
		switch k {
		case kindToken:
			n = len(ix.Tokens)
		case kindString:
			n = len(ix.Strings)
		case kindDate:
			n = len(ix.Dates)
		case kindNumber:
			n = len(ix.Numbers)
		case kindQuantity:
			n = len(ix.Quantities)
		case kindReference:
			n = len(ix.References)
		case kindURI:
			n = len(ix.URIs)
		case kindComposite:
			n = len(ix.Composites)
		case kindText:
			n = len(ix.Texts)
		case kindCompartment:
			n = len(ix.Compartments)
		}
		for lo := 0; lo < n; lo += insertChunk {
			hi := min(lo+insertChunk, n)
			args = args[:0]
			for i := lo; i < hi; i++ {
				key := rid<<idxKeyBits | int64(i)
				switch k {
				case kindToken:
					r := &ix.Tokens[i]
					args = append(args, key, rid, typ, r.Param, r.System, r.Code, r.Text, spanLo, spanHi)
				case kindString:
					r := &ix.Strings[i]
					args = append(args, key, rid, typ, r.Param, r.Norm, r.Exact)
				case kindDate:
					r := &ix.Dates[i]
					args = append(args, key, rid, typ, r.Param, r.Lo, r.Hi)
				case kindNumber:
					r := &ix.Numbers[i]
					args = append(args, key, rid, typ, r.Param, r.Lo, r.Hi)
				case kindQuantity:
					r := &ix.Quantities[i]
					args = append(args, key, rid, typ, r.Param, r.System, r.Code, r.Lo, r.Hi)
				case kindReference:
					r := &ix.References[i]
					args = append(args, key, rid, typ, r.Param, r.Type, r.ID, r.URL)
				case kindURI:
					r := &ix.URIs[i]
					args = append(args, key, rid, typ, r.Param, r.Value)
				case kindComposite:
					r := &ix.Composites[i]
					if len(r.Parts) > 3 {
						return args, fmt.Errorf("sqlite: composite %q has %d parts; the schema holds 3", r.Param, len(r.Parts))
					}
					args = append(args, key, rid, typ, r.Param)
					for p := range 3 {
						var cp store.CompositePart
						if p < len(r.Parts) {
							cp = r.Parts[p]
						}
						args = append(args, cp.System, cp.Code, cp.Text, cp.Lo, cp.Hi)
					}
				case kindText:
					r := &ix.Texts[i]
					switch r.Param {
					case "_text":
						args = append(args, key, r.Value, nil)
					case "_content":
						args = append(args, key, nil, r.Value)
					default:
						return args, fmt.Errorf("sqlite: text index row of unknown parameter %q", r.Param)
					}
				case kindCompartment:
					r := &ix.Compartments[i]
					args = append(args, key, rid, typ, r.Type, r.ID)
				}
			}
			st, err := w.insert(ctx, k, hi-lo)
			if err != nil {
				return args, err
			}
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return args, err
			}
		}
	}
	return args, nil
}

var _ store.Reindexer = (*tx)(nil)

// Reindex replaces the index rows of typ/id's current version with ix,
// without writing a version (store.Reindexer, for `sharedcare reindex`).
// On the single writer nothing can change the resource between the version
// check and the replacement.
func (t *tx) Reindex(ctx context.Context, typ, id string, version int64, ix store.Index) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if t.broken != nil {
		return t.broken
	}
	if n := maxIndexRows(&ix); n >= 1<<idxKeyBits {
		return fhir.Errorf(fhir.EUnprocessable, "", "%s/%s has %d search index entries of one kind; at most %d are supported",
			typ, id, n, 1<<idxKeyBits-1)
	}
	s, sctx := t.s, t.sqlCtx
	st, tmp, err := s.wq.get(sctx, "SELECT rid, version, idx_mask, deleted FROM resources WHERE type = ? AND id = ?")
	if err != nil {
		return toError(err)
	}
	if tmp {
		defer st.Close()
	}
	var rid, current, mask int64
	var deleted bool
	err = st.QueryRowContext(sctx, typ, id).Scan(&rid, &current, &mask, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return fhir.Errorf(fhir.ENotFound, "", "%s/%s does not exist", typ, id)
	}
	if err != nil {
		return toError(err)
	}
	if current != version {
		return fhir.Errorf(fhir.EConflict, "", "%s/%s: version %d is no longer current (the latest is %d)", typ, id, version, current)
	}
	if err := t.reindex(sctx, rid, typ, mask, deleted, &ix); err != nil {
		t.broken = toError(err)
		return t.broken
	}
	return nil
}

func (t *tx) reindex(ctx context.Context, rid int64, typ string, oldMask int64, deleted bool, ix *store.Index) error {
	s := t.s
	for k := range numKinds {
		if oldMask&(1<<k) != 0 {
			first := rid << idxKeyBits
			if _, err := s.w.delIdx[k].ExecContext(ctx, first, first|(1<<idxKeyBits-1)); err != nil {
				return err
			}
		}
	}
	newMask := int64(0)
	var source any
	labelled := false
	if !deleted {
		newMask = indexMask(ix)
		source, labelled = accessColumns(ix)
		var err error
		if s.args, err = insertIndex(ctx, s.w, s.args, rid, typ, ix); err != nil {
			return err
		}
	}
	_, err := s.wconn.ExecContext(ctx, "UPDATE resources SET idx_mask = ?, source = ?, labelled = ? WHERE rid = ?", newMask, source, labelled, rid)
	return err
}

// accessColumns returns the values of the resources columns source and
// labelled (migrations/0006) for a version indexed as ix.
func accessColumns(ix *store.Index) (source any, labelled bool) {
	if src, ok := ix.Source(); ok {
		source = src
	}
	return source, len(ix.Labels()) > 0
}
