package sqlite

// filterTest writes the access filter over resources row a: visible when
// it passes at least one grant (store.Filter).
func (b *sqlBuilder) filterTest(a string) error {
	f := b.filter
	if f == nil {
		return nil
	}
	if len(f.Grants) == 0 {
		b.w(" AND 0")
		return nil
	}
	// See store.Filter.Shape: the people every grant requires are tested
	// once, and when every grant requires a source, the source row is found
	// once with each grant's test made on it.
	common, sourced := f.Shape()
	if common != nil {
		b.patientsTest(a, common)
	}
	if sourced {
		b.w(" AND EXISTS (SELECT 1 FROM idx_uri WHERE " + rowsOf("key", a) + " AND +param = '_source' AND (")
	} else {
		b.w(" AND (")
	}
	for i, g := range f.Grants {
		if i > 0 {
			b.w(" OR ")
		}
		b.w("(1")
		if g.Patients != nil && common == nil {
			b.patientsTest(a, g.Patients)
		}
		if g.NoPatient {
			b.w(" AND NOT EXISTS (SELECT 1 FROM idx_compartment WHERE " + rowsOf("key", a) + " AND +comp_type = 'Patient')")
		}
		if g.Types != nil {
			if len(g.Types) == 0 {
				b.w(" AND 0")
			} else {
				b.w(" AND " + a + ".type IN ")
				b.inList(g.Types)
			}
		}
		if g.Sources != nil {
			if len(g.Sources) == 0 {
				b.w(" AND 0")
			} else {
				if !sourced {
					b.w(" AND EXISTS (SELECT 1 FROM idx_uri WHERE " + rowsOf("key", a) + " AND +param = '_source'")
				}
				b.w(" AND (")
				for j, s := range g.Sources {
					if j > 0 {
						b.w(" OR ")
					}
					// s itself, or s + "#" + anything: substr compares
					// characters, exactly.
					b.w("value = ? OR substr(value, 1, ?) = ?", s, len([]rune(s))+1, s+"#")
				}
				b.w(")")
				if !sourced {
					b.w(")")
				}
			}
		}
		if len(g.DenyLabels) > 0 {
			b.w(" AND NOT EXISTS (SELECT 1 FROM idx_token WHERE " + rowsOf("key", a) + " AND +param = '_security' AND (")
			for j, l := range g.DenyLabels {
				if j > 0 {
					b.w(" OR ")
				}
				if l.System == "" {
					b.w("code = ?", l.Code)
				} else {
					b.w("(system = ? AND code = ?)", l.System, l.Code)
				}
			}
			b.w("))")
		}
		b.w(")")
	}
	if sourced {
		b.w("))")
	} else {
		b.w(")")
	}
	return nil
}

// patientsTest requires a Patient compartment row of resources row a for
// one of people (none: nothing passes).
func (b *sqlBuilder) patientsTest(a string, people []string) {
	if len(people) == 0 {
		b.w(" AND 0")
		return
	}
	b.w(" AND EXISTS (SELECT 1 FROM idx_compartment WHERE " + rowsOf("key", a) + " AND +comp_type = 'Patient' AND comp_id IN ")
	b.inList(people)
	b.w(")")
}
