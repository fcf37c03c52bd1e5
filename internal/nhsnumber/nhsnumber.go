// Package nhsnumber implements the NHS number rules that sharedcare enforces
// on every identifier with the NHS number system: ten digits whose last is a
// Modulus 11 check digit over the first nine.
//
// It is a small domain package with no dependencies; the validator
// (internal/validate) applies it to resources, and later the master patient
// index and the PDS integration will use it to normalise what people type.
package nhsnumber

// System is the FHIR identifier system of the NHS number.
const System = "https://fhir.nhs.uk/Id/nhs-number"

// CheckDigit computes the Modulus 11 check digit of the first nine digits of
// an NHS number: each digit is multiplied by a weight from 10 down to 2, the
// check digit is 11 minus the sum modulo 11, where 11 becomes 0. It returns
// false when first9 is not nine ASCII digits or the result is 10, which the
// NHS Data Dictionary says is never issued (no valid number has that prefix).
func CheckDigit(first9 string) (int, bool) {
	if len(first9) != 9 {
		return 0, false
	}
	sum := 0
	for i := 0; i < 9; i++ {
		c := first9[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		sum += int(c-'0') * (10 - i)
	}
	d := 11 - sum%11
	switch d {
	case 11:
		return 0, true
	case 10:
		return 0, false
	}
	return d, true
}

// Valid reports whether s is an NHS number in its stored (normalised) form:
// exactly ten ASCII digits with a correct check digit.
//
// Numbers made of one digit repeated (0000000000, 1111111111, ...) are
// rejected although every one of them passes the Modulus 11 check (the
// weighted sum of nine d's is 54·d, and 11 - 54·d mod 11 is d again):
// such values are what placeholder and test-harness data put in the field,
// never an issued number, and accepting them would let a "no number" sentinel
// match every other record carrying it.
func Valid(s string) bool {
	if len(s) != 10 {
		return false
	}
	d, ok := CheckDigit(s[:9])
	if !ok || s[9] != byte('0'+d) {
		return false
	}
	return !allSame(s)
}

func allSame(s string) bool {
	for i := 1; i < len(s); i++ {
		if s[i] != s[0] {
			return false
		}
	}
	return true
}

// Normalize turns an NHS number as people write it ("943 476 5919",
// "943-476-5919") into the stored ten-digit form. Only spaces and dashes are
// removed; any other character, or a result that is not a valid NHS number,
// gives false.
func Normalize(s string) (string, bool) {
	var b [10]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-':
			continue
		case c >= '0' && c <= '9' && n < len(b):
			b[n] = c
			n++
		default:
			return "", false
		}
	}
	out := string(b[:n])
	if !Valid(out) {
		return "", false
	}
	return out, true
}

// Format renders a ten-digit NHS number in the 3-3-4 grouping the NHS uses
// on screen and on paper ("943 476 5919"). Anything that is not ten digits is
// returned unchanged.
func Format(s string) string {
	if len(s) != 10 || !digits(s) {
		return s
	}
	return s[:3] + " " + s[3:6] + " " + s[6:]
}

// InTestRange reports whether s (ten digits) lies in 999 000 0000 – 999 999
// 9999, the range the NHS reserves for test data and never issues to
// patients; the check digit is not considered.
func InTestRange(s string) bool {
	return len(s) == 10 && digits(s) && s[:3] == "999"
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
