package fhirpath

import (
	"math"
	"strings"
)

// quantity is a FHIRPath Quantity: a decimal with a UCUM unit or a
// calendar duration keyword ("year", "week", ...; singular).
type quantity struct {
	value decimal
	unit  string
}

func (q quantity) String() string {
	if _, ok := calendarUnits[q.unit]; ok {
		return q.value.String() + " " + q.unit
	}
	return q.value.String() + " '" + q.unit + "'"
}

// ucumCode returns the UCUM code of a unit ("wk" for the calendar keyword
// "week"); ok is false for "year" and "month", which have no exact UCUM
// equivalent (FHIRPath §5.5.4).
func ucumCode(unit string) (string, bool) {
	switch unit {
	case "year", "month":
		return "", false
	case "week":
		return "wk", true
	case "day":
		return "d", true
	case "hour":
		return "h", true
	case "minute":
		return "min", true
	case "second":
		return "s", true
	case "millisecond":
		return "ms", true
	}
	return unit, true
}

// dims is the exponent of each base dimension of a unit: mass, length,
// time, amount, and two private dimensions for the calendar year and
// month, which only compare with themselves.
type dims [6]int8

// unitAtom is a UCUM unit atom in terms of the base dimensions.
type unitAtom struct {
	factor float64
	d      dims
}

// atoms are the UCUM units the conversions support: enough for the
// clinical quantities of the suite and of common vital signs. A unit
// outside this table still compares with an identical unit.
var atoms = map[string]unitAtom{
	"g": {1, dims{1}}, "m": {1, dims{0, 1}}, "s": {1, dims{0, 0, 1}}, "mol": {1, dims{0, 0, 0, 1}},
	"min": {60, dims{0, 0, 1}}, "h": {3600, dims{0, 0, 1}}, "d": {86400, dims{0, 0, 1}},
	"wk": {604800, dims{0, 0, 1}}, "mo": {2629800, dims{0, 0, 1}}, "a": {31557600, dims{0, 0, 1}},
	"L": {1e-3, dims{0, 3}}, "l": {1e-3, dims{0, 3}},
	"[lb_av]": {453.59237, dims{1}}, "[oz_av]": {28.349523125, dims{1}},
	"[in_i]": {0.0254, dims{0, 1}}, "[ft_i]": {0.3048, dims{0, 1}},
	"1": {1, dims{}}, "%": {0.01, dims{}},
	"year": {1, dims{0, 0, 0, 0, 1}}, "month": {1, dims{0, 0, 0, 0, 0, 1}},
	"week": {604800, dims{0, 0, 1}}, "day": {86400, dims{0, 0, 1}}, "hour": {3600, dims{0, 0, 1}},
	"minute": {60, dims{0, 0, 1}}, "second": {1, dims{0, 0, 1}}, "millisecond": {1e-3, dims{0, 0, 1}},
}

var prefixes = map[byte]float64{'k': 1e3, 'h': 1e2, 'd': 1e-1, 'c': 1e-2, 'm': 1e-3, 'u': 1e-6, 'n': 1e-9, 'p': 1e-12, 'M': 1e6}

// parseUnit reduces a unit expression (g, mg/dL, kg.m2, cm.m) to a factor
// and dimensions; ok is false for units it does not know.
func parseUnit(u string) (float64, dims, bool) {
	factor, d := 1.0, dims{}
	sign := int8(1)
	start := 0
	for i := 0; i <= len(u); i++ {
		if i < len(u) && u[i] != '.' && u[i] != '/' {
			continue
		}
		term := u[start:i]
		if term != "" || i > 0 {
			f, td, ok := parseTerm(term)
			if !ok {
				return 0, dims{}, false
			}
			if sign > 0 {
				factor *= f
			} else {
				factor /= f
			}
			for k := range d {
				d[k] += sign * td[k]
			}
		}
		sign = 1
		if i < len(u) && u[i] == '/' {
			sign = -1
		}
		start = i + 1
	}
	return factor, d, true
}

func parseTerm(t string) (float64, dims, bool) {
	if t == "" {
		return 1, dims{}, true
	}
	exp := 1
	j := len(t)
	for j > 0 && (isDigit(t[j-1]) || t[j-1] == '-') && !strings.HasSuffix(t[:j], "]") {
		j--
	}
	if j < len(t) && j > 0 {
		n := 0
		neg := false
		for _, c := range t[j:] {
			if c == '-' {
				neg = true
				continue
			}
			n = n*10 + int(c-'0')
		}
		if neg {
			n = -n
		}
		exp, t = n, t[:j]
	}
	a, ok := atoms[t]
	if !ok && len(t) > 1 {
		if p, pok := prefixes[t[0]]; pok {
			if b, bok := atoms[t[1:]]; bok {
				a, ok = unitAtom{p * b.factor, b.d}, true
			}
		}
	}
	if !ok {
		return 0, dims{}, false
	}
	var d dims
	for k := range d {
		d[k] = a.d[k] * int8(exp)
	}
	return math.Pow(a.factor, float64(exp)), d, true
}

// convertPair expresses b in a's unit; ok is false when the units are not
// commensurable.
func convertPair(a, b quantity) (float64, float64, bool) {
	if a.unit == b.unit {
		return a.value.f, b.value.f, true
	}
	fa, da, ok1 := parseUnit(a.unit)
	fb, db, ok2 := parseUnit(b.unit)
	if !ok1 || !ok2 || da != db {
		return 0, 0, false
	}
	return a.value.f, b.value.f * fb / fa, true
}

// quantityEqual compares two quantities for = (exact) or ~ (equivalent:
// calendar years and months match UCUM a and mo, and values compare at the
// less precise scale).
func quantityEqual(a, b quantity, equiv bool) (eq, known bool) {
	if equiv {
		a.unit, b.unit = equivUnit(a.unit), equivUnit(b.unit)
	}
	x, y, ok := convertPair(a, b)
	if !ok {
		return false, false
	}
	if equiv {
		scale := min(a.value.scale, b.value.scale)
		if scale < 0 {
			scale = 8
		}
		return decimal{x, scale}.round().f == decimal{y, scale}.round().f, true
	}
	return nearlyEqual(x, y), true
}

func equivUnit(u string) string {
	switch u {
	case "year":
		return "a"
	case "month":
		return "mo"
	}
	return u
}

// nearlyEqual compares floats that came from decimal arithmetic, ignoring
// binary representation noise.
func nearlyEqual(x, y float64) bool {
	if x == y {
		return true
	}
	d := math.Abs(x - y)
	return d <= 1e-9*math.Max(math.Abs(x), math.Abs(y)) || d < 1e-12
}
