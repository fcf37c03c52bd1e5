package nhsnumber

import (
	"strconv"
	"testing"
)

func TestValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"a correct check digit is valid", "9434765919", true},
		{"the PDS sandbox patient's number is valid", "9000000009", true},
		{"a check digit of 0 from a remainder of 0 is valid", "9990000050", true},
		{"a generated test-range number is valid", "9990000018", true},
		{"a test-range number with a correct check digit is valid", "9997654323", true},
		{"another test-range number is valid", "9991112227", true},
		{"a wrong check digit is invalid", "9434765918", false},
		{"a prefix whose check digit would be 10 is invalid", "1234567890", false},
		{"a prefix whose check digit would be 10 is invalid whatever the tenth digit", "1234567891", false},
		{"nine digits are invalid", "943476591", false},
		{"eleven digits are invalid", "94347659190", false},
		{"the empty string is invalid", "", false},
		{"a letter is invalid", "943476591A", false},
		{"spaces are not stripped by Valid", "943 476 5919", false},
		{"dashes are not stripped by Valid", "943-476-5919", false},
		{"non-ASCII digits are invalid", "９４３４７６５９１９", false},
		{"all zeros pass Modulus 11 but are rejected as a placeholder", "0000000000", false},
		{"all nines pass Modulus 11 but are rejected as a placeholder", "9999999999", false},
		{"all ones pass Modulus 11 but are rejected as a placeholder", "1111111111", false},
		{"a sign is invalid", "+943476591", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Valid(tt.in); got != tt.want {
				t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestCheckDigit(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   int
		wantOK bool
	}{
		{"weights 10..2 give 9 for 943476591", "943476591", 9, true},
		{"a test-range prefix", "999000001", 8, true},
		{"remainder 0 gives check digit 0 rather than 11", "999000005", 0, true},
		{"check digit 10 is never issued", "123456789", 0, false},
		{"check digit 10 in the test range is never issued", "999000000", 0, false},
		{"eight digits are refused", "94347659", 0, false},
		{"ten digits are refused", "9434765919", 0, false},
		{"a non-digit is refused", "94347659x", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := CheckDigit(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("CheckDigit(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   string
		wantOK bool
	}{
		{"spaces in 3-3-4 groups are stripped", "943 476 5919", "9434765919", true},
		{"dashes are stripped", "943-476-5919", "9434765919", true},
		{"an already normal number is kept", "9434765919", "9434765919", true},
		{"leading and trailing spaces are stripped", " 9434765919 ", "9434765919", true},
		{"dots are not a separator", "943.476.5919", "", false},
		{"tabs are not a separator", "943\t476\t5919", "", false},
		{"a wrong check digit stays invalid after stripping", "943 476 5918", "", false},
		{"too many digits are invalid", "943 476 59190", "", false},
		{"only separators are invalid", " - ", "", false},
		{"letters are invalid", "NHS 943 476 5919", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Normalize(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Normalize(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"ten digits are grouped 3-3-4", "9434765919", "943 476 5919"},
		{"a short value is returned unchanged", "94347", "94347"},
		{"a value with letters is returned unchanged", "94347659AB", "94347659AB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Format(tt.in); got != tt.want {
				t.Errorf("Format(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestInTestRange(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"the lowest test number is in range", "9990000000", true},
		{"the highest test number is in range", "9999999999", true},
		{"a generated test number is in range", "9997654323", true},
		{"an ordinary number is not", "9434765919", false},
		{"just below the range is not", "9989999999", false},
		{"a short 999 value is not", "999000000", false},
		{"letters are not", "999000000X", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := InTestRange(tt.in); got != tt.want {
				t.Errorf("InTestRange(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// TestGeneratedTestRangeNumbers walks a stretch of the test range and checks
// that every number the algorithm accepts has the properties the validator
// relies on: Valid, Normalize of its formatted form gives it back, and it is
// in the test range; and that exactly one tenth digit is accepted per prefix.
func TestGeneratedTestRangeNumbers(t *testing.T) {
	valid := 0
	for p := 999000000; p < 999000000+2000; p++ {
		prefix := itoa9(p)
		d, ok := CheckDigit(prefix)
		accepted := 0
		for last := byte('0'); last <= '9'; last++ {
			if Valid(prefix + string(last)) {
				accepted++
			}
		}
		if !ok {
			if accepted != 0 {
				t.Fatalf("prefix %s has check digit 10 but %d numbers were accepted", prefix, accepted)
			}
			continue
		}
		if accepted != 1 {
			t.Fatalf("prefix %s: %d tenth digits accepted, want exactly 1", prefix, accepted)
		}
		n := prefix + string(byte('0'+d))
		if got, ok := Normalize(Format(n)); !ok || got != n {
			t.Fatalf("Normalize(Format(%s)) = %q, %v", n, got, ok)
		}
		if !InTestRange(n) {
			t.Fatalf("%s not in test range", n)
		}
		valid++
	}
	// One prefix in eleven has check digit 10; the rest are usable.
	if valid < 1700 || valid > 1900 {
		t.Errorf("valid numbers in 2000 prefixes = %d, want about 2000*10/11", valid)
	}
}

func itoa9(n int) string {
	var b [9]byte
	for i := 8; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[:])
}

// Modulus 11 with weights 10..2 detects every single wrong digit and every
// swap of two neighbouring different digits (the two keying errors the NHS
// chose it for): no such slip of a valid number is itself valid.
func TestEverySingleSlipIsInvalid(t *testing.T) {
	for _, valid := range []string{"9434765919", "9990000018", "9000000009", "9997654323"} {
		if !Valid(valid) {
			t.Fatalf("%s should be valid", valid)
		}
		for i := 0; i < 10; i++ {
			for d := byte('0'); d <= '9'; d++ {
				if d == valid[i] {
					continue
				}
				b := []byte(valid)
				b[i] = d
				if Valid(string(b)) {
					t.Errorf("%s (digit %d of %s changed to %c) is valid, want invalid", b, i+1, valid, d)
				}
			}
			if i < 9 && valid[i] != valid[i+1] {
				b := []byte(valid)
				b[i], b[i+1] = b[i+1], b[i]
				if Valid(string(b)) {
					t.Errorf("%s (digits %d and %d of %s swapped) is valid, want invalid", b, i+1, i+2, valid)
				}
			}
		}
	}
}

// A non-digit anywhere, in any of the ten positions, makes the value invalid.
func TestANonDigitInAnyPositionIsInvalid(t *testing.T) {
	for i := 0; i < 10; i++ {
		for _, c := range []byte{'a', 'O', ' ', '-', '.', '/', 0} {
			b := []byte("9434765919")
			b[i] = c
			if Valid(string(b)) {
				t.Errorf("%q is valid, want invalid", b)
			}
		}
	}
}

// Exactly one prefix in eleven has no valid number: the remainder that
// would need check digit 10. Every one of them is refused whatever the tenth
// digit.
func TestCheckDigitTenPrefixesHaveNoValidNumber(t *testing.T) {
	found := 0
	for n := 999000000; n < 999000200; n++ {
		prefix := strconv.Itoa(n)
		if _, ok := CheckDigit(prefix); ok {
			continue
		}
		found++
		for d := '0'; d <= '9'; d++ {
			if Valid(prefix + string(d)) {
				t.Errorf("%s%c is valid, but its prefix needs check digit 10", prefix, d)
			}
		}
	}
	if found < 10 || found > 30 {
		t.Errorf("%d of 200 prefixes need check digit 10, want about one in eleven", found)
	}
}
