package engine

import (
	"context"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// A transaction's entries are encoded before the store transaction whenever
// their references are known then, because a store may run the transaction
// on a single writer (SQLite) where every microsecond inside it is a
// microsecond no other write can use. References to conditional entries
// (ifNoneExist, PUT Type?criteria) and conditional references are only
// decided inside the store transaction; feeds such as current Synthea make
// most entries refer to a conditionally created Organization or
// Practitioner. For those the engine predicts the outcome with reads
// outside the transaction, encodes plain POST entries with the predicted
// ids, and inside the transaction checks each prediction an entry used
// before writing it; an entry whose prediction no longer holds is rewritten
// and encoded there, as it would have been without prediction.

// predict fills m.predIDs and m.predCond from reads of the store, and
// prepares the plain POST entries whose references it then knows.
func (e *Engine) predict(ctx context.Context, entries []*entry, m *refMap, now time.Time) {
	m.predIDs = map[string]string{}
	m.predCond = map[string]string{}
	for _, en := range entries {
		if en.cond == nil || en.fullURL == "" || (en.method != "POST" && en.method != "PUT") {
			continue
		}
		if id, ok := e.predictTarget(ctx, en); ok {
			m.predIDs[en.fullURL] = en.typ + "/" + id
		}
	}
	for _, en := range entries {
		if en.static || en.res == nil {
			continue
		}
		for _, s := range en.refs {
			typ, query, ok := conditionalRef(s.orig)
			if !ok {
				continue
			}
			if _, done := m.predCond[s.orig]; done {
				continue
			}
			m.predCond[s.orig] = "" // unknown unless exactly one match
			q, err := parseConditional(query)
			if err != nil {
				continue
			}
			if found, err := e.searchOutside(ctx, typ, q); err == nil && len(found) == 1 {
				m.predCond[s.orig] = typ + "/" + found[0].ID
			}
		}
	}
	for _, en := range entries {
		if en.method != "POST" || en.cond != nil || en.static || en.res == nil || !m.predictable(en) {
			continue
		}
		for _, s := range en.refs {
			s.obj["reference"] = m.predicted(ctx, s.orig)
		}
		en.predicted = true
		en.pre = e.newPut(en.typ, en.id, 1, en.res, now)
	}
}

// predictTarget predicts the id a conditional POST or PUT entry ends up
// with, as runEntries would decide it.
func (e *Engine) predictTarget(ctx context.Context, en *entry) (string, bool) {
	found, err := e.searchOutside(ctx, en.typ, en.cond)
	if err != nil || len(found) > 1 {
		return "", false
	}
	if len(found) == 1 {
		if en.bodyID != "" && en.bodyID != found[0].ID {
			return "", false
		}
		return found[0].ID, true
	}
	if en.method == "PUT" && en.bodyID != "" {
		return en.bodyID, true
	}
	cur, err := e.st.Read(ctx, en.typ, en.derived)
	switch {
	case fhir.IsKind(err, fhir.ENotFound):
		return en.derived, true
	case err == nil && cur.Deleted:
		return en.derived, true
	default:
		return "", false
	}
}

func (e *Engine) searchOutside(ctx context.Context, typ string, q map[string][]string) ([]*store.Version, error) {
	s, err := parseSearch(typ, q, true, true)
	if err != nil {
		return nil, err
	}
	s.q.Count = 2
	res, err := e.st.Search(ctx, &s.q)
	if err != nil {
		return nil, err
	}
	return res.Versions, nil
}

// predictable reports whether every reference of en is known before the
// store transaction, statically or by prediction.
func (m *refMap) predictable(en *entry) bool {
	for _, s := range en.refs {
		switch {
		case m.ids[s.orig] != "":
		case m.dynamic[s.orig]:
			if m.predIDs[s.orig] == "" {
				return false
			}
		default:
			if _, _, ok := conditionalRef(s.orig); ok && m.predCond[s.orig] == "" {
				return false
			}
		}
	}
	return true
}

// predicted is the rewritten form of ref under the predictions.
func (m *refMap) predicted(ctx context.Context, ref string) string {
	if to, ok := m.ids[ref]; ok {
		return to
	}
	if to := m.predIDs[ref]; to != "" {
		return to
	}
	if to := m.predCond[ref]; to != "" {
		return to
	}
	to, _ := m.resolve(ctx, nil, ref)
	return to
}

// predictionHolds checks, inside the store transaction and just before en
// is written, that every prediction en was encoded with is what the
// transaction decided.
func (m *refMap) predictionHolds(ctx context.Context, tx store.Tx, en *entry) bool {
	for _, s := range en.refs {
		switch {
		case m.dynamic[s.orig]:
			if m.ids[s.orig] != m.predIDs[s.orig] {
				return false
			}
		default:
			if _, _, ok := conditionalRef(s.orig); !ok {
				continue
			}
			got, err := m.resolve(ctx, tx, s.orig)
			if err != nil || got != m.predCond[s.orig] {
				return false
			}
		}
	}
	return true
}
