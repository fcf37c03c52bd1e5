package mpi

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// patient builds a Patient the way an organisation records one.
type patient struct {
	ref, given, family, birth, sex, line, postcode, phone, nhs string
	verified                                                   bool
}

func (p patient) record() Record {
	pat := fhir.Object{"resourceType": "Patient", "gender": p.sex, "birthDate": p.birth,
		"name":    []any{fhir.Object{"use": "official", "family": p.family, "given": []any{p.given}}},
		"address": []any{fhir.Object{"line": []any{p.line}, "city": "Severnbridge", "postalCode": p.postcode}},
	}
	if p.phone != "" {
		pat["telecom"] = []any{fhir.Object{"system": "phone", "value": p.phone}}
	}
	if p.nhs != "" {
		status := "02"
		if p.verified {
			status = "01"
		}
		pat["identifier"] = []any{fhir.Object{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": p.nhs,
			"extension": []any{fhir.Object{"url": verificationExt, "valueCodeableConcept": fhir.Object{
				"coding": []any{fhir.Object{"code": status}}}}}}}
	}
	return FromPatient(p.ref, pat)
}

var (
	ann  = patient{"Patient/a1", "Ann", "Hughes", "1948-07-02", "female", "12 Mill Lane", "GL1 2AB", "0117 496 0123", "9990000018", true}
	bob  = patient{"Patient/b1", "Robert", "Singh", "1979-12-30", "male", "4 Station Road", "GL5 3XY", "07700 900123", "9990000026", true}
	nobo = DefaultModel()
)

