package synth

import (
	"strconv"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/synth/codes"
)

// verhoeff reports whether s (all digits) passes the Verhoeff check that
// every SNOMED CT identifier (dm+d ids included) carries in its last digit.
func verhoeff(s string) bool {
	d := [10][10]int{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5}, {2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
		{3, 4, 0, 1, 2, 8, 9, 5, 6, 7}, {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
		{6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3}, {8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
		{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}}
	p := [8][10]int{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4}, {5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
		{8, 9, 1, 6, 0, 4, 3, 5, 2, 7}, {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
		{2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8}}
	c := 0
	for i := 0; i < len(s); i++ {
		ch := s[len(s)-1-i]
		if ch < '0' || ch > '9' {
			return false
		}
		c = d[c][p[i%8][ch-'0']]
	}
	return c == 0
}

// loincValid checks a LOINC code's Mod 10 check digit (LOINC Users'
// Guide): the odd positions from the right doubled, the even positions put
// in front, the digits summed, and the check digit brings it to a multiple of ten.
func loincValid(code string) bool {
	num, check, ok := strings.Cut(code, "-")
	if !ok || len(check) != 1 {
		return false
	}
	var odd, even string
	for i := 0; i < len(num); i++ {
		if (len(num)-i)%2 == 1 {
			odd += string(num[i])
		} else {
			even += string(num[i])
		}
	}
	n, err := strconv.Atoi(odd)
	if err != nil {
		return false
	}
	sum := 0
	for _, c := range even + strconv.Itoa(2*n) {
		sum += int(c - '0')
	}
	return strconv.Itoa((10-sum%10)%10) == check
}

func TestCheckDigitAlgorithms(t *testing.T) {
	for _, c := range []string{"22298006", "44054006", "39113611000001102"} {
		if !verhoeff(c) {
			t.Errorf("verhoeff(%s) = false, want true (a known SNOMED CT id)", c)
		}
	}
	if verhoeff("44054007") {
		t.Error("verhoeff(44054007) = true, want false (last digit changed)")
	}
	for _, c := range []string{"8480-6", "8462-4", "2951-2", "59408-5"} {
		if !loincValid(c) {
			t.Errorf("loincValid(%s) = false, want true", c)
		}
	}
	if loincValid("8480-7") {
		t.Error("loincValid(8480-7) = true, want false")
	}
}

// Every SNOMED CT, dm+d and LOINC code the region writes has a valid check
// digit, and each code is always written with the same display.
func TestWrittenCodesAreWellFormedAndConsistent(t *testing.T) {
	dir, _ := sharedRegion(t)
	display := map[string]string{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case fhir.Object:
			if sys, ok := x["system"].(string); ok {
				if code, ok := x["code"].(string); ok {
					switch sys {
					case codes.SNOMED, codes.DMD:
						if !verhoeff(code) {
							t.Errorf("%s code %s fails the Verhoeff check", sys, code)
						}
					case codes.LOINC:
						if !loincValid(code) {
							t.Errorf("LOINC %s fails the Mod 10 check", code)
						}
					}
					if d, ok := x["display"].(string); ok {
						key := sys + "|" + code
						if prev, seen := display[key]; seen && prev != d {
							t.Errorf("%s written with displays %q and %q", key, prev, d)
						}
						display[key] = d
					}
				}
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	eachResource(t, dir, func(_ string, r fhir.Object, _ []byte) { walk(r) })
	if len(display) < 60 {
		t.Errorf("only %d distinct codes written; want the whole table in use", len(display))
	}
}
