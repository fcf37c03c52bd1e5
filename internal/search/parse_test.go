package search

import (
	"net/url"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

func mustParse(t *testing.T, typ, raw string, o Options) *Request {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(typ, v, o)
	if err != nil {
		t.Fatalf("Parse(%s?%s): %v", typ, raw, err)
	}
	return r
}

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func TestParseValues(t *testing.T) {
	for _, tc := range []struct {
		name, typ, q string
		want         store.Cond
	}{
		{"string search is folded for starts-with", "Patient", "name=Ñúñez", store.Cond{Kind: store.CondString, Param: "name", Value: "nunez"}},
		{"string :exact keeps case and accents", "Patient", "name:exact=Ñúñez", store.Cond{Kind: store.CondString, Param: "name", Match: store.MatchExact, Value: "Ñúñez"}},
		{"string :contains is folded", "Patient", "family:contains=ÜL", store.Cond{Kind: store.CondString, Param: "family", Match: store.MatchContains, Value: "ul"}},
		{"token code alone matches any system", "Observation", "code=1234", store.Cond{Kind: store.CondToken, Param: "code", Code: "1234", AnySystem: true}},
		{"token system| matches any code", "Observation", "code=http://loinc.org|", store.Cond{Kind: store.CondToken, Param: "code", System: "http://loinc.org", AnyCode: true}},
		{"token :text is a folded prefix on the text", "Observation", "code:text=Héart", store.Cond{Kind: store.CondToken, Param: "code", Text: true, Code: "heart", AnySystem: true}},
		{"identifier :of-type is a derived token parameter", "Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|123", store.Cond{Kind: store.CondToken, Param: "identifier:of-type", System: "http://terminology.hl7.org/CodeSystem/v2-0203", Code: "MR|123"}},
		{"escaped bar belongs to the code", "Patient", `identifier=a\|b`, store.Cond{Kind: store.CondToken, Param: "identifier", Code: "a|b", AnySystem: true}},
		{"date eq covers the day", "Patient", "birthdate=2020-03-01", store.Cond{Kind: store.CondDate, Param: "birthdate", Lo: ms("2020-03-01T00:00:00Z"), Hi: ms("2020-03-01T23:59:59.999Z")}},
		{"date with prefix and zone", "Observation", "date=gt2020-03-01T10:00:00+01:00", store.Cond{Kind: store.CondDate, Param: "date", Prefix: store.PrefixGT, Lo: ms("2020-03-01T09:00:00Z"), Hi: ms("2020-03-01T09:00:00.999Z")}},
		{"a year covers the whole year", "Observation", "date=sa2019", store.Cond{Kind: store.CondDate, Param: "date", Prefix: store.PrefixSA, Lo: ms("2019-01-01T00:00:00Z"), Hi: ms("2019-12-31T23:59:59.999Z")}},
		{"number eq has implicit precision", "RiskAssessment", "probability=0.8", store.Cond{Kind: store.CondNumber, Param: "probability", NumLo: 0.75, NumHi: 0.85}},
		{"number gt compares the exact value", "RiskAssessment", "probability=gt0.8", store.Cond{Kind: store.CondNumber, Param: "probability", Prefix: store.PrefixGT, NumLo: 0.8, NumHi: 0.8}},
		{"quantity with system and code", "Observation", "value-quantity=lt5.4|http://unitsofmeasure.org|mg", store.Cond{Kind: store.CondQuantity, Param: "value-quantity", Prefix: store.PrefixLT, NumLo: 5.4, NumHi: 5.4, System: "http://unitsofmeasure.org", Code: "mg"}},
		{"quantity ||code matches the code in any system", "Observation", "value-quantity=lt5.4||mg", store.Cond{Kind: store.CondQuantity, Param: "value-quantity", Prefix: store.PrefixLT, NumLo: 5.4, NumHi: 5.4, Code: "mg", AnySystem: true}},
		{"reference Type/id", "Observation", "subject=Patient/123", store.Cond{Kind: store.CondReference, Param: "subject", RefType: "Patient", RefID: "123"}},
		{"reference bare id with :Type", "Observation", "subject:Patient=123", store.Cond{Kind: store.CondReference, Param: "subject", RefType: "Patient", RefID: "123"}},
		{"reference absolute URL under the base is local", "Observation", "subject=http://x/fhir/Patient/123", store.Cond{Kind: store.CondReference, Param: "subject", RefType: "Patient", RefID: "123"}},
		{"reference elsewhere is a URL", "Observation", "subject=http://y/fhir/Patient/123", store.Cond{Kind: store.CondReference, Param: "subject", URL: "http://y/fhir/Patient/123"}},
		{"reference :identifier is a derived token parameter", "Observation", "subject:identifier=urn:a|1", store.Cond{Kind: store.CondToken, Param: "subject:identifier", System: "urn:a", Code: "1"}},
		{"uri :below", "ValueSet", "url:below=http://a/b", store.Cond{Kind: store.CondURI, Param: "url", Match: store.MatchPrefix, Value: "http://a/b"}},
		{"_text takes folded words", "Observation", "_content=Héart  rate", store.Cond{Kind: store.CondText, Param: "_content", Value: "heart rate"}},
		{"_lastUpdated runs on the resources table", "Patient", "_lastUpdated=ge2020", store.Cond{Kind: store.CondLastUpdated, Param: "_lastUpdated", Prefix: store.PrefixGE, Lo: ms("2020-01-01T00:00:00Z"), Hi: ms("2020-12-31T23:59:59.999Z")}},
		{":missing names the kind's table", "Patient", "birthdate:missing=true", store.Cond{Kind: store.CondDate, Param: "birthdate", Missing: store.MissingTrue}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.typ, tc.q, Options{Base: "http://x/fhir"})
			if len(r.Query.Clauses) != 1 || len(r.Query.Clauses[0]) != 1 {
				t.Fatalf("got clauses %+v, want one condition", r.Query.Clauses)
			}
			if got := r.Query.Clauses[0][0]; !condEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func condEqual(a, b store.Cond) bool {
	return string(fhir.Marshal(toObj(a))) == string(fhir.Marshal(toObj(b)))
}

func toObj(c store.Cond) any {
	var subs []any
	if c.Sub != nil {
		subs = append(subs, c.Sub.Types)
		for _, cl := range c.Sub.Clauses {
			for _, sc := range cl {
				subs = append(subs, toObj(sc))
			}
		}
	}
	var parts []any
	for _, p := range c.Parts {
		parts = append(parts, toObj(p))
	}
	return fhir.Object{"k": int(c.Kind), "p": c.Param, "not": c.Not, "m": int(c.Missing), "s": c.System, "c": c.Code,
		"as": c.AnySystem, "ac": c.AnyCode, "t": c.Text, "match": int(c.Match), "v": c.Value, "pr": int(c.Prefix),
		"lo": c.Lo, "hi": c.Hi, "nlo": c.NumLo, "nhi": c.NumHi, "rt": c.RefType, "ri": c.RefID, "u": c.URL,
		"parts": parts, "sub": subs}
}

func TestParseStructure(t *testing.T) {
	t.Run("OR is one clause, AND is two", func(t *testing.T) {
		r := mustParse(t, "Patient", "gender=male,female&family=a&family=b", Options{})
		if len(r.Query.Clauses) != 3 || len(r.Query.Clauses[0]) != 2 && len(r.Query.Clauses[2]) != 2 {
			t.Errorf("got %+v", r.Query.Clauses)
		}
	})
	t.Run("token :not with two values keeps resources with neither", func(t *testing.T) {
		r := mustParse(t, "Patient", "gender:not=male,female", Options{})
		if len(r.Query.Clauses) != 2 || !r.Query.Clauses[0][0].Not || !r.Query.Clauses[1][0].Not {
			t.Errorf("got %+v, want two negated clauses", r.Query.Clauses)
		}
	})
	t.Run("chained search through two references", func(t *testing.T) {
		r := mustParse(t, "Observation", "subject:Patient.organization.name=acme", Options{})
		c := r.Query.Clauses[0][0]
		if c.Kind != store.CondChain || c.Param != "subject" || len(c.Sub.Types) != 1 || c.Sub.Types[0] != "Patient" {
			t.Fatalf("first link %+v", c)
		}
		c2 := c.Sub.Clauses[0][0]
		if c2.Kind != store.CondChain || c2.Param != "organization" || c2.Sub.Types[0] != "Organization" {
			t.Fatalf("second link %+v", c2)
		}
		if c3 := c2.Sub.Clauses[0][0]; c3.Kind != store.CondString || c3.Value != "acme" {
			t.Errorf("last link %+v", c3)
		}
	})
	t.Run("chain without a type keeps targets that define the parameter", func(t *testing.T) {
		r := mustParse(t, "Observation", "subject.birthdate=2000", Options{})
		c := r.Query.Clauses[0][0]
		if len(c.Sub.Types) != 1 || c.Sub.Types[0] != "Patient" {
			t.Errorf("targets %v, want [Patient]", c.Sub.Types)
		}
	})
	t.Run("_has nested", func(t *testing.T) {
		r := mustParse(t, "Patient", "_has:Observation:patient:_has:AuditEvent:entity:agent=Practitioner/1", Options{})
		c := r.Query.Clauses[0][0]
		if c.Kind != store.CondHas || c.Param != "patient" || c.Sub.Types[0] != "Observation" {
			t.Fatalf("outer %+v", c)
		}
		if c2 := c.Sub.Clauses[0][0]; c2.Kind != store.CondHas || c2.Param != "entity" || c2.Sub.Types[0] != "AuditEvent" {
			t.Errorf("inner %+v", c2)
		}
	})
	t.Run("composite ties code and value", func(t *testing.T) {
		r := mustParse(t, "Observation", "code-value-quantity=http://loinc.org|8480-6$gt100", Options{})
		c := r.Query.Clauses[0][0]
		if c.Kind != store.CondComposite || len(c.Parts) != 2 || c.Parts[0].Code != "8480-6" || c.Parts[1].Prefix != store.PrefixGT || c.Parts[1].NumLo != 100 {
			t.Errorf("got %+v", c)
		}
	})
	t.Run("sort, include, revinclude, count cap, total", func(t *testing.T) {
		r := mustParse(t, "Encounter", "_sort=-date,_id&_include=Encounter:subject&_revinclude:iterate=Condition:encounter&_count=5000&_total=accurate", Options{})
		q := r.Query
		if len(q.Sort) != 2 || !q.Sort[0].Desc || q.Sort[0].Kind != store.CondDate || q.Sort[1].Kind != store.CondID {
			t.Errorf("sort %+v", q.Sort)
		}
		if len(q.Include) != 1 || q.Include[0].Param != "subject" || len(q.RevInclude) != 1 || !q.RevInclude[0].Iterate {
			t.Errorf("includes %+v %+v", q.Include, q.RevInclude)
		}
		if r.Count != MaxCount || !q.Total {
			t.Errorf("count %d total %v", r.Count, q.Total)
		}
	})
	t.Run("system search narrows to the types that define the parameter", func(t *testing.T) {
		r := mustParse(t, "", "birthdate=2000", Options{})
		if len(r.Query.Types) == 0 || len(r.Query.Types) > 5 {
			t.Errorf("types %v", r.Query.Types)
		}
	})
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, typ, q string
		kind         fhir.Kind
	}{
		{"an unknown modifier is an error, never a wider result", "Patient", "name:sounds=x", fhir.EInvalid},
		{"token :in needs a terminology server", "Observation", "code:in=http://vs", fhir.ENotSupported},
		{"a malformed date", "Patient", "birthdate=2020-13", fhir.EInvalid},
		{"a composite with the wrong number of parts", "Observation", "code-value-quantity=1", fhir.EInvalid},
		{"chaining a non-reference", "Patient", "gender.name=x", fhir.EInvalid},
		{"a chain to a parameter no target defines", "Observation", "subject:Patient.code=x", fhir.EInvalid},
		{"_sort by an unknown parameter", "Patient", "_sort=nonsense", fhir.EInvalid},
		{"_include of a non-reference", "Patient", "_include=Patient:name", fhir.EInvalid},
		{"_filter is not supported", "Patient", "_filter=x", fhir.ENotSupported},
		{"near is not supported", "Location", "near=1|2|3", fhir.ENotSupported},
		{"a parameter of another type is an error on a system search with _type", "", "_type=Organization&birthdate=2000", fhir.EInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.q)
			_, err := Parse(tc.typ, v, Options{})
			if fhir.KindOf(err) != tc.kind {
				t.Errorf("got %v, want kind %v", err, tc.kind)
			}
		})
	}
	t.Run("unknown parameters are ignored and reported when lenient", func(t *testing.T) {
		r := mustParse(t, "Patient", "frobnicate=1", Options{})
		if len(r.Ignored) != 1 || r.Ignored[0] != "frobnicate" {
			t.Errorf("ignored %v", r.Ignored)
		}
	})
	t.Run("unknown parameters are an error when strict", func(t *testing.T) {
		_, err := Parse("Patient", url.Values{"frobnicate": {"1"}}, Options{Strict: true})
		if fhir.KindOf(err) != fhir.EInvalid {
			t.Errorf("got %v", err)
		}
	})
}
