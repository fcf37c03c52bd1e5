package mpi

import (
	"sort"
	"sync"

	"github.com/sharedcare/sharedcare/internal/procs"
)

// link compares every blocked pair of the batch (in parallel), then builds
// persons from the automatic links, strongest first, refusing any join that
// would put two records into one person that must not be one (see
// cannotJoin); refused links go to review with the pairs between the
// thresholds and the conflicts.
func link(m *Model, recs []Record) Linkage {
	for i := range recs {
		if recs[i].keys == nil {
			recs[i].prepare()
		}
	}
	pairs := scoredPairs(m, recs)
	var links, review []pair
	for _, p := range pairs {
		if p.m.Grade == Certain {
			links = append(links, p)
		} else {
			review = append(review, p)
		}
	}
	// Deterministic links first, then by score: a weak link is judged
	// against the cluster the strong ones have already built.
	sort.Slice(links, func(i, j int) bool {
		a, b := links[i], links[j]
		if (a.m.Method == Deterministic) != (b.m.Method == Deterministic) {
			return a.m.Method == Deterministic
		}
		if a.m.Score != b.m.Score {
			return a.m.Score > b.m.Score
		}
		if a.i != b.i {
			return a.i < b.i
		}
		return a.j < b.j
	})
	c := newClusters(len(recs))
	out := Linkage{Person: make(map[string]string, len(recs))}
	for _, p := range links {
		x, y := c.find(p.i), c.find(p.j)
		if x == y {
			out.Links = append(out.Links, Pair{A: recs[p.i].Ref, Match: p.m})
			continue
		}
		if cannotJoin(m, recs, c.members[x], c.members[y]) {
			p.m.Grade = Probable
			p.m.Reason = append(p.m.Reason, "cluster:refused")
			review = append(review, p)
			continue
		}
		c.union(x, y)
		out.Links = append(out.Links, Pair{A: recs[p.i].Ref, Match: p.m})
	}
	for _, p := range review {
		out.Review = append(out.Review, Pair{A: recs[p.i].Ref, Match: p.m})
	}
	sort.Slice(out.Review, func(i, j int) bool { return out.Review[i].Score > out.Review[j].Score })
	for root, members := range c.members {
		if members == nil {
			continue
		}
		key := recs[root].Ref
		for _, i := range members {
			if recs[i].Ref < key {
				key = recs[i].Ref
			}
		}
		for _, i := range members {
			out.Person[recs[i].Ref] = key
		}
	}
	return out
}

// cannotJoin reports whether two clusters hold a pair of records that must
// not be one person (see Model.MustNotLink). Transitive linking would
// otherwise chain A-B-C into one person although A and C are clearly
// different: a wrong link through a middle record.
func cannotJoin(m *Model, recs []Record, xs, ys []int) bool {
	for _, i := range xs {
		for _, j := range ys {
			if m.mustNotLink(&recs[i], &recs[j]) {
				return true
			}
		}
	}
	return false
}

func (m *Model) mustNotLink(a, b *Record) bool {
	if a.keys == nil {
		a.prepare()
	}
	if b.keys == nil {
		b.prepare()
	}
	if a.NHS != "" && b.NHS != "" && a.NHS != b.NHS && a.NHSVerified && b.NHSVerified {
		return true
	}
	p, swapped := comparePair(a, b)
	mt := m.decide(a, b, p, swapped)
	return mt.Conflict || (mt.Score < m.Review && contradictions(p) >= 2)
}

type pair struct {
	i, j int
	m    Match
}

// scoredPairs compares every candidate pair and keeps those not graded
// certainly-not (conflicts included), using every core.
func scoredPairs(m *Model, recs []Record) []pair {
	b := buildBlocks(recs)
	workers := procs.Cores()
	var mu sync.Mutex
	var all []pair
	var wg sync.WaitGroup
	const chunk = 256
	next := 0
	var nextMu sync.Mutex
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stamp := make([]int32, len(recs))
			var local []pair
			for {
				nextMu.Lock()
				start := next
				next += chunk
				nextMu.Unlock()
				if start >= len(recs) {
					break
				}
				for i := start; i < min(start+chunk, len(recs)); i++ {
					b.candidatesAfter(recs, i, stamp, func(j int) {
						p, swapped := comparePair(&recs[i], &recs[j])
						mt := m.decide(&recs[i], &recs[j], p, swapped)
						if mt.Grade != CertainlyNot || mt.Conflict {
							local = append(local, pair{i, j, mt})
						}
					})
				}
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(all, func(x, y int) bool {
		if all[x].i != all[y].i {
			return all[x].i < all[y].i
		}
		return all[x].j < all[y].j
	})
	return all
}

// clusters is union-find keeping each root's members.
type clusters struct {
	parent  []int
	members [][]int
}

func newClusters(n int) *clusters {
	c := &clusters{parent: make([]int, n), members: make([][]int, n)}
	for i := range c.parent {
		c.parent[i] = i
		c.members[i] = []int{i}
	}
	return c
}

func (c *clusters) find(i int) int {
	for c.parent[i] != i {
		c.parent[i] = c.parent[c.parent[i]]
		i = c.parent[i]
	}
	return i
}

func (c *clusters) union(x, y int) {
	if len(c.members[x]) < len(c.members[y]) {
		x, y = y, x
	}
	c.parent[y] = x
	c.members[x] = append(c.members[x], c.members[y]...)
	c.members[y] = nil
}
