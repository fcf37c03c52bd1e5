package mpi

import (
	"sync"
	"sync/atomic"

	"github.com/sharedcare/sharedcare/internal/procs"
)

// Blocking: a record is compared only with records sharing one of its
// keys. The keys are chosen so that each kind of error the comparisons
// tolerate leaves at least one key intact:
//
//	n  NHS number                       (names, dates, addresses all wrong)
//	y  phonetic family + birth year     (given name, day, address changed);
//	   also phonetic given + birth year  (given and family swapped) and
//	   phonetic former surname + year
//	g  phonetic given + phonetic family (birth date wrong)
//	d  birth date                       (both names changed or misspelt)
//	p  postcode + birth year            (names misspelt and date partly wrong)
//	f  postcode + phonetic family       (birth date and given name wrong)
//	t  phone number
//	i  any other identifier, by system  (a local number two systems share)

// maxBlock is the size above which a block is not used to find candidates:
// such a key (a common surname in a common year, at national scale) selects
// too little to be worth a quadratic number of comparisons, and the record's
// other keys still find its matches. The NHS number block is never skipped.
const maxBlock = 500

func (r *Record) prepare() {
	r.givenCode, r.familyCode = "", ""
	if len(r.Given) > 0 {
		r.givenCode = soundex(r.Given[0])
	}
	r.familyCode = soundex(r.Family)
	keys := make([]uint64, 0, 12)
	add := func(tag byte, parts ...string) {
		h := uint64(14695981039346656037)
		h = (h ^ uint64(tag)) * 1099511628211
		for _, s := range parts {
			for i := 0; i < len(s); i++ {
				h = (h ^ uint64(s[i])) * 1099511628211
			}
			h = (h ^ 0xff) * 1099511628211
		}
		for _, k := range keys {
			if k == h {
				return
			}
		}
		keys = append(keys, h)
	}
	if r.NHS != "" {
		add('n', r.NHS)
	}
	year := ""
	if validDate(r.BirthDate) {
		year = r.BirthDate[:4]
		add('d', r.BirthDate)
	}
	if year != "" {
		if r.familyCode != "" {
			add('y', r.familyCode, year)
		}
		if r.givenCode != "" {
			add('y', r.givenCode, year)
		}
		for _, o := range r.OtherFamily {
			if c := soundex(o); c != "" {
				add('y', c, year)
			}
		}
	}
	if r.givenCode != "" && r.familyCode != "" {
		add('g', r.givenCode, r.familyCode)
	}
	for _, pc := range r.Postcodes {
		if year != "" {
			add('p', pc, year)
		}
		if r.familyCode != "" {
			add('f', pc, r.familyCode)
		}
	}
	for _, ph := range r.Phones {
		add('t', ph)
	}
	for _, id := range r.Identifiers {
		add('i', id.System, id.Value)
	}
	r.keys = keys
	r.nhsKey = 0
	if r.NHS != "" {
		r.nhsKey = keys[0]
	}
}

// blocks maps each key to the records holding it (their index in a slice).
type blocks map[uint64][]int32

func buildBlocks(recs []Record) blocks {
	b := make(blocks, len(recs)*4)
	for i := range recs {
		for _, k := range recs[i].keys {
			b[k] = append(b[k], int32(i))
		}
	}
	return b
}

// candidatesAfter calls fn for every record j > i sharing a usable block with
// recs[i], once each. stamp is the caller's scratch (len(recs), reused
// across calls; one goroutine each).
func (b blocks) candidatesAfter(recs []Record, i int, stamp []int32, fn func(j int)) {
	r := &recs[i]
	for _, k := range r.keys {
		ids := b[k]
		if len(ids) > maxBlock && k != r.nhsKey {
			continue
		}
		for _, j := range ids {
			if int(j) <= i || stamp[j] == int32(i)+1 {
				continue
			}
			stamp[j] = int32(i) + 1
			fn(int(j))
		}
	}
}

// maxTrainPairs bounds the candidate pairs EM reads: beyond a few million
// the estimates no longer move and training would only cost start-up time.
const maxTrainPairs = 3_000_000

// candidatePatterns counts the agreement patterns of the candidate pairs,
// comparing on every core (each worker counts into its own map).
func candidatePatterns(recs []Record) map[pattern]int {
	b := buildBlocks(recs)
	workers := procs.Cores()
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		next   atomic.Int64
		pairs  atomic.Int64
		counts = map[pattern]int{}
	)
	const chunk = 256
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stamp := make([]int32, len(recs))
			local := map[pattern]int{}
			for pairs.Load() < maxTrainPairs {
				start := int(next.Add(chunk)) - chunk
				if start >= len(recs) {
					break
				}
				n := 0
				for i := start; i < min(start+chunk, len(recs)); i++ {
					b.candidatesAfter(recs, i, stamp, func(j int) {
						p, _ := comparePair(&recs[i], &recs[j])
						local[p]++
						n++
					})
				}
				pairs.Add(int64(n))
			}
			mu.Lock()
			for p, n := range local {
				counts[p] += n
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return counts
}
