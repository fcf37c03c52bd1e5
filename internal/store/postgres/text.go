package postgres

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxLexeme is PostgreSQL's limit on one tsvector lexeme (2046 bytes). A
// longer term is not indexed: a search for it then finds nothing (narrower,
// never wider).
const maxLexeme = 2046

// textTerms splits a normalised text value into its terms, as the contract
// (store.Text) defines them: runs of letters and digits. Combining marks
// stay inside a term, as in SQLite's unicode61 tokenizer.
func textTerms(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r))
	})
}

// quoteLexeme quotes a term for tsvector or tsquery input, which take a
// quoted lexeme literally (no parser, no normalisation).
func quoteLexeme(t string) string {
	// Most terms hold neither character; a replacer built per term was 37%
	// of the server's CPU during a Synthea import.
	if !strings.ContainsAny(t, `\'`) {
		return "'" + t + "'"
	}
	return "'" + lexemeEscaper.Replace(t) + "'"
}

// lexemeEscaper doubles the two characters a quoted lexeme must escape.
var lexemeEscaper = strings.NewReplacer(`\`, `\\`, `'`, `''`)

// maxLexemeBytes bounds the lexemes of one tsvector (PostgreSQL refuses
// more than 1 MB). Terms past it are not indexed: narrower, never wider.
const maxLexemeBytes = 1<<20 - 1

// tsvectorLiteral is the tsvector input text holding the distinct terms of
// v (a tsvector keeps each lexeme once; without positions nothing else
// counts).
func tsvectorLiteral(v string) string {
	var sb strings.Builder
	seen := map[string]bool{}
	total := 0
	for _, t := range textTerms(clean(v)) {
		if len(t) > maxLexeme || !utf8.ValidString(t) || seen[t] || total+len(t) > maxLexemeBytes {
			continue
		}
		seen[t] = true
		total += len(t)
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(quoteLexeme(t))
	}
	return sb.String()
}

// tsqueryLiteral is the tsquery input text requiring every term of v, or
// "" when v has no term.
func tsqueryLiteral(v string) string {
	terms := textTerms(clean(v))
	q := make([]string, len(terms))
	for i, t := range terms {
		q[i] = quoteLexeme(t)
	}
	return strings.Join(q, " & ")
}
