package mpi

import (
	"math"
	"testing"
)

func TestJaroWinkler(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want float64
	}{
		// Winkler's published examples.
		{"a transposition keeps the score high", "martha", "marhta", 0.961},
		{"a different middle letter costs more", "dwayne", "duane", 0.840},
		{"an extra letter at the end", "dixon", "dicksonx", 0.813},
		{"equal strings score 1", "smith", "smith", 1},
		{"nothing in common scores 0", "abc", "xyz", 0},
		{"an empty string scores 0", "", "smith", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jaroWinkler(tt.a, tt.b); math.Abs(got-tt.want) > 0.001 {
				t.Errorf("jaroWinkler(%q, %q) = %.3f, want %.3f", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestSoundex(t *testing.T) {
	tests := []struct{ in, want string }{
		{"robert", "R163"}, {"rupert", "R163"}, {"ashcraft", "A261"}, {"tymczak", "T522"},
		{"pfister", "P236"}, {"smith", "S530"}, {"smyth", "S530"}, {"lee", "L000"}, {"", ""},
	}
	for _, tt := range tests {
		if got := soundex(tt.in); got != tt.want {
			t.Errorf("soundex(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFieldLevels(t *testing.T) {
	rec := func(given, family, birth string) *Record {
		r := &Record{Given: []string{given}, Family: family, BirthDate: birth}
		r.prepare()
		return r
	}
	tests := []struct {
		name  string
		a, b  *Record
		field int
		want  int8
	}{
		{"the same given name agrees exactly", rec("william", "jones", ""), rec("william", "jones", ""), fGiven, 0},
		{"a nickname is a close given name", rec("william", "jones", ""), rec("bill", "jones", ""), fGiven, 1},
		{"a one-letter slip is a close given name", rec("jonathan", "jones", ""), rec("jonathon", "jones", ""), fGiven, 1},
		{"an initial is a weak agreement", rec("j", "jones", ""), rec("john", "jones", ""), fGiven, 2},
		{"different given names disagree", rec("john", "jones", ""), rec("mary", "jones", ""), fGiven, 3},
		{"a spelling that sounds the same is phonetic", rec("ann", "smith", ""), rec("ann", "smyth", ""), fFamily, 2},
		{"different family names disagree", rec("ann", "smith", ""), rec("ann", "patel", ""), fFamily, 3},
		{"equal birth dates agree", rec("a", "b", "1950-03-04"), rec("a", "b", "1950-03-04"), fBirth, 0},
		{"day and month swapped", rec("a", "b", "1950-03-04"), rec("a", "b", "1950-04-03"), fBirth, 1},
		{"one digit of the year off", rec("a", "b", "1950-03-04"), rec("a", "b", "1951-03-04"), fBirth, 2},
		{"one day apart across a tens digit", rec("a", "b", "1950-03-19"), rec("a", "b", "1950-03-20"), fBirth, 2},
		{"different birth dates disagree", rec("a", "b", "1950-03-04"), rec("a", "b", "1962-11-28"), fBirth, 3},
		{"a missing birth date takes no part", rec("a", "b", ""), rec("a", "b", "1962-11-28"), fBirth, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := comparePair(tt.a, tt.b)
			if p[tt.field] != tt.want {
				t.Errorf("%s level = %d, want %d (%v)", fieldNames[tt.field], p[tt.field], tt.want, p)
			}
		})
	}
}

func TestNamesSwappedAndChanged(t *testing.T) {
	a := &Record{Given: []string{"sarah"}, Family: "okafor"}
	b := &Record{Given: []string{"okafor"}, Family: "sarah"}
	a.prepare()
	b.prepare()
	p, swapped := comparePair(a, b)
	if !swapped || p[fGiven] != 0 || p[fFamily] != 0 {
		t.Errorf("given and family swapped: pattern %v swapped %v, want both exact and swapped", p, swapped)
	}
	c := &Record{Given: []string{"sarah"}, Family: "okafor-jones", OtherFamily: []string{"okafor", "jones"}}
	d := &Record{Given: []string{"sarah"}, Family: "jones"}
	c.prepare()
	d.prepare()
	if p, _ := comparePair(c, d); p[fFamily] != 1 {
		t.Errorf("one part of a double-barrelled surname: family level %d, want 1", p[fFamily])
	}
	e := &Record{Given: []string{"sarah"}, Family: "jones", OtherFamily: []string{"smith"}} // maiden name recorded as an old name
	f := &Record{Given: []string{"sarah"}, Family: "smith"}
	e.prepare()
	f.prepare()
	if p, _ := comparePair(e, f); p[fFamily] != 1 {
		t.Errorf("a former surname: family level %d, want 1", p[fFamily])
	}
}

func TestOneEdit(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"1234567", "1234568", true}, {"1234567", "1234576", true}, {"1234567", "1234567", false},
		{"1234567", "1243576", false}, {"1234567", "123456", false},
	}
	for _, tt := range tests {
		if got := oneEdit(tt.a, tt.b); got != tt.want {
			t.Errorf("oneEdit(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// similar must agree with jaroWinkler exactly: its bound only skips work.
func TestSimilarAgreesWithJaroWinkler(t *testing.T) {
	words := []string{"martha", "marhta", "dwayne", "duane", "dixon", "dicksonx", "12 high street", "12 high st", "134 queens road",
		"smith", "smyth", "jonathan", "jonathon", "a", "", "abotsford vale", "abbotsford vale", "catherine", "kathryn"}
	for _, a := range words {
		for _, b := range words {
			for _, th := range []float64{0.8, 0.9, 0.92} {
				if got, want := similar(a, b, th), a != "" && b != "" && jaroWinkler(a, b) >= th; got != want {
					t.Errorf("similar(%q, %q, %v) = %v, jaroWinkler %.3f", a, b, th, got, jaroWinkler(a, b))
				}
			}
		}
	}
}
