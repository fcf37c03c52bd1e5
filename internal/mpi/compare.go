package mpi

import "strings"

// The compared fields. Each has a few agreement levels, level 0 the
// strongest agreement and the last one disagreement; a field missing on
// either side has level -1 and takes no part in the score.
const (
	fNHS     = iota // equal / different
	fGiven          // exact / close (nickname, JW >= 0.92, middle name) / phonetic or JW >= 0.8 or initial / different
	fFamily         // exact / close (JW >= 0.92, another or hyphenated part) / phonetic or JW >= 0.8 / different
	fBirth          // exact / day and month swapped / one digit off / different
	fSex            // equal / different
	fAddress        // line and postcode / line or postcode / postcode sector or town / different
	fPhone          // a shared number / none shared
	fIdent          // a shared system with equal values / one character off / different
	numFields
)

// numLevels is how many agreement levels each field has.
var numLevels = [numFields]int{2, 4, 4, 4, 2, 4, 2, 3}

// fieldNames name the fields in reasons and in the model's description.
var fieldNames = [numFields]string{"nhs-number", "given", "family", "birthdate", "sex", "address", "phone", "identifier"}

// levelNames name the agreeing levels in a Match's Reason ("" is no reason).
var levelNames = [numFields][]string{
	{"nhs-number", ""},
	{"given:exact", "given:close", "given:phonetic", ""},
	{"family:exact", "family:close", "family:phonetic", ""},
	{"birthdate:exact", "birthdate:day-month-swapped", "birthdate:one-digit", ""},
	{"sex", ""},
	{"address:exact", "address:two-of-line-postcode-town", "address:one-of-line-postcode-town", ""},
	{"phone", ""},
	{"identifier", "identifier:one-character", ""},
}

// pattern is the agreement level of every field for one pair (-1: missing).
type pattern [numFields]int8

// comparePair computes the agreement pattern of two prepared records, and
// whether the names agree better with given and family swapped.
func comparePair(a, b *Record) (p pattern, swapped bool) {
	p[fNHS] = -1
	if a.NHS != "" && b.NHS != "" {
		p[fNHS] = boolLevel(a.NHS == b.NHS)
	}
	p[fGiven], p[fFamily] = -1, -1
	if len(a.Given) > 0 && len(b.Given) > 0 {
		p[fGiven] = givenLevel(a, b)
	}
	if a.Family != "" && b.Family != "" {
		p[fFamily] = familyLevel(a, b)
	}
	// Given and family entered the wrong way round: try the cross pairing
	// when the straight one is poor, and keep it only if clearly better.
	if p[fGiven] >= 2 && p[fFamily] >= 2 && a.Family != "" && b.Family != "" {
		g := nameLevel(a.Given[0], b.Family, a.givenCode, b.familyCode)
		f := nameLevel(a.Family, b.Given[0], a.familyCode, b.givenCode)
		if g+f < p[fGiven]+p[fFamily] && g <= 1 && f <= 1 {
			p[fGiven], p[fFamily], swapped = g, f, true
		}
	}
	p[fBirth] = -1
	if validDate(a.BirthDate) && validDate(b.BirthDate) {
		p[fBirth] = birthLevel(a.BirthDate, b.BirthDate)
	}
	p[fSex] = -1
	if a.Sex != "" && b.Sex != "" {
		p[fSex] = boolLevel(a.Sex == b.Sex)
	}
	p[fAddress] = addressLevel(a, b)
	p[fPhone] = -1
	if len(a.Phones) > 0 && len(b.Phones) > 0 {
		p[fPhone] = 1
		for _, x := range a.Phones {
			if contains(b.Phones, x) {
				p[fPhone] = 0
			}
		}
	}
	p[fIdent] = -1
	for _, x := range a.Identifiers {
		for _, y := range b.Identifiers {
			if x.System != y.System {
				continue
			}
			switch {
			case x.Value == y.Value:
				p[fIdent] = 0
			case oneEdit(x.Value, y.Value):
				if p[fIdent] != 0 {
					p[fIdent] = 1
				}
			case p[fIdent] == -1:
				p[fIdent] = 2
			}
		}
	}
	return p, swapped
}

// addressLevel compares the addresses as one field: the first line, the
// postcode and the town move together when a person moves, so separate
// fields would count one move three times (Fellegi-Sunter assumes the
// fields independent). The level is how many of the three agree: 0 all
// three, 1 two, 2 one (or only the postcode sector, or a postcode one
// character off), 3 none; -1 when one side has no address.
func addressLevel(a, b *Record) int8 {
	if len(a.Addresses)+len(a.Postcodes)+len(a.Cities) == 0 || len(b.Addresses)+len(b.Postcodes)+len(b.Cities) == 0 {
		return -1
	}
	line, pc, near, city := false, false, false, false
	for _, x := range a.Addresses {
		for _, y := range b.Addresses {
			if x == y || similar(x, y, 0.9) {
				line = true
			}
		}
	}
	for _, x := range a.Postcodes {
		for _, y := range b.Postcodes {
			switch {
			case x == y:
				pc = true
			case sameSector(x, y) || oneEdit(x, y):
				near = true
			}
		}
	}
	for _, x := range a.Cities {
		for _, y := range b.Cities {
			if x == y || similar(x, y, 0.92) {
				city = true
			}
		}
	}
	n := 0
	for _, ok := range []bool{line, pc, city} {
		if ok {
			n++
		}
	}
	switch {
	case n == 3:
		return 0
	case n == 2:
		return 1
	case n == 1 || near:
		return 2
	}
	return 3
}

