package postgres

import (
	"slices"
	"strings"
	"testing"
)

func TestTextTerms(t *testing.T) {
	long := strings.Repeat("a", maxLexeme+1)
	for _, tc := range []struct {
		name, value string
		vector      string
	}{
		{"a decimal is two terms, as in SQLite's FTS5", "dose 1.5 mg", "'dose' '1' '5' 'mg'"},
		{"a hyphenated word is two terms", "x-ray", "'x' 'ray'"},
		{"letters of any script are terms", "ångström 東京", "'ångström' '東京'"},
		{"each term once", "a b a", "'a' 'b'"},
		{"a term too long for a tsvector is left out", long + " b", "'b'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tsvectorLiteral(tc.value); got != tc.vector {
				t.Errorf("tsvectorLiteral(%q) = %q, want %q", tc.value, got, tc.vector)
			}
		})
	}
	if got, want := textTerms("O'Brien, (asthma)"), []string{"O", "Brien", "asthma"}; !slices.Equal(got, want) {
		t.Errorf("textTerms = %q, want %q", got, want)
	}
	if got, want := tsqueryLiteral("severe asthma"), "'severe' & 'asthma'"; got != want {
		t.Errorf("tsqueryLiteral = %q, want %q", got, want)
	}
}
