package engine

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// This file is the search suite (issue 4): one engine-level test per rule of
// FHIR R4 search (search.html), run on every backend. Expectations are
// written from the specification over a small fixed record, not from the
// code's output.

const (
	loinc    = "http://loinc.org"
	ucum     = "http://unitsofmeasure.org"
	confCS   = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	v20203   = "http://terminology.hl7.org/CodeSystem/v2-0203"
	rxxSrc   = "https://node.example/ods/RXX"
	nhsNoSys = "https://fhir.nhs.uk/Id/nhs-number"
)

// searchFixture is the record every search test runs over, written with
// known ids.
var searchFixture = []struct{ typ, id, body string }{
	{"Organization", "org1", `{"resourceType":"Organization","meta":{"profile":["http://example.org/StructureDefinition/org"]},"name":"Acme Health"}`},
	{"Organization", "org2", `{"resourceType":"Organization","meta":{"tag":[{"system":"urn:tags","code":"vip"}]},"name":"Zeta Care"}`},
	{"ValueSet", "vs1", `{"resourceType":"ValueSet","url":"http://example.org/fhir/ValueSet/a/b","status":"active"}`},
	{"RiskAssessment", "ra1", `{"resourceType":"RiskAssessment","status":"final","subject":{"reference":"Patient/p3"},"prediction":[{"probabilityDecimal":0.8}]}`},
	{"Patient", "p1", `{"resourceType":"Patient","name":[{"family":"Núñez","given":["José"]}],"gender":"male","birthDate":"1980-05-15",
		"identifier":[{"system":"` + nhsNoSys + `","value":"9434765919"},{"type":{"coding":[{"system":"` + v20203 + `","code":"MR"}]},"system":"urn:mrn","value":"MR1"}],
		"managingOrganization":{"reference":"Organization/org1"}}`},
	{"Patient", "p2", `{"resourceType":"Patient","meta":{"security":[{"system":"` + confCS + `","code":"R"}]},"name":[{"family":"Smith","given":["Anna"]}],"gender":"female","birthDate":"1990-06-01",
		"managingOrganization":{"reference":"Organization/org2"}}`},
	{"Patient", "p3", `{"resourceType":"Patient","name":[{"family":"Smithson"}],"birthDate":"1990-02"}`},
	{"Observation", "o1", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"` + loinc + `","code":"8480-6","display":"Systolic blood pressure"}]},
		"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2020-03-01T10:00:00Z","valueQuantity":{"value":120,"unit":"mmHg","system":"` + ucum + `","code":"mm[Hg]"}}`},
	{"Observation", "o2", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"` + loinc + `","code":"8480-6","display":"Systolic blood pressure"}]},
		"subject":{"reference":"Patient/p1"},"effectivePeriod":{"start":"2020-03-02T08:00:00Z","end":"2020-03-02T09:00:00Z"},"valueQuantity":{"value":150,"unit":"mmHg","system":"` + ucum + `","code":"mm[Hg]"}}`},
	{"Observation", "o3", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"` + loinc + `","code":"8867-4","display":"Heart rate"}]},
		"subject":{"reference":"Patient/p2"},"effectiveDateTime":"2021-01-01","valueQuantity":{"value":72,"unit":"/min","system":"` + ucum + `","code":"/min"}}`},
	{"Observation", "o4", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"` + loinc + `","code":"85354-9","display":"Blood pressure panel"}]},
		"subject":{"reference":"Patient/p2"},"effectiveDateTime":"2021-02-01",
		"component":[{"code":{"coding":[{"system":"` + loinc + `","code":"8480-6"}]},"valueQuantity":{"value":130,"system":"` + ucum + `","code":"mm[Hg]"}},
		{"code":{"coding":[{"system":"` + loinc + `","code":"8462-4"}]},"valueQuantity":{"value":85,"system":"` + ucum + `","code":"mm[Hg]"}}]}`},
	{"Observation", "o5", `{"resourceType":"Observation","meta":{"source":"` + rxxSrc + `#req1"},"status":"final","code":{"text":"Water quality"},"performer":[{"identifier":{"system":"urn:gmc","value":"G1"}}]}`},
	{"Observation", "o6", `{"resourceType":"Observation","status":"final","code":{"text":"Seen with"},"subject":{"reference":"Patient/p1"},"performer":[{"reference":"Patient/p2"}]}`},
	{"Observation", "o7", `{"resourceType":"Observation","meta":{"security":[{"system":"` + confCS + `","code":"R"}]},"status":"final","code":{"text":"Restricted note"},"subject":{"reference":"Patient/p1"}}`},
	{"Encounter", "e1", `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},
		"subject":{"reference":"Patient/p1"},"period":{"start":"2020-03-01T09:00:00Z","end":"2020-03-01T11:00:00Z"},"serviceProvider":{"reference":"Organization/org1"}}`},
	{"Condition", "c1", `{"resourceType":"Condition","code":{"text":"Hypertension"},"subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"}}`},
}

