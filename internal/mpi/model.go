package mpi

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// maxLevels bounds the levels of a field.
const maxLevels = 4

// field holds the m and u probabilities of each agreement level of one
// field, and the weight log2(m/u) the score adds for it.
type field struct {
	m, u, w [maxLevels]float64
}

// The thresholds are posterior probabilities of a match among candidate
// pairs; the scores they correspond to follow from the prior EM estimates.
// LinkPosterior is set high because Fellegi-Sunter's independence
// assumption makes the posterior of a strong pattern optimistic, and a wrong
// link is worse than a missed one.
const (
	LinkPosterior   = 0.999 // automatic link at or above
	ReviewPosterior = 0.05  // review queue at or above (and below the link)
)

// minTrainPairs is the fewest candidate pairs EM is run on; below it the
// estimates are noise and DefaultModel is used.
const minTrainPairs = 500

// minProb floors every m estimate (and a hundredth of it every u),
// bounding a field's negative weight to about -10 bits: a level never seen
// among the matches of one data set (a sex mismatch, a wholly different
// birth date) is rare, not impossible, and one field must not veto all the
// others. Positive weights may reach about +17.
const minProb = 1e-3

func (m *Model) setThresholds() {
	logPrior := math.Log2(m.Prior / (1 - m.Prior))
	m.Link = math.Log2(LinkPosterior/(1-LinkPosterior)) - logPrior
	m.Review = math.Log2(ReviewPosterior/(1-ReviewPosterior)) - logPrior
}

// score sums the weights of a pattern.
func (m *Model) score(p pattern) float64 {
	s := 0.0
	for f := 0; f < numFields; f++ {
		if p[f] >= 0 {
			s += m.fields[f].w[p[f]]
		}
	}
	return s
}

// prob is the posterior probability of a match for a score.
func (m *Model) prob(score float64) float64 {
	logit := score + math.Log2(m.Prior/(1-m.Prior))
	return 1 / (1 + math.Exp2(-logit))
}

func (m *Model) gradeOf(score float64) Grade {
	switch {
	case score >= m.Link:
		return Certain
	case score >= m.Review && m.prob(score) >= 0.5:
		return Probable
	case score >= m.Review:
		return Possible
	}
	return CertainlyNot
}

func (m *Model) compare(a, b *Record) Match {
	if a.keys == nil {
		a.prepare()
	}
	if b.keys == nil {
		b.prepare()
	}
	p, swapped := comparePair(a, b)
	return m.decide(a, b, p, swapped)
}

// decide turns a pattern into a Match, applying the NHS number rules.
func (m *Model) decide(a, b *Record, p pattern, swapped bool) Match {
	score := m.score(p)
	mt := Match{Ref: b.Ref, Score: score, Prob: m.prob(score), Grade: m.gradeOf(score), Method: Probabilistic}
	mt.Reason = reasons(p, swapped)
	switch p[fNHS] {
	case 0:
		switch contradictions(p) {
		case 0:
			if a.NHSVerified && b.NHSVerified {
				mt.Grade, mt.Method = Certain, Deterministic
			}
		case 1:
			// One identity field disagrees: the number decides only with
			// the rest of the evidence, probabilistically.
		default:
			// Same NHS number, clearly different people: a number entered
			// on the wrong record. Never linked automatically (issue 5).
			mt.Conflict = true
			mt.Grade = Possible
			mt.Reason = append(mt.Reason, "conflict:demographics-disagree")
		}
	case 1:
		if a.NHSVerified && b.NHSVerified && mt.Grade == Certain {
			// Two verified, different numbers are two people as far as PDS
			// knows: only a person may decide otherwise.
			mt.Grade = Probable
			mt.Reason = append(mt.Reason, "nhs-number:different-verified")
		}
	}
	return mt
}

