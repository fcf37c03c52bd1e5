package mpi

import (
	"sort"
	"sync"
)

// index is the in-memory blocking index behind Index: records in slots,
// each block a list of slots. A removed record's slot is reused.
type index struct {
	mu     sync.RWMutex
	model  *Model
	slots  []*Record
	free   []int32
	byRef  map[string]int32
	blocks map[uint64][]int32
}

func newIndex(m *Model) *Index {
	if m == nil {
		m = defaultModel()
	}
	return &Index{idx: index{model: m, byRef: map[string]int32{}, blocks: map[uint64][]int32{}}}
}

func (ix *index) add(r Record) {
	if r.keys == nil {
		r.prepare()
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.removeLocked(r.Ref)
	var slot int32
	if n := len(ix.free); n > 0 {
		slot, ix.free = ix.free[n-1], ix.free[:n-1]
		ix.slots[slot] = &r
	} else {
		slot = int32(len(ix.slots))
		ix.slots = append(ix.slots, &r)
	}
	ix.byRef[r.Ref] = slot
	for _, k := range r.keys {
		ix.blocks[k] = append(ix.blocks[k], slot)
	}
}

func (ix *index) remove(ref string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.removeLocked(ref)
}

func (ix *index) removeLocked(ref string) {
	slot, ok := ix.byRef[ref]
	if !ok {
		return
	}
	r := ix.slots[slot]
	for _, k := range r.keys {
		ids := ix.blocks[k]
		for i, s := range ids {
			if s == slot {
				ids[i] = ids[len(ids)-1]
				ids = ids[:len(ids)-1]
				break
			}
		}
		if len(ids) == 0 {
			delete(ix.blocks, k)
		} else {
			ix.blocks[k] = ids
		}
	}
	ix.slots[slot] = nil
	ix.free = append(ix.free, slot)
	delete(ix.byRef, ref)
}

func (ix *index) len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.byRef)
}

func (ix *index) get(ref string) (Record, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	slot, ok := ix.byRef[ref]
	if !ok {
		return Record{}, false
	}
	return *ix.slots[slot], true
}

func (ix *index) candidates(r Record, limit int) []Match {
	if r.keys == nil {
		r.prepare()
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	seen := make(map[int32]struct{}, 32)
	var out []Match
	for _, k := range r.keys {
		ids := ix.blocks[k]
		if len(ids) > maxBlock && k != r.nhsKey {
			continue
		}
		for _, s := range ids {
			if _, ok := seen[s]; ok {
				continue
			}
			seen[s] = struct{}{}
			o := ix.slots[s]
			if o.Ref == r.Ref {
				continue
			}
			p, swapped := comparePair(&r, o)
			mt := ix.model.decide(&r, o, p, swapped)
			if mt.Grade != CertainlyNot {
				out = append(out, mt)
			}
		}
	}
	sortMatches(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// sortMatches orders best first: automatic links, then by score, then by
// Ref so equal scores come out the same way every time.
func sortMatches(ms []Match) {
	rank := map[Grade]int{Certain: 0, Probable: 1, Possible: 2, CertainlyNot: 3}
	sort.Slice(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if rank[a.Grade] != rank[b.Grade] {
			return rank[a.Grade] < rank[b.Grade]
		}
		if a.Score != b.Score {
			return a.Score > b.Score
		}
		return a.Ref < b.Ref
	})
}