func loadSearchFixture(t *testing.T, e *Engine) {
	t.Helper()
	for _, r := range searchFixture {
		body := strings.Replace(r.body, `{"resourceType":"`+r.typ+`"`, `{"resourceType":"`+r.typ+`","id":"`+r.id+`"`, 1)
		if _, err := e.Update(context.Background(), r.typ, r.id, []byte(body), WriteOptions{}); err != nil {
			t.Fatalf("write %s/%s: %v", r.typ, r.id, err)
		}
	}
}

// entries splits a searchset into "Type/id" of matches and of includes.
func entries(t *testing.T, b fhir.Object) (match, include []string) {
	t.Helper()
	list, _ := b["entry"].([]any)
	for _, en := range list {
		o := en.(fhir.Object)
		mode := o["search"].(fhir.Object)["mode"]
		if mode == "outcome" {
			continue
		}
		var r fhir.Object
		switch res := o["resource"].(type) {
		case json.RawMessage:
			if err := json.Unmarshal(res, &r); err != nil {
				t.Fatal(err)
			}
		case fhir.Object:
			r = res
		}
		ref := r["resourceType"].(string) + "/" + r["id"].(string)
		if mode == "match" {
			match = append(match, ref)
		} else {
			include = append(include, ref)
		}
	}
	return match, include
}

func link(b fhir.Object, rel string) string {
	for _, l := range b["link"].([]any) {
		if l.(fhir.Object)["relation"] == rel {
			return l.(fhir.Object)["url"].(string)
		}
	}
	return ""
}

func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func mustSearch(t *testing.T, ctx context.Context, e *Engine, typ, raw string) fhir.Object {
	t.Helper()
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Search(ctx, typ, q)
	if err != nil {
		t.Fatalf("search %s?%s: %v", typ, raw, err)
	}
	return b
}

// allPages follows next links and returns every match, in order.
func allPages(t *testing.T, ctx context.Context, e *Engine, typ, raw string) []string {
	t.Helper()
	var out []string
	b := mustSearch(t, ctx, e, typ, raw)
	for pages := 0; ; pages++ {
		m, _ := entries(t, b)
		out = append(out, m...)
		next := link(b, "next")
		if next == "" {
			return out
		}
		if pages > 50 {
			t.Fatalf("more than 50 pages")
		}
		u, err := url.Parse(next)
		if err != nil {
			t.Fatal(err)
		}
		b = mustSearch(t, ctx, e, typ, u.RawQuery)
	}
}

