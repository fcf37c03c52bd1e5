package mpi

// Quality is pairwise linkage quality against a truth: a pair of records
// is a true link when the truth puts them in one person.
type Quality struct {
	Precision, Recall, F1 float64
	TruePairs             int // pairs the truth links
	FoundPairs            int // pairs the linkage links
	Correct               int // pairs both link
}

// Evaluate compares a linkage (record -> person) with a truth (record ->
// true person) over the records both know.
func Evaluate(person, truth map[string]string) Quality {
	type key struct{ p, t string }
	both := map[key]int{}
	byP := map[string]int{}
	byT := map[string]int{}
	for ref, p := range person {
		t, ok := truth[ref]
		if !ok {
			continue
		}
		both[key{p, t}]++
		byP[p]++
		byT[t]++
	}
	pairs := func(n int) int { return n * (n - 1) / 2 }
	var q Quality
	for _, n := range both {
		q.Correct += pairs(n)
	}
	for _, n := range byP {
		q.FoundPairs += pairs(n)
	}
	for _, n := range byT {
		q.TruePairs += pairs(n)
	}
	q.Precision, q.Recall = 1, 1
	if q.FoundPairs > 0 {
		q.Precision = float64(q.Correct) / float64(q.FoundPairs)
	}
	if q.TruePairs > 0 {
		q.Recall = float64(q.Correct) / float64(q.TruePairs)
	}
	if q.Precision+q.Recall > 0 {
		q.F1 = 2 * q.Precision * q.Recall / (q.Precision + q.Recall)
	}
	return q
}
