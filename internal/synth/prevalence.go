package synth

import "github.com/sharedcare/sharedcare/internal/synth/codes"

// AgeBand is a coarse age band (whole years on Ref, inclusive).
type AgeBand struct{ Lo, Hi int }

// Bands are the age bands prevalence is given for.
var Bands = []AgeBand{{0, 17}, {18, 39}, {40, 64}, {65, 79}, {80, 120}}

// BandOf returns the index in Bands of an age.
func BandOf(age int) int {
	for i, b := range Bands {
		if age <= b.Hi {
			return i
		}
	}
	return len(Bands) - 1
}

// Rate is the recorded prevalence of a condition in one age band, in
// percent: P is what the generator draws with; [Lo, Hi] is the range the
// sources support, which the prevalence test holds the output to.
type Rate struct{ P, Lo, Hi float64 }

// Condition is a long-term condition with its prevalence by age band.
type Condition struct {
	Name  string
	Code  codes.Code
	Rates [5]Rate // one per Bands entry
}

// LongTermConditions are the QOF-register conditions of issue 3 with their
// recorded prevalence by age band (docs/DATA.md gives the sources):
// overall levels are NHS England's QOF 2023-24 register prevalence
// (diabetes 7.7% of 17+, asthma 6.5% of 6+, COPD 1.9%, heart failure 1.1%,
// AF 2.2%, dementia 0.7%, cancer 3.6%, depression 13.3% of 18+, learning
// disability 0.6%); the age gradients are from the National Diabetes Audit
// (diabetes), the Health Survey for England (asthma, COPD), NICE CKS
// prevalence summaries (heart failure, AF), the Alzheimer's Society's
// Dementia UK report scaled by the 65% diagnosis rate (dementia), Macmillan's
// prevalence estimates (people living after a cancer diagnosis) and the
// QOF depression register's age profile.
var LongTermConditions = []Condition{
	{"diabetes", codes.Type2Diabetes, [5]Rate{{0.2, 0.05, 0.5}, {1.5, 0.8, 2.5}, {7, 5, 9.5}, {16, 12, 21}, {18, 13, 24}}},
	{"asthma", codes.Asthma, [5]Rate{{8, 5.5, 11}, {7, 5, 9.5}, {6.5, 4.5, 9}, {6.5, 4.5, 9}, {5.5, 3, 9}}},
	{"copd", codes.COPD, [5]Rate{{0, 0, 0}, {0.1, 0, 0.5}, {1.8, 1, 3}, {5.5, 3.5, 8}, {7, 4.5, 10}}},
	{"heart-failure", codes.HeartFailure, [5]Rate{{0, 0, 0}, {0.05, 0, 0.3}, {0.6, 0.2, 1.2}, {2.8, 1.6, 4.5}, {8, 5.5, 12}}},
	{"atrial-fibrillation", codes.AtrialFibrillation, [5]Rate{{0, 0, 0}, {0.1, 0, 0.4}, {1, 0.5, 1.8}, {6, 4, 8.5}, {14, 10, 18}}},
	{"dementia", codes.Dementia, [5]Rate{{0, 0, 0}, {0, 0, 0.1}, {0.1, 0, 0.3}, {1.8, 0.9, 3}, {11, 7.5, 15}}},
	{"cancer", codes.BreastCancer, [5]Rate{{0.05, 0, 0.2}, {0.5, 0.2, 1}, {3, 2, 4.5}, {9, 6, 12}, {13, 9, 17}}},
	{"depression", codes.Depression, [5]Rate{{0.5, 0.1, 1.5}, {14, 11, 18}, {15, 12, 19}, {11, 8, 14}, {10, 6.5, 13.5}}},
	{"learning-disability", codes.LearningDisability, [5]Rate{{0.5, 0.2, 0.9}, {0.6, 0.3, 1}, {0.5, 0.2, 0.9}, {0.35, 0, 0.7}, {0.2, 0, 0.6}}},
}

// mortality is the annual probability of death by age (ONS, deaths
// registered in England and Wales 2022, rounded age-specific rates).
func mortality(age int) float64 {
	switch {
	case age < 1:
		return 0.004
	case age < 45:
		return 0.001
	case age < 65:
		return 0.004
	case age < 75:
		return 0.015
	case age < 85:
		return 0.045
	}
	return 0.14
}

// Annual rates of contact per person, by band (see docs/DATA.md):
// A&E attendances (NHS England A&E attendances 2023-24, about 26 million a
// year for 57 million people, higher for under-fives and over-80s),
// emergency admissions (Hospital Episode Statistics: about 6.4 million a
// year, rising steeply with age), elective admissions, ambulance incidents
// (NHS England Ambulance Quality Indicators: about 9 million incidents a
// year) and GP consultations (about 5 a person a year, more with age).
var (
	aeRate        = [5]float64{0.35, 0.4, 0.3, 0.35, 0.7}
	emergAdmRate  = [5]float64{0.04, 0.05, 0.07, 0.15, 0.35}
	electAdmRate  = [5]float64{0.02, 0.04, 0.08, 0.15, 0.12}
	ambulanceRate = [5]float64{0.06, 0.1, 0.1, 0.2, 0.6}
	gpRate        = [5]float64{2.5, 3, 3.5, 5, 7}
)