func TestSearchRules(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		loadSearchFixture(t, e)
		for _, tc := range []struct {
			name, typ, q string
			want         []string
		}{
			// string (search.html 3.1.1.4.6)
			{"string search is accent-insensitive", "Patient", "family=nunez", []string{"Patient/p1"}},
			{"string search is a case-insensitive starts-with", "Patient", "family=SMI", []string{"Patient/p2", "Patient/p3"}},
			{"string :exact is case- and accent-sensitive", "Patient", "family:exact=Núñez", []string{"Patient/p1"}},
			{"string :exact does not fold", "Patient", "family:exact=Nunez", nil},
			{"string :contains matches inside the value", "Patient", "family:contains=ithso", []string{"Patient/p3"}},
			{"name matches any part of a HumanName", "Patient", "name=jose", []string{"Patient/p1"}},
			{"OR within a parameter (comma)", "Patient", "family=nunez,smithson", []string{"Patient/p1", "Patient/p3"}},
			{"AND across repeats of a parameter", "Patient", "family=smith&family=smiths", []string{"Patient/p3"}},
			// token (3.1.1.4.10)
			{"token code matches in any system", "Patient", "gender=male", []string{"Patient/p1"}},
			{"token :not includes resources without the element", "Patient", "gender:not=male", []string{"Patient/p2", "Patient/p3"}},
			{"token :not with two values excludes both", "Patient", "gender:not=male,female", []string{"Patient/p3"}},
			{"token system|code", "Patient", "identifier=" + nhsNoSys + "|9434765919", []string{"Patient/p1"}},
			{"token system|code does not match another system", "Patient", "identifier=urn:other|9434765919", nil},
			{"identifier :of-type matches type and value", "Patient", "identifier:of-type=" + v20203 + "|MR|MR1", []string{"Patient/p1"}},
			{"token :text matches the display by prefix", "Observation", "code:text=systolic", []string{"Observation/o1", "Observation/o2"}},
			{"token :text matches CodeableConcept.text", "Observation", "code:text=water", []string{"Observation/o5"}},
			{":missing=true finds resources without the element", "Patient", "gender:missing=true", []string{"Patient/p3"}},
			{":missing=false finds resources with it", "Patient", "gender:missing=false", []string{"Patient/p1", "Patient/p2"}},
			// date (3.1.1.4.2)
			{"date eq matches a period that lies within the day", "Observation", "date=2020-03-02", []string{"Observation/o2"}},
			{"date eq matches an instant within the day", "Observation", "date=2020-03-01", []string{"Observation/o1"}},
			{"date lt takes resources starting before the value", "Observation", "date=lt2020-03-02", []string{"Observation/o1"}},
			{"date ge takes resources reaching the value or later", "Observation", "date=ge2020-03-02", []string{"Observation/o2", "Observation/o3", "Observation/o4"}},
			{"date sa takes resources starting after the whole year", "Observation", "date=sa2020", []string{"Observation/o3", "Observation/o4"}},
			{"date eb takes resources ending before the value", "Observation", "date=eb2021", []string{"Observation/o1", "Observation/o2"}},
			{"a year contains a partial date of one of its months", "Patient", "birthdate=1990", []string{"Patient/p2", "Patient/p3"}},
			{"a day does not contain a partial date covering the month", "Patient", "birthdate=1990-02-10", nil},
			{"date with a time zone is compared as an instant", "Observation", "date=2020-03-01T11:00:00%2B01:00", []string{"Observation/o1"}},
			// quantity (3.1.1.4.8) and number
			{"quantity eq has the implicit precision of the value", "Observation", "value-quantity=120", []string{"Observation/o1"}},
			{"quantity gt", "Observation", "value-quantity=gt130", []string{"Observation/o2"}},
			{"quantity with system and code", "Observation", "value-quantity=120|" + ucum + "|mm[Hg]", []string{"Observation/o1"}},
			{"quantity with another unit does not match", "Observation", "value-quantity=120||mg", nil},
			// reference (3.1.1.4.7)
			{"reference Type/id", "Observation", "subject=Patient/p1", []string{"Observation/o1", "Observation/o2", "Observation/o6", "Observation/o7"}},
			{"reference bare id with :Type", "Observation", "subject:Patient=p2", []string{"Observation/o3", "Observation/o4"}},
			{"reference bare id", "Observation", "subject=p2", []string{"Observation/o3", "Observation/o4"}},
			{"reference absolute URL under the server's base", "Observation", "subject=" + url.QueryEscape(testBase+"/Patient/p2"), []string{"Observation/o3", "Observation/o4"}},
			// chains and _has (3.1.1.4.7.2)
			{"chained search through one reference", "Observation", "subject:Patient.family=smith", []string{"Observation/o3", "Observation/o4"}},
			{"chained search through two references", "Observation", "subject:Patient.organization.name=acme", []string{"Observation/o1", "Observation/o2", "Observation/o6", "Observation/o7"}},
			{"_has selects by resources that refer to the match", "Patient", "_has:Observation:subject:code=8867-4", []string{"Patient/p2"}},
			{"_has nested", "Organization", "_has:Patient:organization:_has:Observation:subject:code=8867-4", []string{"Organization/org2"}},
			// composite (3.1.1.4.9)
			{"composite ties code and value to the same component", "Observation", "component-code-value-quantity=" + loinc + "|8480-6$gt125", []string{"Observation/o4"}},
			{"composite does not mix one component's code with another's value", "Observation", "component-code-value-quantity=" + loinc + "|8462-4$gt125", nil},
			// union parameters (R4 defines combo-* as the plain parameter together with its component-* twin)
			{"combo-code matches the code or a component's code", "Observation", "combo-code=8480-6", []string{"Observation/o1", "Observation/o2", "Observation/o4"}},
			{"combo-code with several values is an OR over both", "Observation", "combo-code=8462-4,8867-4", []string{"Observation/o3", "Observation/o4"}},
			{"combo-code :not excludes a match in the code or any component", "Observation", "combo-code:not=8480-6", []string{"Observation/o3", "Observation/o5", "Observation/o6", "Observation/o7"}},
			{"combo-value-quantity matches the value or a component's value", "Observation", "combo-value-quantity=gt125", []string{"Observation/o2", "Observation/o4"}},
			{"combo-value-quantity :missing=true has neither a value nor a component value", "Observation", "combo-value-quantity:missing=true", []string{"Observation/o5", "Observation/o6", "Observation/o7"}},
			{"combo-value-quantity :missing=false has one or the other", "Observation", "combo-value-quantity:missing=false", []string{"Observation/o1", "Observation/o2", "Observation/o3", "Observation/o4"}},
			{"combo composite ties code and value of the observation or of one component", "Observation", "combo-code-value-quantity=" + loinc + "|8480-6$gt125", []string{"Observation/o2", "Observation/o4"}},
			{"combo composite does not mix a component's code with the observation's value", "Observation", "combo-code-value-quantity=" + loinc + "|85354-9$gt80", nil},
			{"combo-code chained from a patient", "Patient", "_has:Observation:subject:combo-code=8462-4", []string{"Patient/p2"}},
			{"token |code matches codes without a system", "Patient", "gender=|male", []string{"Patient/p1"}},
			{"date ne takes rows not inside the day", "Observation", "date=ne2020-03-01", []string{"Observation/o2", "Observation/o3", "Observation/o4"}},
			{"date at minute precision contains an instant of that minute", "Observation", "date=2020-03-01T10:00Z", []string{"Observation/o1"}},
			{"date eq matches an encounter period within the day", "Encounter", "date=2020-03-01", []string{"Encounter/e1"}},
			{"number eq has the implicit precision of the value", "RiskAssessment", "probability=0.8", []string{"RiskAssessment/ra1"}},
			{"number eq outside the implicit range does not match", "RiskAssessment", "probability=0.85", nil},
			{"number gt compares the exact value", "RiskAssessment", "probability=gt0.75", []string{"RiskAssessment/ra1"}},
			{"quantity range as two ANDed prefixes", "Observation", "value-quantity=ge120&value-quantity=le150", []string{"Observation/o1", "Observation/o2"}},
			{"reference :identifier matches a reference by identifier", "Observation", "performer:identifier=urn:gmc|G1", []string{"Observation/o5"}},
			{"uri matches exactly by default", "ValueSet", "url=http://example.org/fhir/ValueSet/a/b", []string{"ValueSet/vs1"}},
			{"uri exact does not match a prefix", "ValueSet", "url=http://example.org/fhir/ValueSet", nil},
			{"uri :below matches values under the given one", "ValueSet", "url:below=http://example.org/fhir/ValueSet", []string{"ValueSet/vs1"}},
			{"uri :above matches values the given one is under", "ValueSet", "url:above=http://example.org/fhir/ValueSet/a/b/c", []string{"ValueSet/vs1"}},
			{"_tag", "Organization", "_tag=urn:tags|vip", []string{"Organization/org2"}},
			{"_profile", "Organization", "_profile=http://example.org/StructureDefinition/org", []string{"Organization/org1"}},
			{"system search over several types", "", "_type=Patient,Organization&_id=p1,org1", []string{"Patient/p1", "Organization/org1"}},
			// common parameters
			{"_id", "Patient", "_id=p1,p3", []string{"Patient/p1", "Patient/p3"}},
			{"_security", "Patient", "_security=" + confCS + "|R", []string{"Patient/p2"}},
			{"_source matches meta.source as written", "Observation", "_source=" + url.QueryEscape(rxxSrc+"#req1"), []string{"Observation/o5"}},
			{"_lastUpdated", "Organization", "_lastUpdated=gt2000", []string{"Organization/org1", "Organization/org2"}},
			{"_content matches words anywhere in the resource", "Patient", "_content=jose", []string{"Patient/p1"}},
			{"system search with _type", "", "_type=Organization&name=zeta", []string{"Organization/org2"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := mustSearch(t, ctx, e, tc.typ, tc.q)
				if got, _ := entries(t, b); !sameSet(got, tc.want) {
					t.Errorf("%s?%s: got %v, want %v", tc.typ, tc.q, got, tc.want)
				}
			})
		}

		t.Run("_sort by a string ascending, then descending", func(t *testing.T) {
			got, _ := entries(t, mustSearch(t, ctx, e, "Patient", "_sort=family"))
			if want := []string{"Patient/p1", "Patient/p2", "Patient/p3"}; !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			got, _ = entries(t, mustSearch(t, ctx, e, "Patient", "_sort=-family"))
			if want := []string{"Patient/p3", "Patient/p2", "Patient/p1"}; !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
		t.Run("_sort by a union parameter takes the rows of every member", func(t *testing.T) {
			// smallest value: o3 72, o4 85 (a component), o1 120, o2 150; then those without
			got, _ := entries(t, mustSearch(t, ctx, e, "Observation", "_sort=combo-value-quantity"))
			if len(got) != 7 || !slices.Equal(got[:4], []string{"Observation/o3", "Observation/o4", "Observation/o1", "Observation/o2"}) {
				t.Errorf("got %v, want o3 o4 o1 o2 then those without a value", got)
			}
			// largest value: o2 150, o4 130 (a component), o1 120, o3 72
			got, _ = entries(t, mustSearch(t, ctx, e, "Observation", "_sort=-combo-value-quantity"))
			if len(got) != 7 || !slices.Equal(got[:4], []string{"Observation/o2", "Observation/o4", "Observation/o1", "Observation/o3"}) {
				t.Errorf("got %v, want o2 o4 o1 o3 then those without a value", got)
			}
		})
		t.Run("_sort by date descending puts resources without a date last", func(t *testing.T) {
			got, _ := entries(t, mustSearch(t, ctx, e, "Observation", "_sort=-date"))
			if len(got) != 7 || !slices.Equal(got[:4], []string{"Observation/o4", "Observation/o3", "Observation/o2", "Observation/o1"}) {
				t.Errorf("got %v, want o4 o3 o2 o1 then the undated", got)
			}
		})
		t.Run("a reference written as an absolute URL under the base is the local resource", func(t *testing.T) {
			body := `{"resourceType":"Observation","id":"abs","status":"final","code":{"text":"abs"},"subject":{"reference":"` + testBase + `/Patient/p3"}}`
			if _, err := e.Update(ctx, "Observation", "abs", []byte(body), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			defer e.Delete(ctx, "Observation", "abs", WriteOptions{})
			if got, _ := entries(t, mustSearch(t, ctx, e, "Observation", "subject=Patient/p3")); !sameSet(got, []string{"Observation/abs"}) {
				t.Errorf("got %v, want Observation/abs", got)
			}
			b, err := e.CompartmentSearch(ctx, "Patient", "p3", "Observation", url.Values{})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := entries(t, b); !sameSet(got, []string{"Observation/abs"}) {
				t.Errorf("compartment of p3: got %v, want Observation/abs", got)
			}
		})
		t.Run("_sort by _lastUpdated follows write order", func(t *testing.T) {
			got, _ := entries(t, mustSearch(t, ctx, e, "Organization", "_sort=-_lastUpdated"))
			if want := []string{"Organization/org2", "Organization/org1"}; !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
		t.Run("_include with * follows every reference parameter", func(t *testing.T) {
			_, inc := entries(t, mustSearch(t, ctx, e, "Observation", "_id=o6&_include=Observation:*"))
			if !sameSet(inc, []string{"Patient/p1", "Patient/p2"}) {
				t.Errorf("includes %v, want Patient/p1 and Patient/p2", inc)
			}
		})
		t.Run("_total=none gives no total", func(t *testing.T) {
			if b := mustSearch(t, ctx, e, "Patient", "_total=none"); b["total"] != nil {
				t.Errorf("total %v, want none", b["total"])
			}
		})
		t.Run("_count above the cap is capped and says so in the links", func(t *testing.T) {
			b := mustSearch(t, ctx, e, "Patient", "_count=100000")
			if !strings.Contains(link(b, "self"), "_count=1000") {
				t.Errorf("self link %q, want _count=1000", link(b, "self"))
			}
		})
		t.Run("_include adds the referenced resource once", func(t *testing.T) {
			m, inc := entries(t, mustSearch(t, ctx, e, "Observation", "subject=Patient/p1&_include=Observation:subject"))
			if len(m) != 4 || !sameSet(inc, []string{"Patient/p1"}) {
				t.Errorf("matches %v includes %v, want 4 matches and Patient/p1 once", m, inc)
			}
		})
		t.Run("_revinclude adds the resources that refer to the match", func(t *testing.T) {
			_, inc := entries(t, mustSearch(t, ctx, e, "Encounter", "_id=e1&_revinclude=Condition:encounter"))
			if !sameSet(inc, []string{"Condition/c1"}) {
				t.Errorf("includes %v, want Condition/c1", inc)
			}
		})
		t.Run("_include:iterate follows the included resources' references", func(t *testing.T) {
			_, inc := entries(t, mustSearch(t, ctx, e, "Condition", "_id=c1&_include=Condition:encounter&_include:iterate=Encounter:service-provider"))
			if !sameSet(inc, []string{"Encounter/e1", "Organization/org1"}) {
				t.Errorf("includes %v, want Encounter/e1 and Organization/org1", inc)
			}
		})
		t.Run("_total accurate counts every match, not the page", func(t *testing.T) {
			b := mustSearch(t, ctx, e, "Observation", "_count=2&_total=accurate")
			if b["total"] != 7 {
				t.Errorf("total %v, want 7", b["total"])
			}
		})
		t.Run("_summary=count gives the total and no entries", func(t *testing.T) {
			b := mustSearch(t, ctx, e, "Patient", "_summary=count")
			if m, _ := entries(t, b); b["total"] != 3 || len(m) != 0 {
				t.Errorf("total %v entries %v, want 3 and none", b["total"], m)
			}
		})
		t.Run("_elements keeps the listed elements and marks the resource SUBSETTED", func(t *testing.T) {
			b := mustSearch(t, ctx, e, "Patient", "_id=p1&_elements=gender")
			r := b["entry"].([]any)[0].(fhir.Object)["resource"].(fhir.Object)
			s := string(fhir.Marshal(r))
			if r["gender"] != "male" || r["name"] != nil || !strings.Contains(s, "SUBSETTED") {
				t.Errorf("got %s, want gender, no name, a SUBSETTED tag", s)
			}
		})
		t.Run("paging returns every match exactly once with first, next and self links", func(t *testing.T) {
			b := mustSearch(t, ctx, e, "Observation", "_count=3")
			if link(b, "self") == "" || link(b, "next") == "" || link(b, "first") == "" {
				t.Errorf("links %v, want self, first and next", b["link"])
			}
			got := allPages(t, ctx, e, "Observation", "_count=3")
			if len(got) != 7 || !sameSet(got, []string{"Observation/o1", "Observation/o2", "Observation/o3", "Observation/o4", "Observation/o5", "Observation/o6", "Observation/o7"}) {
				t.Errorf("got %v, want the 7 observations once each", got)
			}
		})
		t.Run("the previous link returns the page before", func(t *testing.T) {
			b1 := mustSearch(t, ctx, e, "Observation", "_count=2&_sort=_id")
			p1, _ := entries(t, b1)
			u, _ := url.Parse(link(b1, "next"))
			b2 := mustSearch(t, ctx, e, "Observation", u.RawQuery)
			if link(b2, "previous") == "" {
				t.Fatalf("page 2 has no previous link: %v", b2["link"])
			}
			u, _ = url.Parse(link(b2, "previous"))
			back, _ := entries(t, mustSearch(t, ctx, e, "Observation", u.RawQuery))
			if !slices.Equal(back, p1) {
				t.Errorf("previous of page 2 gave %v, want page 1 %v", back, p1)
			}
		})
		t.Run("_summary=true keeps summary elements and marks the resource SUBSETTED", func(t *testing.T) {
			body := `{"resourceType":"Patient","id":"ps","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Pat Summers</div>"},` +
				`"name":[{"family":"Summers"}],"maritalStatus":{"text":"married"}}`
			if _, err := e.Update(ctx, "Patient", "ps", []byte(body), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			defer e.Delete(ctx, "Patient", "ps", WriteOptions{})
			b := mustSearch(t, ctx, e, "Patient", "_id=ps&_summary=true")
			r := b["entry"].([]any)[0].(fhir.Object)["resource"].(fhir.Object)
			s := string(fhir.Marshal(r))
			// R4 marks Patient.name as a summary element, and neither the
			// narrative nor maritalStatus.
			if r["name"] == nil || r["text"] != nil || r["maritalStatus"] != nil || !strings.Contains(s, "SUBSETTED") {
				t.Errorf("got %s", s)
			}
		})
		t.Run("a modifier the server does not know is an error, never a wider result", func(t *testing.T) {
			_, err := e.Search(ctx, "Patient", url.Values{"family:sounds-like": {"smith"}})
			wantKind(t, err, fhir.EInvalid)
		})
		t.Run("paging is stable when a resource is inserted between pages", func(t *testing.T) {
			b := mustSearch(t, ctx, e, "Patient", "_sort=family&_count=1")
			first, _ := entries(t, b)
			// A patient sorting before every other one arrives between pages.
			if _, err := e.Update(ctx, "Patient", "p0", []byte(`{"resourceType":"Patient","id":"p0","name":[{"family":"Aaronson"}]}`), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			defer e.Delete(ctx, "Patient", "p0", WriteOptions{})
			u, _ := url.Parse(link(b, "next"))
			rest := allPages(t, ctx, e, "Patient", u.RawQuery)
			got := append(first, rest...)
			if want := []string{"Patient/p1", "Patient/p2", "Patient/p3"}; !slices.Equal(got, want) {
				t.Errorf("got %v, want %v (nothing skipped or repeated)", got, want)
			}
		})
		t.Run("compartment search finds the patient's resources of a type", func(t *testing.T) {
			b, err := e.CompartmentSearch(ctx, "Patient", "p2", "Observation", url.Values{})
			if err != nil {
				t.Fatal(err)
			}
			// o6 has p2 as performer, which puts it in p2's compartment (R4 CompartmentDefinition).
			if got, _ := entries(t, b); !sameSet(got, []string{"Observation/o3", "Observation/o4", "Observation/o6"}) {
				t.Errorf("got %v", got)
			}
		})
		t.Run("$everything returns the compartment and what it refers to", func(t *testing.T) {
			b, err := e.Everything(ctx, "p1", url.Values{"_count": {"100"}})
			if err != nil {
				t.Fatal(err)
			}
			m, inc := entries(t, b)
			want := []string{"Patient/p1", "Observation/o1", "Observation/o2", "Observation/o6", "Observation/o7", "Encounter/e1", "Condition/c1"}
			if !sameSet(m, want) {
				t.Errorf("matches %v, want %v", m, want)
			}
			if !slices.Contains(inc, "Organization/org1") {
				t.Errorf("includes %v lack the managing organisation", inc)
			}
		})
		t.Run("$everything start keeps resources dated from the start and the undated", func(t *testing.T) {
			b, err := e.Everything(ctx, "p1", url.Values{"start": {"2020-03-02"}, "_type": {"Observation"}})
			if err != nil {
				t.Fatal(err)
			}
			if m, _ := entries(t, b); !sameSet(m, []string{"Observation/o2", "Observation/o6", "Observation/o7"}) {
				t.Errorf("got %v", m)
			}
		})
		t.Run("$everything end keeps resources dated up to the end and the undated", func(t *testing.T) {
			b, err := e.Everything(ctx, "p1", url.Values{"end": {"2020-03-01"}, "_type": {"Observation"}})
			if err != nil {
				t.Fatal(err)
			}
			if m, _ := entries(t, b); !sameSet(m, []string{"Observation/o1", "Observation/o6", "Observation/o7"}) {
				t.Errorf("got %v", m)
			}
		})
		t.Run("$everything _since keeps resources updated since the instant", func(t *testing.T) {
			b, err := e.Everything(ctx, "p1", url.Values{"_since": {"2999-01-01T00:00:00Z"}})
			if err != nil {
				t.Fatal(err)
			}
			if m, _ := entries(t, b); len(m) != 0 {
				t.Errorf("got %v, want nothing updated after 2999", m)
			}
			b, err = e.Everything(ctx, "p1", url.Values{"_since": {"2000-01-01T00:00:00Z"}, "_type": {"Encounter"}})
			if err != nil {
				t.Fatal(err)
			}
			if m, _ := entries(t, b); !sameSet(m, []string{"Encounter/e1"}) {
				t.Errorf("got %v, want Encounter/e1", m)
			}
		})
		t.Run("$everything pages with next links", func(t *testing.T) {
			b, err := e.Everything(ctx, "p1", url.Values{"_count": {"3"}})
			if err != nil {
				t.Fatal(err)
			}
			next := link(b, "next")
			if !strings.Contains(next, "/Patient/p1/$everything?") || !strings.Contains(next, "_cursor=") {
				t.Errorf("next link %q", next)
			}
			seen, _ := entries(t, b)
			for next != "" {
				u, _ := url.Parse(next)
				b, err = e.Everything(ctx, "p1", u.Query())
				if err != nil {
					t.Fatal(err)
				}
				m, _ := entries(t, b)
				seen = append(seen, m...)
				next = link(b, "next")
				if first := link(b, "first"); first == "" || strings.Contains(first, "_cursor") {
					t.Errorf("first link %q, want one without a cursor", first)
				}
			}
			if want := []string{"Patient/p1", "Observation/o1", "Observation/o2", "Observation/o6", "Observation/o7", "Encounter/e1", "Condition/c1"}; !sameSet(seen, want) {
				t.Errorf("pages gave %v, want %v", seen, want)
			}
		})
	})
}

// TestSearchAccessFilter checks issue 4's access predicate: nothing a
// filter withholds may appear through matches, includes, revincludes,
// chains, _has, totals, page boundaries, reads or $everything.
func TestSearchAccessFilter(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		loadSearchFixture(t, e)
		// The predicate: p1's record and resources outside any patient's
		// record, never anything labelled restricted (R).
		deny := []store.Label{{System: confCS, Code: "R"}}
		ctx := WithAccess(context.Background(), &store.Filter{Grants: []store.Grant{
			{Patients: []string{"p1"}, DenyLabels: deny},
			{NoPatient: true, DenyLabels: deny},
		}})
		visibleObs := []string{"Observation/o1", "Observation/o2", "Observation/o5", "Observation/o6"}
		for _, tc := range []struct {
			name, typ, q string
			want         []string
		}{
			{"matches are limited to the allowed record", "Observation", "", visibleObs},
			{"a denied label hides a resource in an allowed record", "Observation", "subject=Patient/p1", []string{"Observation/o1", "Observation/o2", "Observation/o6"}},
			{"a chain does not pass through a withheld resource", "Observation", "performer:Patient.family=smith", nil},
			{"_has does not test withheld resources", "Organization", "_has:Patient:organization:family=smith", nil},
			{"resources outside any record stay visible", "Organization", "", []string{"Organization/org1", "Organization/org2"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := mustSearch(t, ctx, e, tc.typ, tc.q)
				if got, _ := entries(t, b); !sameSet(got, tc.want) {
					t.Errorf("%s?%s: got %v, want %v", tc.typ, tc.q, got, tc.want)
				}
			})
		}
		t.Run("_total does not count filtered resources", func(t *testing.T) {
			b := mustSearch(t, ctx, e, "Observation", "_total=accurate&_count=1")
			if b["total"] != len(visibleObs) {
				t.Errorf("total %v, want %d", b["total"], len(visibleObs))
			}
		})
		t.Run("page boundaries do not reveal withheld resources", func(t *testing.T) {
			if got := allPages(t, ctx, e, "Observation", "_count=1"); !sameSet(got, visibleObs) {
				t.Errorf("got %v, want %v", got, visibleObs)
			}
		})
		t.Run("_include does not add a withheld target", func(t *testing.T) {
			_, inc := entries(t, mustSearch(t, ctx, e, "Observation", "_id=o6&_include=Observation:performer&_include=Observation:subject"))
			if !sameSet(inc, []string{"Patient/p1"}) {
				t.Errorf("includes %v, want only Patient/p1", inc)
			}
		})
		t.Run("_revinclude respects the access filter", func(t *testing.T) {
			_, inc := entries(t, mustSearch(t, ctx, e, "Organization", "_revinclude=Patient:organization"))
			if !sameSet(inc, []string{"Patient/p1"}) {
				t.Errorf("includes %v, want only Patient/p1", inc)
			}
		})
		t.Run("_include:iterate does not reach through a withheld resource", func(t *testing.T) {
			_, inc := entries(t, mustSearch(t, ctx, e, "Observation", "_id=o6&_include=Observation:performer&_include:iterate=Patient:organization"))
			if len(inc) != 0 {
				t.Errorf("includes %v, want none", inc)
			}
		})
		t.Run("a read of a withheld resource is the same 404 as a missing one", func(t *testing.T) {
			_, err := e.Read(ctx, "Patient", "p2")
			wantKind(t, err, fhir.ENotFound)
			_, err = e.Read(ctx, "Observation", "o7")
			wantKind(t, err, fhir.ENotFound)
		})
		t.Run("history of a withheld resource is the same 404, type and system history leave it out", func(t *testing.T) {
			_, err := e.History(ctx, "Patient", "p2", url.Values{})
			wantKind(t, err, fhir.ENotFound)
			if _, err := e.History(ctx, "Patient", "p1", url.Values{}); err != nil {
				t.Errorf("history of a visible patient: %v", err)
			}
			for _, typ := range []string{"Patient", ""} {
				var got []string
				q := url.Values{"_count": {"1"}}
				for page := 0; page < 100; page++ {
					b, err := e.History(ctx, typ, "", q)
					if err != nil {
						t.Fatal(err)
					}
					ents, _ := b["entry"].([]any)
					for _, en := range ents {
						got = append(got, en.(fhir.Object)["fullUrl"].(string))
					}
					next := ""
					for _, l := range b["link"].([]any) {
						if l.(fhir.Object)["relation"] == "next" {
							next = l.(fhir.Object)["url"].(string)
						}
					}
					if next == "" {
						break
					}
					u, _ := url.Parse(next)
					q = u.Query()
				}
				joined := strings.Join(got, " ")
				if !strings.Contains(joined, "/Patient/p1") || strings.Contains(joined, "/Patient/p2") || strings.Contains(joined, "/Observation/o7") {
					t.Errorf("%q history lists %v", typ, got)
				}
			}
		})
		t.Run("$everything of a withheld patient is 404", func(t *testing.T) {
			_, err := e.Everything(ctx, "p2", url.Values{})
			wantKind(t, err, fhir.ENotFound)
		})
		t.Run("$everything leaves out withheld resources and includes", func(t *testing.T) {
			b, err := e.Everything(ctx, "p1", url.Values{"_count": {"100"}})
			if err != nil {
				t.Fatal(err)
			}
			m, inc := entries(t, b)
			for _, r := range append(m, inc...) {
				if r == "Patient/p2" || r == "Observation/o7" {
					t.Errorf("$everything shows withheld %s", r)
				}
			}
			s := string(fhir.Marshal(b))
			if strings.Contains(s, "Smith") {
				t.Errorf("the bundle mentions a withheld patient's name")
			}
		})
		t.Run("a source grant admits only resources whose meta.source is the organisation's", func(t *testing.T) {
			src := WithAccess(context.Background(), &store.Filter{Grants: []store.Grant{{Sources: []string{rxxSrc}}}})
			b := mustSearch(t, src, e, "Observation", "_total=accurate")
			if m, _ := entries(t, b); !sameSet(m, []string{"Observation/o5"}) || b["total"] != 1 {
				t.Errorf("matches %v total %v, want Observation/o5 and 1", m, b["total"])
			}
		})
		t.Run("grants sharing people and sources are tested as the union of the grants", func(t *testing.T) {
			// store.Filter.Shape lets a backend test shared people once and
			// find the source row once; the answer must stay each grant's
			// union.
			const srcA, srcB = "https://node.example/ods/RAA", "https://node.example/ods/RBB"
			for _, r := range []struct{ id, subject, meta string }{
				{"sa", "p3", `"meta":{"source":"` + srcA + `"},`},
				{"sb", "p3", `"meta":{"source":"` + srcB + `#x","security":[{"system":"` + confCS + `","code":"R"}]},`},
				{"sc", "p3", `"meta":{"source":"` + srcB + `"},`},
				{"sd", "p3", ``},
				{"se", "p1", `"meta":{"source":"` + srcA + `"},`},
			} {
				body := `{"resourceType":"Observation","id":"` + r.id + `",` + r.meta + `"status":"final","code":{"text":"shape"},"subject":{"reference":"Patient/` + r.subject + `"}}`
				if _, err := e.Update(context.Background(), "Observation", r.id, []byte(body), WriteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			deny := []store.Label{{System: confCS, Code: "R"}}
			for _, tc := range []struct {
				name   string
				grants []store.Grant
				want   []string
			}{
				{"same people, every grant sourced", []store.Grant{
					{Patients: []string{"p3"}, Sources: []string{srcA}},
					{Patients: []string{"p3"}, Sources: []string{srcB}, DenyLabels: deny},
				}, []string{"Observation/sa", "Observation/sc"}},
				{"different people, every grant sourced", []store.Grant{
					{Patients: []string{"p3"}, Sources: []string{srcA}},
					{Patients: []string{"p1"}, Sources: []string{srcA}},
				}, []string{"Observation/sa", "Observation/se"}},
				{"same people, one grant without a source", []store.Grant{
					{Patients: []string{"p3"}, Sources: []string{srcB}},
					{Patients: []string{"p3"}, DenyLabels: deny},
				}, []string{"Observation/sa", "Observation/sb", "Observation/sc", "Observation/sd"}},
				{"same people, a grant that admits nobody's source", []store.Grant{
					{Patients: []string{"p3"}, Sources: []string{srcA}},
					{Patients: []string{"p3"}, Sources: []string{"https://node.example/ods/RZZ"}},
				}, []string{"Observation/sa"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ctx := WithAccess(context.Background(), &store.Filter{Grants: tc.grants})
					b := mustSearch(t, ctx, e, "Observation", "_id=sa,sb,sc,sd,se&_total=accurate")
					if m, _ := entries(t, b); !sameSet(m, tc.want) || b["total"] != len(tc.want) {
						t.Errorf("matches %v total %v, want %v", m, b["total"], tc.want)
					}
				})
			}
		})
		t.Run("a filter with no grants hides everything, including the total", func(t *testing.T) {
			none := WithAccess(context.Background(), &store.Filter{})
			b := mustSearch(t, none, e, "Patient", "_total=accurate")
			if m, _ := entries(t, b); len(m) != 0 || b["total"] != 0 {
				t.Errorf("matches %v total %v, want none and 0", m, b["total"])
			}
		})
	})
}
