package engine

import (
	"context"

	"github.com/sharedcare/sharedcare/internal/store"
)

// maxHistoryScan bounds the store pages one filtered history page reads:
// when most of the recent changes are withheld, the page ends early with a
// next link rather than scanning the whole history in one request.
const maxHistoryScan = 20

// filteredHistory returns up to count+1 versions of type or system history
// (hq) whose resource passes f, newest first, and the Seq to continue below
// when it stopped scanning early (0 when it did not). As for instance
// history, the resource's current version decides: a version is listed when
// the resource it belongs to is visible now, so a withheld or deleted
// resource's versions are not listed at all.
func (e *Engine) filteredHistory(ctx context.Context, hq store.HistoryQuery, count int, f *store.Filter) ([]*store.Version, int64, error) {
	var out []*store.Version
	hq.Count = count + 1
	for scan := 0; scan < maxHistoryScan; scan++ {
		vs, err := e.st.History(ctx, hq)
		if err != nil {
			return nil, 0, err
		}
		if len(vs) == 0 {
			return out, 0, nil
		}
		visible, err := e.visibleSet(ctx, vs, f)
		if err != nil {
			return nil, 0, err
		}
		for _, v := range vs {
			if visible[v.Type+"/"+v.ID] {
				out = append(out, v)
				if len(out) == count+1 {
					return out, 0, nil
				}
			}
		}
		if len(vs) < hq.Count {
			return out, 0, nil
		}
		hq.Before = vs[len(vs)-1].Seq
	}
	return out, hq.Before, nil
}

// visibleSet returns which of the versions' resources pass f now, with one
// search per resource type.
func (e *Engine) visibleSet(ctx context.Context, vs []*store.Version, f *store.Filter) (map[string]bool, error) {
	byType := map[string]store.Clause{}
	seen := map[string]bool{}
	for _, v := range vs {
		k := v.Type + "/" + v.ID
		if !seen[k] {
			seen[k] = true
			byType[v.Type] = append(byType[v.Type], store.Cond{Kind: store.CondID, Code: v.ID})
		}
	}
	visible := map[string]bool{}
	for typ, ids := range byType {
		res, err := e.st.Search(ctx, &store.Query{Types: []string{typ}, Clauses: []store.Clause{ids}, Count: len(ids), Filter: f})
		if err != nil {
			return nil, err
		}
		for _, v := range res.Versions {
			visible[v.Type+"/"+v.ID] = true
		}
	}
	return visible, nil
}
