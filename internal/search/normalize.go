package search

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Fold normalises a string for FHIR's default string matching, which is
// case- and accent-insensitive (R4 search.html 3.1.1.4.6 "string"): it
// lower-cases, decomposes (NFD) and drops combining marks, so "Ñúñez"
// folds to "nunez". Both the index (String.Norm, Token.Text, Text.Value)
// and search values go through it, so the stores compare bytes.
func Fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if 'A' <= c && c <= 'Z' {
			ascii = false
			break
		}
	}
	if ascii {
		return s // the common case (measured: most Synthea strings are lower-case ASCII)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range norm.NFD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// terms splits folded text into its terms (runs of letters and digits), the
// unit _text and _content match on.
func terms(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}