// validDate reports whether s has the YYYY-MM-DD shape birthLevel reads (a
// Record built by hand may hold anything).
func validDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for i := 0; i < 10; i++ {
		if i != 4 && i != 7 && (s[i] < '0' || s[i] > '9') {
			return false
		}
	}
	return true
}

func boolLevel(eq bool) int8 {
	if eq {
		return 0
	}
	return 1
}

func givenLevel(a, b *Record) int8 {
	l := nameLevel(a.Given[0], b.Given[0], a.givenCode, b.givenCode)
	if l <= 1 {
		return l
	}
	// A middle name used as the first name, or one record holding both.
	for _, x := range a.Given {
		for _, y := range b.Given {
			if x == y && len(x) > 1 {
				return 1
			}
		}
	}
	// A name split by a stray space ("soph ie").
	if len(a.Given) > 1 || len(b.Given) > 1 {
		if strings.Join(a.Given, "") == strings.Join(b.Given, "") {
			return 1
		}
	}
	// An initial against the name it begins.
	x, y := a.Given[0], b.Given[0]
	if (len(x) == 1 || len(y) == 1) && x[0] == y[0] {
		return 2
	}
	return l
}

func familyLevel(a, b *Record) int8 {
	l := nameLevel(a.Family, b.Family, a.familyCode, b.familyCode)
	if l <= 1 {
		return l
	}
	// A former surname or one part of a double-barrelled one.
	if contains(b.OtherFamily, a.Family) || contains(a.OtherFamily, b.Family) {
		return 1
	}
	for _, x := range a.OtherFamily {
		if contains(b.OtherFamily, x) {
			return 1
		}
	}
	return l
}

// nameLevel compares two names: 0 equal, 1 a nickname or JW >= 0.92,
// 2 the same Soundex or JW >= 0.8, 3 different.
func nameLevel(x, y, cx, cy string) int8 {
	if x == y {
		return 0
	}
	if nickname(x, y) || similar(x, y, 0.92) {
		return 1
	}
	if (cx != "" && cx == cy) || similar(x, y, 0.8) {
		return 2
	}
	return 3
}

// birthLevel compares two YYYY-MM-DD dates: 0 equal, 1 day and month
// swapped (the US order typed into a UK form), 2 one digit wrong or two
// neighbouring digits transposed, or one day apart, 3 different.
func birthLevel(x, y string) int8 {
	if x == y {
		return 0
	}
	if x[:4] == y[:4] && x[5:7] == y[8:10] && x[8:10] == y[5:7] {
		return 1
	}
	dx := x[:4] + x[5:7] + x[8:10]
	dy := y[:4] + y[5:7] + y[8:10]
	if oneEdit(dx, dy) || dayApart(x, y) {
		return 2
	}
	return 3
}

// dayApart reports whether two dates of one month differ by one day (the
// 14th for the 15th crosses a digit boundary only sometimes: 19th/20th).
func dayApart(x, y string) bool {
	if x[:8] != y[:8] {
		return false
	}
	d := int(x[8]-'0')*10 + int(x[9]-'0') - int(y[8]-'0')*10 - int(y[9]-'0')
	return d == 1 || d == -1
}

// sameSector reports whether two UK postcodes share the outward code and
// the sector digit (GL12AB and GL12XY): neighbours, or one letter mistyped.
func sameSector(x, y string) bool {
	return len(x) >= 5 && len(x) == len(y) && x[:len(x)-2] == y[:len(y)-2]
}

// reasons lists the agreeing fields of a pattern.
func reasons(p pattern, swapped bool) []string {
	var out []string
	for f := 0; f < numFields; f++ {
		if p[f] < 0 {
			continue
		}
		if name := levelNames[f][p[f]]; name != "" {
			out = append(out, name)
		}
	}
	if swapped {
		out = append(out, "name:given-family-swapped")
	}
	return out
}

// String renders a pattern for debugging ("nhs=0 given=1 ...").
func (p pattern) String() string {
	var b strings.Builder
	for f := 0; f < numFields; f++ {
		if f > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fieldNames[f])
		b.WriteByte('=')
		if p[f] < 0 {
			b.WriteByte('-')
		} else {
			b.WriteByte(byte('0' + p[f]))
		}
	}
	return b.String()
}
