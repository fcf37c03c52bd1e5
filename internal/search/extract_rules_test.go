package search

import (
	"slices"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

func index(t *testing.T, body string) store.Index {
	t.Helper()
	r, err := fhir.ParseObject([]byte(body), 0)
	if err != nil {
		t.Fatal(err)
	}
	ix := &Indexer{Base: "http://x/fhir", OnError: func(typ, param string, err error) { t.Errorf("%s.%s: %v", typ, param, err) }}
	return ix.Index(r["resourceType"].(string), r)
}

func msOf(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func TestExtractRules(t *testing.T) {
	t.Run("every part of a HumanName is a string row, folded and as written", func(t *testing.T) {
		idx := index(t, `{"resourceType":"Patient","name":[{"family":"Núñez","given":["José","María"],"prefix":["Dr"]}]}`)
		var got []string
		for _, s := range idx.Strings {
			if s.Param == "name" {
				got = append(got, s.Norm+"/"+s.Exact)
			}
		}
		slices.Sort(got)
		if want := []string{"dr/Dr", "jose/José", "maria/María", "nunez/Núñez"}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("a partial date covers its whole month", func(t *testing.T) {
		idx := index(t, `{"resourceType":"Patient","birthDate":"1990-02"}`)
		want := store.Date{Param: "birthdate", Lo: msOf("1990-02-01T00:00:00Z"), Hi: msOf("1990-02-28T23:59:59.999Z")}
		if !slices.Contains(idx.Dates, want) {
			t.Errorf("dates %+v lack %+v", idx.Dates, want)
		}
	})
	t.Run("a dateTime with an offset is stored in UTC to the second", func(t *testing.T) {
		idx := index(t, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2020-03-01T10:00:00+02:00"}`)
		want := store.Date{Param: "date", Lo: msOf("2020-03-01T08:00:00Z"), Hi: msOf("2020-03-01T08:00:00.999Z")}
		if !slices.Contains(idx.Dates, want) {
			t.Errorf("dates %+v lack %+v", idx.Dates, want)
		}
	})
	t.Run("an open Period reaches to the end of time", func(t *testing.T) {
		idx := index(t, `{"resourceType":"Encounter","status":"in-progress","class":{"code":"AMB"},"period":{"start":"2020-03-01"}}`)
		want := store.Date{Param: "date", Lo: msOf("2020-03-01T00:00:00Z"), Hi: maxDate}
		if !slices.Contains(idx.Dates, want) {
			t.Errorf("dates %+v lack %+v", idx.Dates, want)
		}
	})
	t.Run("references: relative, absolute under the base, elsewhere, and an identifier", func(t *testing.T) {
		idx := index(t, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"http://x/fhir/Patient/p1"},
			"performer":[{"reference":"Practitioner/d1/_history/2"},{"reference":"http://elsewhere/Practitioner/d2"},{"identifier":{"system":"urn:gmc","value":"123"}},{"reference":"#c1"}]}`)
		for _, want := range []store.Reference{{Param: "subject", Type: "Patient", ID: "p1"}, {Param: "performer", Type: "Practitioner", ID: "d1"}, {Param: "performer", URL: "http://elsewhere/Practitioner/d2"}} {
			if !slices.Contains(idx.References, want) {
				t.Errorf("references %+v lack %+v", idx.References, want)
			}
		}
		for _, r := range idx.References {
			if r.URL == "#c1" {
				t.Errorf("a contained reference was indexed: %+v", r)
			}
		}
		if want := (store.Token{Param: "performer:identifier", System: "urn:gmc", Code: "123"}); !slices.Contains(idx.Tokens, want) {
			t.Errorf("tokens %+v lack %+v", idx.Tokens, want)
		}
	})
	t.Run("an Observation belongs to its subject's compartment, a Patient to its own", func(t *testing.T) {
		idx := index(t, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"performer":[{"reference":"Patient/p2"}]}`)
		if !slices.Equal(idx.Compartments, []store.Compartment{{Type: "Patient", ID: "p1"}, {Type: "Patient", ID: "p2"}}) &&
			!slices.Equal(idx.Compartments, []store.Compartment{{Type: "Patient", ID: "p2"}, {Type: "Patient", ID: "p1"}}) {
			t.Errorf("compartments %+v", idx.Compartments)
		}
		idx = index(t, `{"resourceType":"Patient","id":"p9"}`)
		if !slices.Equal(idx.Compartments, []store.Compartment{{Type: "Patient", ID: "p9"}}) {
			t.Errorf("compartments %+v", idx.Compartments)
		}
	})
	t.Run("composite rows tie each component's code to its own value", func(t *testing.T) {
		idx := index(t, `{"resourceType":"Observation","status":"final","code":{"text":"bp"},"component":[
			{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":130,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
			{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":85,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`)
		pairs := map[string]float64{}
		for _, c := range idx.Composites {
			if c.Param == "component-code-value-quantity" {
				pairs[c.Parts[0].Code] = c.Parts[1].Lo
			}
		}
		if len(pairs) != 2 || pairs["8480-6"] != 130 || pairs["8462-4"] != 85 {
			t.Errorf("got %v, want 8480-6 with 130 and 8462-4 with 85 only", pairs)
		}
	})
	t.Run("identifier type is indexed for :of-type", func(t *testing.T) {
		idx := index(t, `{"resourceType":"Patient","identifier":[{"type":{"coding":[{"system":"urn:t","code":"MR"}]},"value":"42"}]}`)
		if want := (store.Token{Param: "identifier:of-type", System: "urn:t", Code: "MR|42"}); !slices.Contains(idx.Tokens, want) {
			t.Errorf("tokens %+v lack %+v", idx.Tokens, want)
		}
	})
	t.Run("_text indexes the narrative without markup", func(t *testing.T) {
		idx := index(t, `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><b>Ann</b> Ñ&amp;B</div>"}}`)
		if !slices.Contains(idx.Texts, store.Text{Param: "_text", Value: "  ann  n&b "}) {
			t.Errorf("texts %+v", idx.Texts)
		}
	})
}

func TestFold(t *testing.T) {
	for in, want := range map[string]string{"Núñez": "nunez", "ÅSE": "ase", "plain": "plain", "Straße": "straße", "Ǆ": "ǆ"} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDateRange(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi string
		ok     bool
	}{
		{"2020", "2020-01-01T00:00:00Z", "2020-12-31T23:59:59.999Z", true},
		{"2020-02", "2020-02-01T00:00:00Z", "2020-02-29T23:59:59.999Z", true},
		{"2020-02-03", "2020-02-03T00:00:00Z", "2020-02-03T23:59:59.999Z", true},
		{"2020-02-03T10:20Z", "2020-02-03T10:20:00Z", "2020-02-03T10:20:59.999Z", true},
		{"2020-02-03T10:20:30.5-05:00", "2020-02-03T15:20:30.5Z", "2020-02-03T15:20:30.5Z", true},
		{"2020-13", "", "", false},
		{"20", "", "", false},
		{"2020-02-03T10", "", "", false},
	} {
		lo, hi, ok := dateRange(tc.in)
		if ok != tc.ok {
			t.Errorf("%s: ok %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if ok && (lo != msOf(tc.lo) || hi != msOf(tc.hi)) {
			t.Errorf("%s: got [%d, %d], want [%s, %s]", tc.in, lo, hi, tc.lo, tc.hi)
		}
	}
}
