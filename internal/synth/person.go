package synth

import (
	"time"

	"github.com/sharedcare/sharedcare/internal/synth/codes"
)

// Person is one true person of the region: what the organisations record
// about them (each with its own errors) is derived from this.
type Person struct {
	Index        int
	ID           string // the person id of truth.csv
	Male         bool
	Birth        time.Time
	Age          int       // age on Ref (or at death)
	Death        time.Time // zero while alive
	Given        string
	Middle       string
	Family       string
	FormerFamily string // surname before a change (marriage), "" when none
	Addr         Address
	OldAddr      *Address // the address before a move in the last three years
	Phone        string
	Mobile       string
	NHS          string
	GP           *Org
	Pharmacy     *Org
	LTC          map[string]time.Time // long-term condition name -> onset
	Extra        []cond               // other long-term and sensitive conditions
}

// cond is a condition as it happened: code, onset, and the labels it carries.
type cond struct {
	code   codes.Code
	onset  time.Time
	labels []codes.Code
}

// Alive reports whether the person is alive on Ref.
func (p *Person) Alive() bool { return p.Death.IsZero() }

// end is when the person's history ends: death or Ref.
func (p *Person) end() time.Time {
	if p.Alive() {
		return Ref
	}
	return p.Death
}

// Has reports whether the person has the long-term condition.
func (p *Person) Has(name string) bool { _, ok := p.LTC[name]; return ok }

// newPerson draws person i's demographics and long-term conditions.
func newPerson(rng *Rand, reg *Region, seed uint64, i int) *Person {
	p := &Person{Index: i, ID: personID(i), LTC: map[string]time.Time{}}
	age, male := drawAgeSex(rng)
	p.Male, p.Age = male, age
	p.Birth = Ref.AddDate(-age-1, 0, 1+rng.IntN(365))
	p.Given = givenName(rng, !male, p.Birth.Year())
	if rng.chance(0.45) {
		p.Middle = givenName(rng, !male, p.Birth.Year()+30*rng.IntN(2))
	}
	p.Family = familyName(rng)
	if !male && age >= 22 && rng.chance(0.35) {
		// Changed surname on marriage: some records still hold the old one.
		p.FormerFamily, p.Family = p.Family, familyName(rng)
	}
	p.Addr = randomAddress(rng)
	if rng.chance(0.15) {
		old := randomAddress(rng)
		p.OldAddr = &old
	}
	if age >= 16 || rng.chance(0.3) {
		p.Mobile = mobile(rng)
	}
	if rng.chance(0.5) || age >= 70 {
		p.Phone = landline(rng)
	}
	p.NHS = nhsFor(seed, i)
	p.GP = pick(rng, reg.Of(GPPractice))
	p.Pharmacy = pick(rng, reg.Of(Pharmacy))

	band := BandOf(age)
	for _, c := range LongTermConditions {
		if rng.Float64()*100 < c.Rates[band].P {
			p.LTC[c.Name] = onsetFor(rng, p, c.Name)
		}
	}
	// Death within the last two years at the age-specific rate (the person
	// is then that age at death). Drawn independently of conditions, so
	// prevalence among the living stays as drawn.
	if rng.chance(2 * mortality(age)) {
		p.Death = rng.daytime(rng.between(Ref.AddDate(-2, 0, 0), Ref))
		if p.Death.Before(p.Birth) {
			p.Death = time.Time{}
		}
	}
	// Other conditions that drive care and sensitivity labels.
	adult := age >= 18
	if age >= 40 && rng.chance(map[bool]float64{true: 0.45, false: 0.12}[age >= 65]) {
		p.Extra = append(p.Extra, cond{code: codes.Hypertension, onset: onsetFor(rng, p, "")})
	}
	if adult && rng.chance(0.009) {
		c := codes.Schizophrenia
		if rng.chance(0.4) {
			c = codes.BipolarDisorder
		}
		p.Extra = append(p.Extra, cond{code: c, onset: onsetFor(rng, p, ""), labels: []codes.Code{codes.LabelPSY, codes.LabelRestricted}})
	}
	if adult && rng.chance(0.06) {
		p.Extra = append(p.Extra, cond{code: codes.AnxietyDisorder, onset: onsetFor(rng, p, ""), labels: []codes.Code{codes.LabelPSY}})
	}
	if adult && rng.chance(0.012) {
		p.Extra = append(p.Extra, cond{code: codes.AlcoholDependence, onset: onsetFor(rng, p, ""), labels: []codes.Code{codes.LabelETH, codes.LabelRestricted}})
	}
	if age >= 16 && age < 30 && rng.chance(0.03) {
		p.Extra = append(p.Extra, cond{code: codes.ChlamydialInfection, onset: rng.between(Ref.AddDate(-3, 0, 0), p.end()), labels: []codes.Code{codes.LabelSTD, codes.LabelSEX, codes.LabelRestricted}})
	}
	if adult && rng.chance(0.0016) {
		p.Extra = append(p.Extra, cond{code: codes.HIVInfection, onset: onsetFor(rng, p, ""), labels: []codes.Code{codes.LabelHIV, codes.LabelRestricted}})
	}
	return p
}

// onsetFor draws a plausible onset date: learning disability from birth,
// other conditions after a minimum age, most within the last decades.
func onsetFor(rng *Rand, p *Person, name string) time.Time {
	minAge := 18
	switch name {
	case "learning-disability":
		return p.Birth.AddDate(0, 6+rng.IntN(48), 0)
	case "asthma", "diabetes":
		minAge = 3
	case "dementia", "heart-failure", "atrial-fibrillation", "copd":
		minAge = 40
	}
	from := p.Birth.AddDate(minAge, 0, 0)
	if lo := p.end().AddDate(-25, 0, 0); from.Before(lo) {
		from = lo
	}
	if from.After(p.end()) {
		from = minTime(p.Birth.AddDate(1, 0, 0), p.end())
	}
	return rng.between(from, p.end())
}

func personID(i int) string {
	const digits = "0123456789"
	b := []byte("P0000000")
	for k := len(b) - 1; k > 0 && i > 0; k-- {
		b[k] = digits[i%10]
		i /= 10
	}
	return string(b)
}
