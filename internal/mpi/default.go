package mpi

// defaultModel is the model of a node with too few Patients to train on
// (fewer than minTrainPairs candidate pairs). Its m and u values are those
// EM estimated on a synthetic region of 3,000 people (seed 1, 7,600
// Patients, 54,839 candidate pairs; `go test -run TestDefaultModel` checks
// it still links a region at the target precision). Re-estimate them when
// the comparisons or the blocking keys change.
func defaultModel() *Model {
	m := &Model{Prior: 0.139}
	m.fields = [numFields]field{
		fNHS:     {m: [maxLevels]float64{0.9925, 0.0075}, u: [maxLevels]float64{1e-5, 1}},
		fGiven:   {m: [maxLevels]float64{0.94231, 0.052057, 0.0048431, 0.001}, u: [maxLevels]float64{0.21794, 0.01634, 0.041041, 0.72468}},
		fFamily:  {m: [maxLevels]float64{0.92345, 0.021724, 0.0030111, 0.051815}, u: [maxLevels]float64{0.14355, 0.013687, 0.027756, 0.81501}},
		fBirth:   {m: [maxLevels]float64{0.98743, 0.0071988, 0.0052361, 0.001}, u: [maxLevels]float64{0.01918, 0.000318, 0.013942, 0.96656}},
		fSex:     {m: [maxLevels]float64{1, 0.001}, u: [maxLevels]float64{0.59739, 0.40261}},
		fAddress: {m: [maxLevels]float64{0.9448, 0.001, 0.010828, 0.044104}, u: [maxLevels]float64{1e-5, 0.0073311, 0.18404, 0.80863}},
		fPhone:   {m: [maxLevels]float64{1, 0.001}, u: [maxLevels]float64{0.65701, 0.34299}},
		fIdent:   {m: [maxLevels]float64{0.31723, 0.31723, 0.36554}, u: [maxLevels]float64{7.6538e-5, 1e-5, 0.99992}},
	}
	m.setWeights()
	m.setThresholds()
	return m
}