// String describes the model: prior, thresholds and each level's m, u and
// weight, as docs/BENCHMARKS.md and the CLI's --verbose show it.
func (m *Model) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pairs %d, prior %.5f, link >= %.2f, review >= %.2f\n", m.Pairs, m.Prior, m.Link, m.Review)
	for f := 0; f < numFields; f++ {
		fmt.Fprintf(&b, "%-11s", fieldNames[f])
		for l := 0; l < numLevels[f]; l++ {
			fmt.Fprintf(&b, "  [%d] m=%.4f u=%.5f w=%+.2f", l, m.fields[f].m[l], m.fields[f].u[l], m.fields[f].w[l])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// contradictions counts the identity fields that clearly disagree: given
// name, birth date and sex wholly different. A changed surname is not
// counted (marriage changes it) and neither are address or phone (people
// move). Two or more, with one NHS number, is the conflict of issue 5.
func contradictions(p pattern) int {
	n := 0
	if p[fGiven] == 3 {
		n++
	}
	if p[fBirth] == 3 {
		n++
	}
	if p[fSex] == 1 {
		n++
	}
	return n
}

// --- EM ---------------------------------------------------------------------

func train(recs []Record) *Model {
	for i := range recs {
		if recs[i].keys == nil {
			recs[i].prepare()
		}
	}
	counts := candidatePatterns(recs)
	total := 0
	for _, c := range counts {
		total += c
	}
	if total < minTrainPairs {
		return defaultModel()
	}
	return em(counts, total)
}

// em estimates m, u and the prior from the candidate pairs' patterns
// (counted, since many pairs share one): the latent class is "match", each
// field is assumed independent given the class, and a missing field is
// left out of both likelihoods (missing at random).
func em(counts map[pattern]int, total int) *Model {
	type pc struct {
		p pattern
		n float64
	}
	pats := make([]pc, 0, len(counts))
	for p, n := range counts {
		pats = append(pats, pc{p, float64(n)})
	}
	// Deterministic order, so training twice gives the same model.
	sort.Slice(pats, func(i, j int) bool { return lessPattern(pats[i].p, pats[j].p) })

	m := &Model{Pairs: total, Prior: 0.1}
	// Start: u from the levels' share over all pairs (most are non-matches),
	// m putting 90% on full agreement.
	for f := 0; f < numFields; f++ {
		var seen [maxLevels]float64
		sum := 0.0
		for _, x := range pats {
			if l := x.p[f]; l >= 0 {
				seen[l] += x.n
				sum += x.n
			}
		}
		n := numLevels[f]
		for l := 0; l < n; l++ {
			m.fields[f].u[l] = (seen[l] + 1) / (sum + float64(n))
			m.fields[f].m[l] = 0.1 / float64(n-1)
		}
		m.fields[f].m[0] = 0.9
	}
	for iter := 0; iter < 200; iter++ {
		var mSum, uSum [numFields][maxLevels]float64
		matches := 0.0
		for _, x := range pats {
			lm, lu := m.Prior, 1-m.Prior
			for f := 0; f < numFields; f++ {
				if l := x.p[f]; l >= 0 {
					lm *= m.fields[f].m[l]
					lu *= m.fields[f].u[l]
				}
			}
			g := lm / (lm + lu)
			matches += g * x.n
			for f := 0; f < numFields; f++ {
				if l := x.p[f]; l >= 0 {
					mSum[f][l] += g * x.n
					uSum[f][l] += (1 - g) * x.n
				}
			}
		}
		prior := matches / float64(total)
		change := math.Abs(prior - m.Prior)
		m.Prior = clamp(prior, 1e-6, 1-1e-6)
		for f := 0; f < numFields; f++ {
			n := numLevels[f]
			var ms, us float64
			for l := 0; l < n; l++ {
				ms += mSum[f][l]
				us += uSum[f][l]
			}
			for l := 0; l < n; l++ {
				// A small pseudo-count keeps an unseen level from a zero
				// probability and an infinite weight.
				nm := max((mSum[f][l]+0.01)/(ms+0.01*float64(n)), minProb)
				nu := max((uSum[f][l]+0.01)/(us+0.01*float64(n)), minProb/100)
				change = max(change, math.Abs(nm-m.fields[f].m[l]), math.Abs(nu-m.fields[f].u[l]))
				m.fields[f].m[l], m.fields[f].u[l] = nm, nu
			}
		}
		if change < 1e-7 {
			break
		}
	}
	m.setWeights()
	m.setThresholds()
	return m
}

// setWeights computes log2(m/u) for every level, made non-increasing from
// agreement to disagreement: a weaker agreement never counts for more than
// a stronger one, whatever a sparse level's estimate says.
func (m *Model) setWeights() {
	for f := 0; f < numFields; f++ {
		fd := &m.fields[f]
		for l := 0; l < numLevels[f]; l++ {
			fd.w[l] = math.Log2(fd.m[l] / fd.u[l])
			if l > 0 && fd.w[l] > fd.w[l-1] {
				fd.w[l] = fd.w[l-1]
			}
		}
	}
}

func lessPattern(a, b pattern) bool {
	for f := 0; f < numFields; f++ {
		if a[f] != b[f] {
			return a[f] < b[f]
		}
	}
	return false
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }
