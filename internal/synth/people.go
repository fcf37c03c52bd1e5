package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/nhsnumber"
)

// Rand is the pseudo-random generator of one person (or of the region).
type Rand struct{ *rand.Rand }

// mix is SplitMix64's finaliser: it spreads (seed, index) pairs so that
// neighbouring people get unrelated streams.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// newRand returns the generator for stream i of seed: PCG is specified
// bit for bit by math/rand/v2, so the same (seed, i) gives the same stream
// on every platform.
func newRand(seed, i uint64) *Rand {
	return &Rand{rand.New(rand.NewPCG(mix(seed^0x5eed), mix(i^mix(seed))))}
}

func (r *Rand) chance(p float64) bool { return r.Float64() < p }

// poisson draws from a Poisson distribution (Knuth's method: the means used
// here are small).
func (r *Rand) poisson(mean float64) int {
	if mean <= 0 {
		return 0
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func pick[T any](r *Rand, list []T) T { return list[r.IntN(len(list))] }

// between returns a time uniformly in [a, b) (a when b <= a), to the minute.
func (r *Rand) between(a, b time.Time) time.Time {
	d := b.Sub(a)
	if d <= time.Minute {
		return a
	}
	return a.Add(time.Duration(r.Int64N(int64(d/time.Minute))) * time.Minute)
}

// daytime moves t to a time of day in working hours.
func (r *Rand) daytime(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 8+r.IntN(10), r.IntN(12)*5, 0, 0, time.UTC)
}

// Address is a UK postal address.
type Address struct {
	Line     string
	Town     string
	Postcode string
}

func (a Address) fhir(use string) fhir.Object {
	o := fhir.Object{"line": []any{a.Line}, "city": a.Town, "postalCode": a.Postcode, "country": "GB"}
	if use != "" {
		o["use"] = use
	}
	return o
}

// towns of the fictional region with the postcode districts they use. The
// districts are real-format outward codes (area letters and district
// number); the inward code is random and valid in format: a digit and two
// letters, never C, I, K, M, O or V (Royal Mail PAF rules).
var towns = []struct {
	name      string
	districts []string
}{
	{"Severnbridge", []string{"GL1", "GL2", "GL3", "GL4"}},
	{"Kingsmead", []string{"GL5", "GL6"}},
	{"Abbotsford Vale", []string{"GL10", "GL11"}},
	{"Stonebury", []string{"GL12", "GL13"}},
	{"Wickham Cross", []string{"GL15", "GL16"}},
	{"Marlow Down", []string{"GL20", "GL51", "GL52"}},
}

const inwardLetters = "ABDEFGHJLNPQRSTUWXYZ"

var streets = []string{"High Street", "Church Road", "Station Road", "Mill Lane", "Victoria Road", "Park Avenue",
	"Green Lane", "Manor Road", "Queens Road", "School Lane", "The Crescent", "Orchard Close", "Kings Road",
	"Meadow Way", "Chapel Street", "Bridge Street", "Springfield Road", "Windsor Drive", "York Road", "Elm Grove",
	"Westgate Street", "Alma Road", "Beech Close", "Hawthorn Way", "Severn Street", "Priory Lane"}

func randomAddress(r *Rand) Address {
	t := pick(r, towns)
	pc := fmt.Sprintf("%s %d%c%c", pick(r, t.districts), r.IntN(10), inwardLetters[r.IntN(len(inwardLetters))], inwardLetters[r.IntN(len(inwardLetters))])
	line := fmt.Sprintf("%d %s", 1+r.IntN(180), pick(r, streets))
	if r.chance(0.12) {
		line = fmt.Sprintf("Flat %d, %s", 1+r.IntN(24), line)
	}
	return Address{Line: line, Town: t.name, Postcode: pc}
}

// landline and mobile give numbers from Ofcom's ranges reserved for drama
// (0117 496 0000–0999 and 07700 900000–900999): they look real and are
// never allocated to anyone.
func landline(r *Rand) string { return fmt.Sprintf("0117 496 0%03d", r.IntN(1000)) }
func mobile(r *Rand) string   { return fmt.Sprintf("07700 900%03d", r.IntN(1000)) }

// Names: common given names of England and Wales (ONS baby names, chosen
// for the decade of birth coarsely: older and younger lists) and common
// surnames of Great Britain, including the larger minority-ethnic groups.
var (
	maleOld     = []string{"John", "David", "Michael", "Peter", "Robert", "William", "James", "Richard", "Brian", "Anthony", "Christopher", "Stephen", "Paul", "Kenneth", "Ronald", "Alan", "Geoffrey", "Keith", "Trevor", "Colin", "Derek", "Barry", "Roger", "Graham"}
	maleYoung   = []string{"Oliver", "Jack", "Harry", "George", "Noah", "Charlie", "Jacob", "Thomas", "Oscar", "Leo", "Muhammad", "Daniel", "Joshua", "Samuel", "Ethan", "Liam", "Adam", "Ryan", "Luke", "Matthew", "Jamie", "Ben", "Arjun", "Mohammed"}
	femaleOld   = []string{"Margaret", "Patricia", "Susan", "Elizabeth", "Mary", "Jean", "Barbara", "Christine", "Linda", "Sandra", "Janet", "Carol", "Pauline", "Joan", "Sheila", "Doreen", "Brenda", "Valerie", "Maureen", "Jennifer", "Ann", "Helen", "Gillian", "Judith"}
	femaleYoung = []string{"Olivia", "Amelia", "Isla", "Ava", "Emily", "Sophie", "Grace", "Lily", "Freya", "Mia", "Ella", "Charlotte", "Jessica", "Hannah", "Chloe", "Lucy", "Sarah", "Emma", "Laura", "Rebecca", "Aisha", "Priya", "Zara", "Maja"}
	surnames    = []string{"Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas", "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes", "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood", "Turner", "Martin", "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker", "Harrison", "Morgan", "Allen", "James", "Scott", "Phillips", "Watson", "Davis", "Parker", "Price", "Bennett", "Young", "Griffiths", "Mitchell", "Kelly", "Cook", "Carter", "Richardson", "Bailey", "Collins", "Bell", "Shaw", "Murphy", "Miller", "Cox", "Richards", "Khan", "Marshall", "Anderson", "Simpson", "Ellis", "Adams", "Singh", "Begum", "Wilkinson", "Foster", "Chapman", "Powell", "Webb", "Rogers", "Gray", "Mason", "Ali", "Hunt", "Hussain", "Campbell", "Matthews", "Owen", "Palmer", "Holmes", "Mills", "Barnes", "Knight", "Lloyd", "Butler", "Russell", "Barker", "Fisher", "Stevens", "Jenkins", "Murray", "Dixon", "Harvey", "Kowalski", "Nowak", "Okafor", "Mensah", "Ahmed", "Chen", "O'Brien", "Fletcher-Jones"}
	nicknames   = map[string]string{"William": "Bill", "Robert": "Bob", "Margaret": "Peggy", "Elizabeth": "Liz", "Michael": "Mike", "Christopher": "Chris", "Anthony": "Tony", "Richard": "Dick", "James": "Jim", "Susan": "Sue", "Patricia": "Pat", "Jennifer": "Jenny", "Kenneth": "Ken", "Stephen": "Steve", "Thomas": "Tom", "Daniel": "Dan", "Samuel": "Sam", "Matthew": "Matt", "Rebecca": "Becky", "Charlotte": "Lottie"}
)

func givenName(r *Rand, female bool, birthYear int) string {
	young := birthYear >= 1975
	switch {
	case female && young:
		return pick(r, femaleYoung)
	case female:
		return pick(r, femaleOld)
	case young:
		return pick(r, maleYoung)
	}
	return pick(r, maleOld)
}

func familyName(r *Rand) string { return pick(r, surnames) }

// The NHS number table: every valid number in the test range
// 999 000 0000 – 999 999 9999 (about 909,000 of the million nine-digit
// prefixes have a check digit that is not 10). Person i gets entry
// (i·step + offset) mod len, a permutation, so numbers are unique without
// any state shared between people.
var (
	nhsOnce  sync.Once
	nhsTable []int32 // the nine-digit prefixes minus 999,000,000
)

func validNHSPrefixes() []int32 {
	nhsOnce.Do(func() {
		nhsTable = make([]int32, 0, 910000)
		for p := 0; p < 1000000; p++ {
			// The same Modulus 11 rule as nhsnumber.CheckDigit, on integers:
			// building the table with strings cost a third of a second.
			sum, x := 0, 999000000+p
			for w := 2; w <= 10; w++ {
				sum += (x % 10) * w
				x /= 10
			}
			d := 11 - sum%11
			if d == 11 {
				d = 0
			}
			if d == 10 || p == 999999 { // 10 is never issued; 999 999 999 9 is one digit repeated
				continue
			}
			nhsTable = append(nhsTable, int32(p))
		}
	})
	return nhsTable
}

// MaxPeople is the most people a region can have: one test-range NHS number each.
func MaxPeople() int { return len(validNHSPrefixes()) }

func nhsAt(k int) string {
	t := validNHSPrefixes()
	s := strconv.Itoa(999000000 + int(t[k%len(t)]))
	d, _ := nhsnumber.CheckDigit(s)
	return s + strconv.Itoa(d)
}

// nhsFor is person i's NHS number.
func nhsFor(seed uint64, i int) string {
	n := uint64(len(validNHSPrefixes()))
	// 1,000,003 is prime and larger than n, so it is coprime with n and the
	// map i -> (i*step + offset) mod n is a bijection.
	const step = 1000003
	return nhsAt(int((uint64(i)*step + mix(seed)%n) % n))
}

// ageBands is the age structure of England and Wales, ONS mid-2022
// population estimates, five-year bands as a percentage of the population
// (rounded), and the share of each band that is male.
var ageBands = []struct {
	lo, hi int
	pct    float64
	male   float64
}{
	{0, 4, 5.4, 0.512}, {5, 9, 5.9, 0.512}, {10, 14, 6.1, 0.512}, {15, 19, 5.8, 0.512},
	{20, 24, 6.1, 0.505}, {25, 29, 6.5, 0.497}, {30, 34, 6.8, 0.495}, {35, 39, 6.6, 0.495},
	{40, 44, 6.2, 0.495}, {45, 49, 6.0, 0.493}, {50, 54, 6.7, 0.492}, {55, 59, 6.7, 0.492},
	{60, 64, 5.9, 0.488}, {65, 69, 5.0, 0.483}, {70, 74, 4.8, 0.475}, {75, 79, 4.0, 0.463},
	{80, 84, 2.6, 0.440}, {85, 89, 1.6, 0.400}, {90, 99, 0.9, 0.320},
}

// Ref is the date the region is "as at": the end of the QOF year 2025-26.
// Everything happens before it; ages are ages on it.
var Ref = time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)

// drawAgeSex draws an age (whole years on Ref) and sex from ageBands.
func drawAgeSex(r *Rand) (age int, male bool) {
	total := 0.0
	for _, b := range ageBands {
		total += b.pct
	}
	x := r.Float64() * total
	for _, b := range ageBands {
		if x < b.pct || b.lo == 90 {
			age = b.lo + r.IntN(b.hi-b.lo+1)
			if b.lo == 90 {
				// 90+ thins out fast: most are 90-94.
				age = 90 + int(r.ExpFloat64()*3)
				if age > 104 {
					age = 104
				}
			}
			return age, r.Float64() < b.male
		}
		x -= b.pct
	}
	panic("unreachable")
}

func ageOn(birth, t time.Time) int {
	a := t.Year() - birth.Year()
	if t.YearDay() < birth.YearDay() {
		a--
	}
	return a
}

func date(t time.Time) string     { return t.Format("2006-01-02") }
func dateTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