func TestFromPatient(t *testing.T) {
	p := fhir.Object{
		"resourceType": "Patient",
		"name": []any{
			fhir.Object{"use": "old", "family": "O'Brien"},
			fhir.Object{"use": "official", "family": "Smith-Jones", "given": []any{"Zoë", "Anne Marie"}},
		},
		"birthDate": "1961-02-03", "gender": "female",
		"address": []any{fhir.Object{"line": []any{"12, High St."}, "city": "Kingsmead", "postalCode": "gl5 3xy"}},
		"telecom": []any{fhir.Object{"system": "phone", "value": "+44 117 496 0123"}, fhir.Object{"system": "email", "value": "z@example.org"}},
		"identifier": []any{
			fhir.Object{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "999 000 0018"},
			fhir.Object{"system": "https://example.org/mrn", "value": "H123"},
			fhir.Object{"value": "no system"},
		},
		"deceasedDateTime": "2025-01-01",
	}
	r := FromPatient("Patient/1", p)
	checks := []struct {
		name      string
		got, want any
	}{
		{"the official name's given names, accents folded, split into words", r.Given, []string{"zoe", "anne", "marie"}},
		{"the official family name without punctuation", r.Family, "smithjones"},
		{"the old name and the double-barrelled parts are other family names", r.OtherFamily, []string{"obrien", "smith", "jones"}},
		{"the birth date", r.BirthDate, "1961-02-03"},
		{"the postcode upper case without spaces", r.Postcodes, []string{"GL53XY"}},
		{"the address line without punctuation", r.Addresses, []string{"12 high st"}},
		{"+44 phone numbers in national form, e-mail ignored", r.Phones, []string{"01174960123"}},
		{"the NHS number normalised", r.NHS, "9990000018"},
		{"no verification status: not verified", r.NHSVerified, false},
		{"identifiers with a system", r.Identifiers, []Identifier{{"https://example.org/mrn", "H123"}}},
		{"deceased", r.Deceased, true},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	bad := FromPatient("Patient/2", fhir.Object{"identifier": []any{fhir.Object{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000019"}}})
	if bad.NHS != "" {
		t.Errorf("an NHS number with a wrong check digit identifies nobody: got %q", bad.NHS)
	}
}

func TestNHSNumberRules(t *testing.T) {
	moved := ann
	moved.ref, moved.line, moved.postcode, moved.phone = "Patient/a2", "3 Church Street", "GL20 5QR", ""
	married := ann
	married.ref, married.family = "Patient/a3", "Okafor"
	wrongPerson := bob // bob's record carrying ann's number, verified by mistake
	wrongPerson.ref, wrongPerson.nhs = "Patient/b2", ann.nhs
	unverified := ann
	unverified.ref, unverified.verified = "Patient/a4", false
	otherNumber := ann // identical demographics, a different verified number: a twin, or two people PDS knows apart
	otherNumber.ref, otherNumber.nhs = "Patient/a5", "9990000034"

	tests := []struct {
		name         string
		a, b         patient
		wantGrade    Grade
		wantMethod   Method
		wantConflict bool
	}{
		{"verified equal numbers link deterministically though the address changed", ann, moved, Certain, Deterministic, false},
		{"a changed surname does not contradict a verified number", ann, married, Certain, Deterministic, false},
		{"same number, clearly different people, is a conflict for review", ann, wrongPerson, Possible, Probabilistic, true},
		{"an unverified equal number links only on the weight of all the evidence", ann, unverified, Certain, Probabilistic, false},
		{"different verified numbers are never linked automatically", ann, otherNumber, Probable, Probabilistic, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := nobo.Compare(tt.a.record(), tt.b.record())
			if m.Grade != tt.wantGrade || m.Method != tt.wantMethod || m.Conflict != tt.wantConflict {
				t.Errorf("got grade %s method %s conflict %v (score %.1f, reasons %v), want %s %s %v",
					m.Grade, m.Method, m.Conflict, m.Score, m.Reason, tt.wantGrade, tt.wantMethod, tt.wantConflict)
			}
			if tt.wantConflict && (m.Linked() || !m.Review()) {
				t.Errorf("a conflict must go to review: linked %v review %v", m.Linked(), m.Review())
			}
		})
	}
}

func TestLinkNeverJoinsAConflict(t *testing.T) {
	moved := ann
	moved.ref, moved.line, moved.postcode = "Patient/a2", "3 Church Street", "GL20 5QR"
	wrongPerson := bob // ann's number keyed into bob's record (not traced, as PDS would not verify it)
	wrongPerson.ref, wrongPerson.nhs, wrongPerson.verified = "Patient/b2", ann.nhs, false
	recs := []Record{ann.record(), moved.record(), bob.record(), wrongPerson.record()}
	l := Link(nobo, recs)
	if l.Person["Patient/a1"] != l.Person["Patient/a2"] {
		t.Errorf("ann's two records are not one person: %v", l.Person)
	}
	if l.Person["Patient/b2"] == l.Person["Patient/a1"] {
		t.Errorf("bob's record carrying ann's number was linked to ann: %v", l.Person)
	}
	if l.Person["Patient/b2"] != l.Person["Patient/b1"] {
		t.Errorf("bob's record with the wrong number is not linked to bob's other record: %v", l.Person)
	}
	conflicts := 0
	for _, p := range l.Review {
		if p.Conflict {
			conflicts++
		}
	}
	if conflicts == 0 {
		t.Errorf("no conflict in the review list: %+v", l.Review)
	}
}

func TestClusteringRefusesChains(t *testing.T) {
	a, c := ann.record(), bob.record()
	c.NHS, c.NHSVerified = a.NHS, true // clearly different people sharing a number
	recs := []Record{a, c}
	if !cannotJoin(nobo, recs, []int{0}, []int{1}) {
		t.Error("two clusters holding a conflict were allowed to join")
	}
	twin := ann.record()
	twin.NHS, twin.NHSVerified = "9990000034", true
	recs = []Record{ann.record(), twin}
	if !cannotJoin(nobo, recs, []int{0}, []int{1}) {
		t.Error("two clusters holding different verified NHS numbers were allowed to join")
	}
	recs = []Record{ann.record(), ann.record()}
	if cannotJoin(nobo, recs, []int{0}, []int{1}) {
		t.Error("two clusters of one person were refused")
	}
	if !nobo.MustNotLink(ann.record(), twin) || nobo.MustNotLink(ann.record(), ann.record()) {
		t.Error("MustNotLink disagrees with the clustering rule")
	}
}

func TestIndex(t *testing.T) {
	ix := NewIndex(nobo)
	moved := ann
	moved.ref, moved.line, moved.postcode = "Patient/a2", "3 Church Street", "GL20 5QR"
	ix.Add(ann.record())
	ix.Add(bob.record())
	probe := moved.record()
	got := ix.Candidates(probe, 5)
	if len(got) == 0 || got[0].Ref != "Patient/a1" || got[0].Grade != Certain {
		t.Fatalf("candidates for ann's moved record = %+v, want Patient/a1 certain first", got)
	}
	if !slices.Contains(got[0].Reason, "nhs-number") {
		t.Errorf("reasons %v do not name the NHS number", got[0].Reason)
	}
	// Replacing a record by its Ref re-indexes it.
	other := bob
	other.ref = "Patient/a1"
	ix.Add(other.record())
	if ix.Len() != 2 {
		t.Errorf("Len after replacing = %d, want 2", ix.Len())
	}
	for _, m := range ix.Candidates(probe, 5) {
		if m.Ref == "Patient/a1" && m.Grade == Certain {
			t.Errorf("the replaced record still matches as ann: %+v", m)
		}
	}
	ix.Remove("Patient/a1")
	ix.Remove("Patient/none")
	if _, ok := ix.Get("Patient/a1"); ok || ix.Len() != 1 {
		t.Errorf("after Remove: Get found it %v, Len %d", ok, ix.Len())
	}
	// A record is never its own candidate.
	for _, m := range ix.Candidates(bob.record(), 0) {
		if m.Ref == bob.ref {
			t.Errorf("a record was returned as its own candidate")
		}
	}
}

func TestIndexConcurrentUse(t *testing.T) {
	ix := NewIndex(nobo)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				p := ann
				p.ref = fmt.Sprintf("Patient/%d-%d", w, i%20)
				ix.Add(p.record())
				ix.Candidates(p.record(), 3)
				if i%7 == 0 {
					ix.Remove(p.ref)
				}
			}
		}(w)
	}
	wg.Wait()
	if n := ix.Len(); n > 80 {
		t.Errorf("Len = %d, want at most 80 distinct refs", n)
	}
}

func TestTrainFallsBackToDefault(t *testing.T) {
	m := Train([]Record{ann.record(), bob.record()})
	if m.Pairs != 0 || m.Link != DefaultModel().Link {
		t.Errorf("two records trained a model of %d pairs, want the default", m.Pairs)
	}
}

// The default model (m/u measured on one synthetic region) must still link
// another region at the target precision: it is what a new node starts with.
func TestDefaultModel(t *testing.T) {
	recs, truth := region(t, 2000, 17)
	q := Evaluate(Link(DefaultModel(), recs).Person, truth)
	t.Logf("default model on another region: precision %.5f recall %.4f", q.Precision, q.Recall)
	if q.Precision < 0.999 || q.Recall < 0.98 {
		t.Errorf("precision %.5f recall %.4f, want >= 0.999 and >= 0.98", q.Precision, q.Recall)
	}
}

func TestEvaluate(t *testing.T) {
	truth := map[string]string{"a": "1", "b": "1", "c": "1", "d": "2"}
	q := Evaluate(map[string]string{"a": "x", "b": "x", "c": "y", "d": "y"}, truth)
	// found pairs ab, cd; true pairs ab, ac, bc; correct ab
	if q.FoundPairs != 2 || q.TruePairs != 3 || q.Correct != 1 || q.Precision != 0.5 {
		t.Errorf("got %+v, want 2 found, 3 true, 1 correct, precision 0.5", q)
	}
}
