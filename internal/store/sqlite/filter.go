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
	b.w(" AND (")
	for i, g := range f.Grants {
		if i > 0 {
			b.w(" OR ")
		}
		b.w("(1")
		if g.Patients != nil {
			if len(g.Patients) == 0 {
				b.w(" AND 0")
			} else {
				b.w(" AND EXISTS (SELECT 1 FROM idx_compartment WHERE " + rowsOf("key", a) + " AND +comp_type = 'Patient' AND comp_id IN ")
				b.inList(g.Patients)
				b.w(")")
			}
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
				b.w(" AND EXISTS (SELECT 1 FROM idx_uri WHERE " + rowsOf("key", a) + " AND +param = '_source' AND (")
				for j, s := range g.Sources {
					if j > 0 {
						b.w(" OR ")
					}
					// s itself, or s + "#" + anything: substr compares
					// characters, exactly.
					b.w("value = ? OR substr(value, 1, ?) = ?", s, len([]rune(s))+1, s+"#")
				}
				b.w("))")
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
	b.w(")")
	return nil
}
