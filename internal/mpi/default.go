package mpi

// defaultModel is used where there is too little data to train on.
// TODO: replace with values measured on the synthetic region.
func defaultModel() *Model {
	m := &Model{Prior: 0.05}
	for f := 0; f < numFields; f++ {
		n := numLevels[f]
		for l := 0; l < n; l++ {
			m.fields[f].m[l] = 0.1 / float64(n-1)
			m.fields[f].u[l] = 0.9 / float64(n-1)
		}
		m.fields[f].m[0], m.fields[f].u[0] = 0.9, 0.1
	}
	m.setWeights()
	m.setThresholds()
	return m
}
