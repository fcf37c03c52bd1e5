package fhirpath

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// dtKind says which of Date, DateTime and Time a dateTime value is.
type dtKind uint8

const (
	kDate dtKind = iota
	kDateTime
	kTime
)

// Precisions of a partial date/time, coarsest first. Seconds and
// milliseconds count as one precision when comparing (FHIRPath §6.1.6).
const (
	pYear = iota + 1
	pMonth
	pDay
	pHour
	pMinute
	pSecond
	pMilli
)

// dateTime is a FHIRPath Date, DateTime or Time with its precision.
type dateTime struct {
	kind                                dtKind
	prec                                uint8
	year, month, day, hour, minute, sec int
	ms                                  int
	hasTZ                               bool
	tz                                  int // offset east of UTC in minutes
}

// parseDateTime reads the text of a date, dateTime or time (without the
// '@' of a literal). A DateTime may stop at any precision, including
// "2015T".
func parseDateTime(s string, kind dtKind) (dateTime, bool) {
	d := dateTime{kind: kind}
	if kind == kTime {
		if !d.parseTime(s) {
			return d, false
		}
		return d, true
	}
	datePart, timePart, hasT := strings.Cut(s, "T")
	if kind == kDate && hasT {
		return d, false
	}
	parts := strings.Split(datePart, "-")
	if len(parts) > 3 || len(parts[0]) != 4 {
		return d, false
	}
	var ok bool
	if d.year, ok = digits(parts[0]); !ok {
		return d, false
	}
	d.prec = pYear
	if len(parts) > 1 {
		if len(parts[1]) != 2 {
			return d, false
		}
		if d.month, ok = digits(parts[1]); !ok || d.month < 1 || d.month > 12 {
			return d, false
		}
		d.prec = pMonth
	}
	if len(parts) > 2 {
		if len(parts[2]) != 2 {
			return d, false
		}
		if d.day, ok = digits(parts[2]); !ok || d.day < 1 || d.day > daysIn(d.year, d.month) {
			return d, false
		}
		d.prec = pDay
	}
	if timePart == "" {
		return d, true
	}
	if d.prec != pDay {
		return d, false
	}
	// Time zone: Z or ±hh:mm at the end.
	tzAt := strings.IndexAny(timePart, "Z+-")
	clock := timePart
	if tzAt >= 0 {
		clock = timePart[:tzAt]
		zone := timePart[tzAt:]
		if zone == "Z" {
			d.hasTZ = true
		} else {
			if len(zone) != 6 || zone[3] != ':' {
				return d, false
			}
			h, ok1 := digits(zone[1:3])
			m, ok2 := digits(zone[4:6])
			if !ok1 || !ok2 {
				return d, false
			}
			d.hasTZ = true
			d.tz = h*60 + m
			if zone[0] == '-' {
				d.tz = -d.tz
			}
		}
	}
	t := dateTime{}
	if !t.parseTime(clock) {
		return d, false
	}
	d.hour, d.minute, d.sec, d.ms, d.prec = t.hour, t.minute, t.sec, t.ms, t.prec
	return d, true
}

func (d *dateTime) parseTime(s string) bool {
	main, frac, hasFrac := strings.Cut(s, ".")
	parts := strings.Split(main, ":")
	if len(parts) > 3 {
		return false
	}
	var ok bool
	vals := []*int{&d.hour, &d.minute, &d.sec}
	limits := []int{23, 59, 59}
	for i, p := range parts {
		if len(p) != 2 {
			return false
		}
		if *vals[i], ok = digits(p); !ok || *vals[i] > limits[i] {
			return false
		}
	}
	d.prec = uint8(pHour + len(parts) - 1)
	if hasFrac {
		if len(parts) != 3 || frac == "" {
			return false
		}
		for len(frac) < 3 {
			frac += "0"
		}
		if d.ms, ok = digits(frac[:3]); !ok {
			return false
		}
		if _, ok = digits(frac); !ok {
			return false
		}
		d.prec = pMilli
	}
	return true
}

func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func (d dateTime) String() string {
	var b strings.Builder
	if d.kind != kTime {
		fmt.Fprintf(&b, "%04d", d.year)
		if d.prec >= pMonth {
			fmt.Fprintf(&b, "-%02d", d.month)
		}
		if d.prec >= pDay {
			fmt.Fprintf(&b, "-%02d", d.day)
		}
		if d.prec <= pDay {
			return b.String()
		}
		b.WriteByte('T')
	}
	fmt.Fprintf(&b, "%02d", d.hour)
	if d.prec >= pMinute {
		fmt.Fprintf(&b, ":%02d", d.minute)
	}
	if d.prec >= pSecond {
		fmt.Fprintf(&b, ":%02d", d.sec)
	}
	if d.prec >= pMilli {
		fmt.Fprintf(&b, ".%03d", d.ms)
	}
	if d.kind == kDateTime && d.hasTZ {
		if d.tz == 0 {
			b.WriteString("Z")
		} else {
			sign, tz := '+', d.tz
			if tz < 0 {
				sign, tz = '-', -tz
			}
			fmt.Fprintf(&b, "%c%02d:%02d", sign, tz/60, tz%60)
		}
	}
	return b.String()
}

// utc returns d with its time moved to UTC when it has a zone and a time.
func (d dateTime) utc() dateTime {
	if !d.hasTZ || d.prec < pHour || d.kind == kTime || d.tz == 0 {
		return d
	}
	t := time.Date(d.year, time.Month(d.month), d.day, d.hour, d.minute, d.sec, d.ms*1e6, time.FixedZone("", d.tz*60)).UTC()
	d.year, d.month, d.day, d.hour, d.minute, d.sec = t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second()
	d.tz = 0
	return d
}

