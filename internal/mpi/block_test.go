package mpi

import "testing"

// Every kind of error the comparisons tolerate must leave the two records
// sharing at least one blocking key, or the pair is never compared.
func TestBlockingKeepsEachErrorComparable(t *testing.T) {
	base := func() Record {
		return Record{Given: []string{"margaret"}, Family: "hughes", BirthDate: "1948-07-02", Sex: "female",
			Postcodes: []string{"GL12AB"}, Addresses: []string{"12 mill lane"}, Phones: []string{"01174960123"}}
	}
	tests := []struct {
		name   string
		change func(r *Record) // what the second record got wrong
	}{
		{"a nickname, a new address and no phone", func(r *Record) {
			r.Given, r.Postcodes, r.Addresses, r.Phones = []string{"peggy"}, []string{"GL203QR"}, []string{"3 church street"}, nil
		}},
		{"a changed surname and a new address", func(r *Record) {
			r.Family, r.Postcodes, r.Addresses, r.Phones = "okafor", []string{"GL203QR"}, []string{"3 church street"}, nil
		}},
		{"given and family swapped, new address", func(r *Record) {
			r.Given, r.Family, r.Postcodes, r.Phones = []string{"hughes"}, "margaret", []string{"GL203QR"}, nil
		}},
		{"a wrong birth date and a misspelt given name", func(r *Record) {
			r.BirthDate, r.Given, r.Phones = "1984-07-02", []string{"margret"}, nil
		}},
		{"a wrong birth date, new address, same names", func(r *Record) {
			r.BirthDate, r.Postcodes, r.Addresses, r.Phones = "1949-01-12", []string{"GL203QR"}, nil, nil
		}},
		{"only the NHS number in common", func(r *Record) {
			*r = Record{Given: []string{"x"}, Family: "y", BirthDate: "2001-01-01", NHS: "9990000018"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := base(), base()
			a.NHS = "9990000018"
			tt.change(&b)
			a.prepare()
			b.prepare()
			for _, k := range a.keys {
				for _, l := range b.keys {
					if k == l {
						return
					}
				}
			}
			t.Errorf("no blocking key in common:\n%+v\n%+v", a, b)
		})
	}
}

// A block larger than maxBlock is not searched, except the NHS number's.
func TestHugeBlocksAreSkippedButNotTheNHSNumber(t *testing.T) {
	recs := make([]Record, maxBlock+10)
	for i := range recs {
		recs[i] = Record{Ref: string(rune('a' + i%26)), Given: []string{"john"}, Family: "smith", NHS: "9990000018"}
		recs[i].prepare()
	}
	b := buildBlocks(recs)
	stamp := make([]int32, len(recs))
	n := 0
	b.candidatesAfter(recs, 0, stamp, func(int) { n++ })
	if n != len(recs)-1 {
		t.Errorf("%d candidates through the NHS number block, want %d", n, len(recs)-1)
	}
	for i := range recs {
		recs[i].NHS = ""
		recs[i].prepare()
	}
	b = buildBlocks(recs)
	stamp = make([]int32, len(recs))
	n = 0
	b.candidatesAfter(recs, 0, stamp, func(int) { n++ })
	if n != 0 {
		t.Errorf("%d candidates through a block of %d common names, want 0 (skipped)", n, len(recs))
	}
}
