package search

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// dateRange returns the closed range of Unix milliseconds that a FHIR date,
// dateTime or instant covers at its written precision: "2020" is the whole
// year, "2020-03-01T10:00:00Z" one second (R4 search.html 3.1.1.4.2 "date":
// "the range of the search value" and "the range of the target value").
// Values without a time zone are read as UTC: FHIR allows only dates (no
// times) without a zone, and a date has no zone.
func dateRange(s string) (lo, hi int64, ok bool) {
	t, prec, ok := parseFHIRDate(s)
	if !ok {
		return 0, 0, false
	}
	var end time.Time
	switch prec {
	case precYear:
		end = t.AddDate(1, 0, 0)
	case precMonth:
		end = t.AddDate(0, 1, 0)
	case precDay:
		end = t.AddDate(0, 0, 1)
	case precMinute:
		end = t.Add(time.Minute)
	case precSecond:
		end = t.Add(time.Second)
	default:
		end = t.Add(time.Millisecond)
	}
	return t.UnixMilli(), end.UnixMilli() - 1, true
}

const (
	precYear = iota
	precMonth
	precDay
	precMinute
	precSecond
	precMilli
)

// parseFHIRDate parses YYYY, YYYY-MM, YYYY-MM-DD, and YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm].
func parseFHIRDate(s string) (time.Time, int, bool) {
	n := len(s)
	num := func(a, b int) (int, bool) {
		if b > n {
			return 0, false
		}
		v := 0
		for i := a; i < b; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	y, ok := num(0, 4)
	if !ok {
		return time.Time{}, 0, false
	}
	if n == 4 {
		return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC), precYear, true
	}
	if n < 7 || s[4] != '-' {
		return time.Time{}, 0, false
	}
	m, ok := num(5, 7)
	if !ok || m < 1 || m > 12 {
		return time.Time{}, 0, false
	}
	if n == 7 {
		return time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC), precMonth, true
	}
	if n < 10 || s[7] != '-' {
		return time.Time{}, 0, false
	}
	d, ok := num(8, 10)
	if !ok || d < 1 || d > 31 {
		return time.Time{}, 0, false
	}
	if n == 10 {
		return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), precDay, true
	}
	if s[10] != 'T' || n < 16 || s[13] != ':' {
		return time.Time{}, 0, false
	}
	hh, ok1 := num(11, 13)
	mm, ok2 := num(14, 16)
	if !ok1 || !ok2 || hh > 23 || mm > 59 {
		return time.Time{}, 0, false
	}
	i, sec, nsec, prec := 16, 0, 0, precMinute
	if i < n && s[i] == ':' {
		v, ok := num(i+1, i+3)
		if !ok || v > 60 {
			return time.Time{}, 0, false
		}
		sec, i, prec = v, i+3, precSecond
		if i < n && s[i] == '.' {
			j := i + 1
			for j < n && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if j == i+1 {
				return time.Time{}, 0, false
			}
			frac := s[i+1 : j]
			if len(frac) > 9 {
				frac = frac[:9]
			}
			f, _ := strconv.Atoi(frac + strings.Repeat("0", 9-len(frac)))
			nsec, i, prec = f, j, precMilli
		}
	}
	loc := time.UTC
	switch {
	case i == n:
	case s[i] == 'Z' && i+1 == n:
	case (s[i] == '+' || s[i] == '-') && n == i+6 && s[i+3] == ':':
		oh, ok1 := num(i+1, i+3)
		om, ok2 := num(i+4, i+6)
		if !ok1 || !ok2 {
			return time.Time{}, 0, false
		}
		off := oh*3600 + om*60
		if s[i] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return time.Time{}, 0, false
	}
	t := time.Date(y, time.Month(m), d, hh, mm, sec, nsec, loc)
	if prec == precMilli {
		t = t.Truncate(time.Millisecond)
	}
	return t.UTC(), prec, true
}

// Open ends of a date range (a Period without start or end).
const (
	minDate = math.MinInt64
	maxDate = math.MaxInt64
)
