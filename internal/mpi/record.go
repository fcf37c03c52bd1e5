package mpi

import (
	"strings"
	"unicode"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/nhsnumber"
)

// verificationExt is the UK Core extension on the NHS number identifier
// holding its verification status; code 01 is "Number present and
// verified" (traced against PDS), the only status the deterministic rule
// trusts.
const verificationExt = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"

func fromPatient(ref string, p fhir.Object) Record {
	r := Record{Ref: ref}
	r.readNames(p)
	if s, ok := p["birthDate"].(string); ok && validDate(s) {
		r.BirthDate = s
	}
	r.Sex, _ = p["gender"].(string)
	if r.Sex == "unknown" {
		r.Sex = ""
	}
	if b, ok := p["deceasedBoolean"].(bool); ok && b {
		r.Deceased = true
	}
	if _, ok := p["deceasedDateTime"].(string); ok {
		r.Deceased = true
	}
	for _, a := range objects(p["address"]) {
		if pc, ok := a["postalCode"].(string); ok {
			if pc = normPostcode(pc); pc != "" && !contains(r.Postcodes, pc) {
				r.Postcodes = append(r.Postcodes, pc)
			}
		}
		if lines, ok := a["line"].([]any); ok && len(lines) > 0 {
			if l, ok := lines[0].(string); ok {
				if l = normText(l); l != "" && !contains(r.Addresses, l) {
					r.Addresses = append(r.Addresses, l)
				}
			}
		}
		if c, ok := a["city"].(string); ok {
			if c = normText(c); c != "" && !contains(r.Cities, c) {
				r.Cities = append(r.Cities, c)
			}
		}
	}
	for _, t := range objects(p["telecom"]) {
		if sys, _ := t["system"].(string); sys != "phone" && sys != "sms" {
			continue
		}
		if v, ok := t["value"].(string); ok {
			if v = normPhone(v); v != "" && !contains(r.Phones, v) {
				r.Phones = append(r.Phones, v)
			}
		}
	}
	for _, id := range objects(p["identifier"]) {
		sys, _ := id["system"].(string)
		val, _ := id["value"].(string)
		if val == "" {
			continue
		}
		if sys == nhsnumber.System {
			n, ok := nhsnumber.Normalize(val)
			if !ok || r.NHS != "" {
				continue // an invalid number identifies nobody; a second one is ignored
			}
			r.NHS, r.NHSVerified = n, verified(id)
			continue
		}
		if sys == "" {
			continue // a value without a system cannot be compared with anything
		}
		r.Identifiers = append(r.Identifiers, Identifier{System: sys, Value: strings.TrimSpace(val)})
	}
	r.prepare()
	return r
}

// readNames takes the official name (else the usual, else the first
// current one) as Given/Family and every other family name as OtherFamily.
func (r *Record) readNames(p fhir.Object) {
	names := objects(p["name"])
	best, bestRank := -1, 99
	for i, n := range names {
		rank := 3
		switch use, _ := n["use"].(string); use {
		case "official":
			rank = 0
		case "usual":
			rank = 1
		case "", "temp":
			rank = 2
		case "old", "maiden", "nickname", "anonymous":
			rank = 4
		}
		if rank < bestRank {
			best, bestRank = i, rank
		}
	}
	for i, n := range names {
		fam, _ := n["family"].(string)
		fam = normText(fam)
		if i == best {
			for _, g := range anys(n["given"]) {
				if s, ok := g.(string); ok {
					for _, part := range strings.Fields(normText(s)) {
						r.Given = append(r.Given, part)
					}
				}
			}
			r.Family = strings.ReplaceAll(fam, " ", "")
		} else if fam != "" {
			r.OtherFamily = append(r.OtherFamily, strings.ReplaceAll(fam, " ", ""))
		}
		// A double-barrelled or two-word surname: each part may be all
		// another organisation recorded.
		if parts := strings.Fields(fam); len(parts) > 1 {
			r.OtherFamily = append(r.OtherFamily, parts...)
		}
	}
}

// verified reports whether an NHS number identifier carries verification
// status 01.
func verified(id fhir.Object) bool {
	for _, e := range objects(id["extension"]) {
		if u, _ := e["url"].(string); u != verificationExt {
			continue
		}
		cc, _ := e["valueCodeableConcept"].(fhir.Object)
		for _, c := range objects(cc["coding"]) {
			if code, _ := c["code"].(string); code == "01" {
				return true
			}
		}
	}
	return false
}

func objects(v any) []fhir.Object {
	arr, _ := v.([]any)
	out := make([]fhir.Object, 0, len(arr))
	for _, x := range arr {
		if o, ok := x.(fhir.Object); ok {
			out = append(out, o)
		} else if o, ok := x.(map[string]any); ok {
			out = append(out, fhir.Object(o))
		}
	}
	return out
}

func anys(v any) []any { a, _ := v.([]any); return a }

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// normText lower-cases, folds the common accented Latin letters to ASCII,
// drops apostrophes and full stops (O'Brien, St. Mary) and turns any other
// non-alphanumeric run into one space.
func normText(s string) string {
	var b strings.Builder
	space := false
	for _, c := range strings.ToLower(s) {
		if f, ok := fold[c]; ok {
			c = f
		}
		switch {
		case c == '\'' || c == '’' || c == '.':
			continue
		case unicode.IsLetter(c) || unicode.IsDigit(c):
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(c)
		default:
			space = true
		}
	}
	return b.String()
}

var fold = map[rune]rune{
	'à': 'a', 'á': 'a', 'â': 'a', 'ä': 'a', 'ã': 'a', 'å': 'a', 'ç': 'c', 'è': 'e', 'é': 'e', 'ê': 'e', 'ë': 'e',
	'ì': 'i', 'í': 'i', 'î': 'i', 'ï': 'i', 'ñ': 'n', 'ò': 'o', 'ó': 'o', 'ô': 'o', 'ö': 'o', 'õ': 'o', 'ø': 'o',
	'ù': 'u', 'ú': 'u', 'û': 'u', 'ü': 'u', 'ý': 'y', 'ÿ': 'y',
}

// normPostcode upper-cases and removes spaces ("gl1 2ab" -> "GL12AB").
func normPostcode(s string) string {
	var b strings.Builder
	for _, c := range strings.ToUpper(s) {
		if c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// normPhone keeps the digits, writing +44 numbers in the national form
// (0 and the rest) so "+44 117 496 0123" and "0117 4960123" agree.
func normPhone(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	d := b.String()
	if strings.HasPrefix(d, "44") && strings.HasPrefix(strings.TrimSpace(s), "+") {
		d = "0" + d[2:]
	} else if strings.HasPrefix(d, "0044") {
		d = "0" + d[4:]
	}
	if len(d) < 6 {
		return "" // not enough digits to tell anyone apart
	}
	return d
}
