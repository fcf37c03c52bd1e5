package fhirpath

import "math"

// The boundary functions of FHIRPath 2.1 (lowBoundary, highBoundary,
// precision, comparable). R4's FHIRPath predates them, but the R4 suite
// tests them and period invariants use them.

func addBoundaryFunctions() {
	functions["lowBoundary"] = &funcDef{0, 1, boundaryFn(false)}
	functions["highBoundary"] = &funcDef{0, 1, boundaryFn(true)}
	functions["precision"] = &funcDef{0, 0, fnPrecision}
	functions["comparable"] = &funcDef{1, 1, fnComparable}
}

func boundaryFn(high bool) funcDefFn {
	return func(c *evalCtx, in []Value, args []node) ([]Value, error) {
		if len(in) == 0 {
			return nil, nil
		}
		if len(in) > 1 {
			return nil, evalErr("boundary of %d items", len(in))
		}
		p := noPrecision
		if len(args) == 1 {
			n, ok, err := intArg(c, args[0])
			if err != nil || !ok {
				return nil, err
			}
			p = int(n)
		}
		v, _ := prim(in[0])
		switch x := v.(type) {
		case int64:
			return decBoundaryResult(decimal{float64(x), 0}, p, high, "")
		case decimal:
			return decBoundaryResult(x, p, high, "")
		case quantity:
			return decBoundaryResult(x.value, p, high, x.unit)
		case dateTime:
			d, ok := dtBoundary(x, p, high)
			if !ok {
				return nil, nil
			}
			return []Value{sysDateTime(d)}, nil
		}
		return nil, evalErr("boundary of %s", in[0].typ)
	}
}

// noPrecision marks a boundary call without a precision argument.
const noPrecision = -1 << 20

func decBoundaryResult(x decimal, p int, high bool, unit string) ([]Value, error) {
	if p == noPrecision {
		p = 8
	}
	d, ok := decBoundary(x, p, high)
	if !ok {
		return nil, nil
	}
	if unit != "" {
		return []Value{sysQuantity(quantity{d, unit})}, nil
	}
	return []Value{sysDecimal(d)}, nil
}

// decBoundary returns the least (or greatest) value that x, written with
// its scale, may stand for, to p digits.
func decBoundary(x decimal, p int, high bool) (decimal, bool) {
	if p < 0 || p > 28 {
		return decimal{}, false
	}
	s := x.scale
	if s < 0 {
		s = 8
	}
	if math.Signbit(x.f) {
		r, ok := decBoundary(decimal{-x.f, s}, p, !high)
		r.f = -r.f
		return r, ok
	}
	half := 0.5 * math.Pow10(-s)
	pow := math.Pow10(p)
	var v float64
	if high {
		v = math.Round((x.f+half)*pow) / pow
	} else {
		v = math.Trunc((x.f-half)*pow+1e-7) / pow
	}
	return decimal{v, p}, true
}

// dtBoundary fills a partial date/time to precision p (in digits: 4 year,
// 6 month, 8 day, 10 hour, 12 minute, 14 second, 17 millisecond; for
// times 2, 4, 6, 9) with the least or greatest values; a date-time
// without a zone takes the widest offset (+14:00 low, -12:00 high).
func dtBoundary(d dateTime, p int, high bool) (dateTime, bool) {
	var prec uint8
	if d.kind == kTime {
		m := map[int]uint8{2: pHour, 4: pMinute, 6: pSecond, 9: pMilli, noPrecision: pMilli}
		var ok bool
		if prec, ok = m[p]; !ok {
			return d, false
		}
	} else {
		m := map[int]uint8{4: pYear, 6: pMonth, 8: pDay, 10: pHour, 12: pMinute, 14: pSecond, 17: pMilli, noPrecision: pMilli}
		var ok bool
		if prec, ok = m[p]; !ok {
			return d, false
		}
		if d.kind == kDate && p == noPrecision {
			prec = pDay
		}
	}
	if d.prec == pHour {
		// An hour alone is not a FHIR time: it stands for hh:00.
		d.prec = pMinute
	}
	for q := d.prec + 1; q <= prec; q++ {
		switch q {
		case pMonth:
			d.month = pick(high, 1, 12)
		case pDay:
			d.day = pick(high, 1, daysIn(d.year, d.month))
		case pHour:
			d.hour = pick(high, 0, 23)
		case pMinute:
			d.minute = pick(high, 0, 59)
		case pSecond:
			d.sec = pick(high, 0, 59)
		case pMilli:
			d.ms = pick(high, 0, 999)
		}
	}
	if prec < d.prec {
		fields := d.fields()
		for q := prec + 1; q <= pMilli; q++ {
			fields[q-1] = 0
		}
		d.year, d.month, d.day, d.hour, d.minute, d.sec, d.ms = fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6]
	}
	d.prec = prec
	switch {
	case d.kind != kTime && prec <= pDay:
		d.kind, d.hasTZ, d.tz = kDate, false, 0
	case d.kind == kDate:
		d.kind = kDateTime
		fallthrough
	case d.kind == kDateTime && !d.hasTZ:
		d.hasTZ, d.tz = true, pick(high, 14*60, -12*60)
	}
	return d, true
}

func pick(high bool, low, hi int) int {
	if high {
		return hi
	}
	return low
}

func fnPrecision(c *evalCtx, in []Value, _ []node) ([]Value, error) {
	if len(in) != 1 {
		return nil, nil
	}
	v, _ := prim(in[0])
	switch x := v.(type) {
	case decimal:
		return []Value{sysInt(int64(max(x.scale, 0)))}, nil
	case int64:
		return []Value{sysInt(0)}, nil
	case dateTime:
		digits := [...]int{0, 4, 6, 8, 10, 12, 14, 17}
		if x.kind == kTime {
			digits = [...]int{0, 0, 0, 0, 2, 4, 6, 9}
		}
		return []Value{sysInt(int64(digits[x.prec]))}, nil
	}
	return nil, nil
}

func fnComparable(c *evalCtx, in []Value, args []node) ([]Value, error) {
	other, err := c.arg(args[0])
	if err != nil || len(in) != 1 || len(other) != 1 {
		return nil, err
	}
	a, ok1 := convQuantity(in[0])
	b, ok2 := convQuantity(other[0])
	if !ok1 || !ok2 {
		return falseV, nil
	}
	_, _, ok := convertPair(a, b)
	return boolResult(ok), nil
}
