package validate

// Value checks of the FHIR R4 primitive types
// (https://hl7.org/fhir/R4/datatypes.html#primitive). Each follows the
// type's regex in the specification, written out by hand because these run
// for every primitive of every write: they allocate nothing and look at each
// byte once. Where the regex is looser than the type's meaning (it lets
// 2023-02-30 through), the meaning wins.

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// validID: [A-Za-z0-9\-\.]{1,64}, as fhir.ValidID, without the regex engine.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validCode: [^\s]+(\s[^\s]+)*: no leading, trailing or doubled whitespace.
func validCode(s string) bool {
	if len(s) == 0 || isSpace(s[0]) || isSpace(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if isSpace(s[i]) && isSpace(s[i-1]) {
			return false
		}
	}
	return true
}

// validURI: \S*, and non-empty like every FHIR string.
func validURI(s string) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) || s[i] < 0x20 {
			return false
		}
	}
	return true
}

// validOID: urn:oid:[0-2](\.(0|[1-9][0-9]*))+
func validOID(s string) bool {
	const prefix = "urn:oid:"
	if len(s) < len(prefix)+3 || s[:len(prefix)] != prefix {
		return false
	}
	s = s[len(prefix):]
	if s[0] < '0' || s[0] > '2' {
		return false
	}
	s = s[1:]
	if len(s) == 0 {
		return false
	}
	for len(s) > 0 {
		if s[0] != '.' || len(s) < 2 || !isDigit(s[1]) {
			return false
		}
		j := 2
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if s[1] == '0' && j > 2 {
			return false
		}
		s = s[j:]
	}
	return true
}

// validUUID: urn:uuid: followed by a lower-case RFC 4122 string.
func validUUID(s string) bool {
	const prefix = "urn:uuid:"
	return len(s) == len(prefix)+36 && s[:len(prefix)] == prefix && uuidBody(s[len(prefix):], false)
}

// uuidBody checks 8-4-4-4-12 hex digits; upper-case hex only if upper.
func uuidBody(s string, upper bool) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
			continue
		}
		if !(isDigit(c) || c >= 'a' && c <= 'f' || upper && c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// validBase64: (\s*([0-9a-zA-Z\+\=]){4}\s*)+ as the specification means it
// (its regex forgets '/'): groups of four base64 characters, whitespace
// allowed anywhere, '=' only as the final padding.
func validBase64(s string) bool {
	n, pad := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isSpace(c):
			continue
		case c == '=':
			pad++
			if pad > 2 {
				return false
			}
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || isDigit(c) || c == '+' || c == '/':
			if pad > 0 {
				return false
			}
		default:
			return false
		}
		n++
	}
	return n > 0 && n%4 == 0
}

// validString: non-empty (FHIR JSON has no empty strings), at most 1 MB, and
// no control characters other than tab, CR and LF (they cannot be carried in
// FHIR's XML form, so a resource holding them could not be exchanged).
func validString(s string) (ok bool, why string) {
	if len(s) == 0 {
		return false, "must not be empty: FHIR strings have content or are absent"
	}
	if len(s) > 1<<20 {
		return false, "exceeds 1 MB"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return false, "contains a control character"
		}
	}
	return true, ""
}

// Dates and times.

func num2(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }

func digitsAt(s string, i, n int) bool {
	if i+n > len(s) {
		return false
	}
	for j := i; j < i+n; j++ {
		if !isDigit(s[j]) {
			return false
		}
	}
	return true
}

// datePart checks YYYY, YYYY-MM or YYYY-MM-DD at the start of s and returns
// how many bytes it used and whether it reached a full date.
func datePart(s string) (n int, full bool, ok bool) {
	if !digitsAt(s, 0, 4) || s[:4] == "0000" {
		return 0, false, false
	}
	if len(s) == 4 || s[4] != '-' {
		return 4, false, true
	}
	if !digitsAt(s, 5, 2) {
		return 0, false, false
	}
	month := num2(s[5:])
	if month < 1 || month > 12 {
		return 0, false, false
	}
	if len(s) == 7 || s[7] != '-' {
		return 7, false, true
	}
	if !digitsAt(s, 8, 2) {
		return 0, false, false
	}
	day := num2(s[8:])
	year := int(s[0]-'0')*1000 + int(s[1]-'0')*100 + num2(s[2:])
	if day < 1 || day > daysIn(month, year) {
		return 0, false, false
	}
	return 10, true, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// timePart checks hh:mm:ss(.f+)? at the start of s; seconds may be 60 for a
// leap second, as the specification allows.
func timePart(s string) (n int, ok bool) {
	if len(s) < 8 || !digitsAt(s, 0, 2) || s[2] != ':' || !digitsAt(s, 3, 2) || s[5] != ':' || !digitsAt(s, 6, 2) {
		return 0, false
	}
	if num2(s) > 23 || num2(s[3:]) > 59 || num2(s[6:]) > 60 {
		return 0, false
	}
	n = 8
	if n < len(s) && s[n] == '.' {
		n++
		start := n
		for n < len(s) && isDigit(s[n]) {
			n++
		}
		if n == start {
			return 0, false
		}
	}
	return n, true
}

// zone checks that s is exactly a time zone: Z or ±hh:mm up to ±14:00.
func zone(s string) bool {
	if s == "Z" {
		return true
	}
	if len(s) != 6 || (s[0] != '+' && s[0] != '-') || !digitsAt(s, 1, 2) || s[3] != ':' || !digitsAt(s, 4, 2) {
		return false
	}
	h, m := num2(s[1:]), num2(s[4:])
	return m <= 59 && (h <= 13 || h == 14 && m == 0)
}

func validDate(s string) bool {
	n, _, ok := datePart(s)
	return ok && n == len(s)
}

// validDateTime: a date at any precision, or a full date with a time and a
// zone (R4 requires seconds and the zone once a time is given).
func validDateTime(s string) bool {
	n, full, ok := datePart(s)
	if !ok {
		return false
	}
	if n == len(s) {
		return true
	}
	if !full || s[n] != 'T' {
		return false
	}
	m, ok := timePart(s[n+1:])
	return ok && zone(s[n+1+m:])
}

// validInstant: a full date, time and zone.
func validInstant(s string) bool {
	n, full, ok := datePart(s)
	if !ok || !full || n == len(s) || s[n] != 'T' {
		return false
	}
	m, ok := timePart(s[n+1:])
	return ok && zone(s[n+1+m:])
}

func validTime(s string) bool {
	n, ok := timePart(s)
	return ok && n == len(s)
}