func (d dateTime) fields() [7]int {
	return [7]int{d.year, d.month, d.day, d.hour, d.minute, d.sec, d.ms}
}

// compareDT compares two date/time values. comparable is false when they
// are of different kinds (a Time and a Date); known is false when they
// are equal as far as the coarser precision goes but the precisions
// differ, so the answer is unknown (FHIRPath §6.1.6: the result is empty).
func compareDT(a, b dateTime) (cmp int, known, comparable bool) {
	if (a.kind == kTime) != (b.kind == kTime) {
		return 0, false, false
	}
	if a.hasTZ != b.hasTZ && a.prec >= pHour && b.prec >= pHour {
		// One local, one zoned: the offset of the local one is unknown.
		return 0, false, true
	}
	if a.hasTZ || b.hasTZ {
		a, b = a.utc(), b.utc()
	}
	fa, fb := a.fields(), b.fields()
	start := 0
	if a.kind == kTime {
		start = pHour - 1
	}
	pa, pb := a.prec, b.prec
	if pa == pMilli {
		pa = pSecond
	}
	if pb == pMilli {
		pb = pSecond
	}
	n := min(pa, pb)
	for i := start; i < int(n); i++ {
		x, y := fa[i], fb[i]
		if i == pSecond-1 {
			// seconds and milliseconds compare as one decimal
			x, y = fa[i]*1000+fa[i+1], fb[i]*1000+fb[i+1]
		}
		if x != y {
			if x < y {
				return -1, true, true
			}
			return 1, true, true
		}
	}
	if pa != pb {
		return 0, false, true
	}
	return 0, true, true
}

// addDuration adds n units (a calendar or UCUM time unit) to d, following
// FHIRPath §6.6.1: years and months keep the day, clamped to the month's
// last day; a unit finer than d's precision is applied in whole units of
// d's precision.
func addDuration(d dateTime, n decimal, unit string) (dateTime, error) {
	u, ok := timeUnits[unit]
	if !ok {
		return d, evalErr("cannot add %q to a date/time", unit)
	}
	if d.kind == kTime && u.prec < pHour {
		return d, evalErr("cannot add %s to a time", unit)
	}
	if u.prec <= pMonth {
		months := int(n.f)
		if u.prec == pYear {
			months *= 12
		}
		total := d.year*12 + (d.month - 1) + months
		if d.prec < pMonth {
			total = d.year*12 + months/12*12
		}
		d.year, d.month = total/12, total%12+1
		if d.prec < pMonth {
			d.month = 0
		}
		if d.prec >= pDay && d.day > daysIn(d.year, d.month) {
			d.day = daysIn(d.year, d.month)
		}
		return d, nil
	}
	// Days and finer: a fixed number of milliseconds. Above milliseconds
	// the decimal part is ignored (calendar duration semantics).
	amount := n.f
	if u.prec != pMilli {
		amount = math.Trunc(amount)
	}
	ms := amount * u.ms
	prec := d.prec
	if prec == pMilli {
		prec = pSecond
	}
	// Truncate the amount to d's precision.
	var step float64
	switch {
	case d.kind != kTime && prec <= pYear:
		step = 365 * 86400000
		y := int(math.Trunc(ms / step))
		d.year += y
		return d, nil
	case d.kind != kTime && prec == pMonth:
		return d, nil
	case d.kind != kTime && prec == pDay:
		step = 86400000
	case prec == pHour:
		step = 3600000
	case prec == pMinute:
		step = 60000
	default:
		step = 1
		if d.prec == pSecond {
			step = 1000
		}
	}
	ms = math.Trunc(ms/step) * step
	base := time.Date(max(d.year, 1), time.Month(max(d.month, 1)), max(d.day, 1), d.hour, d.minute, d.sec, d.ms*1e6, time.UTC)
	if d.kind == kTime {
		base = time.Date(2000, 1, 1, d.hour, d.minute, d.sec, d.ms*1e6, time.UTC)
	}
	t := base.Add(time.Duration(ms) * time.Millisecond)
	if d.kind != kTime {
		d.year, d.month, d.day = t.Year(), int(t.Month()), t.Day()
	}
	d.hour, d.minute, d.sec, d.ms = t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1e6
	return d, nil
}

// timeUnits are the units a date/time can be moved by: calendar durations
// and the UCUM definite-duration codes.
var timeUnits = map[string]struct {
	prec uint8
	ms   float64
}{
	"year": {pYear, 0}, "month": {pMonth, 0},
	"week": {pDay, 7 * 86400000}, "wk": {pDay, 7 * 86400000},
	"day": {pDay, 86400000}, "d": {pDay, 86400000},
	"hour": {pHour, 3600000}, "h": {pHour, 3600000},
	"minute": {pMinute, 60000}, "min": {pMinute, 60000},
	"second": {pSecond, 1000}, "s": {pSecond, 1000},
	"millisecond": {pMilli, 1}, "ms": {pMilli, 1},
}

// nowDT converts a time to a DateTime with millisecond precision and zone.
func nowDT(t time.Time) dateTime {
	_, off := t.Zone()
	return dateTime{kind: kDateTime, prec: pMilli, year: t.Year(), month: int(t.Month()), day: t.Day(),
		hour: t.Hour(), minute: t.Minute(), sec: t.Second(), ms: t.Nanosecond() / 1e6, hasTZ: true, tz: off / 60}
}
