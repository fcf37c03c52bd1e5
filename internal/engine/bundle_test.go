package engine

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/validate"
)

// txn builds a Bundle of the given type from entry JSON snippets.
func txn(kind string, entries ...string) []byte {
	return []byte(`{"resourceType":"Bundle","type":"` + kind + `","entry":[` + strings.Join(entries, ",") + `]}`)
}

// respEntries returns the response entries, re-parsed.
func respEntries(t *testing.T, b fhir.Object) []fhir.Object {
	t.Helper()
	b = reparse(t, b)
	var out []fhir.Object
	for _, en := range b["entry"].([]any) {
		out = append(out, en.(fhir.Object))
	}
	return out
}

func status(en fhir.Object) string {
	return en["response"].(fhir.Object)["status"].(string)
}

func location(en fhir.Object) string {
	l, _ := en["response"].(fhir.Object)["location"].(string)
	return l
}

// typeID is the Type/id part of a location.
func typeID(loc string) string {
	p := strings.Split(loc, "/")
	if len(p) < 2 {
		return loc
	}
	return p[0] + "/" + p[1]
}

// systemHistory is every version in the store, newest first, as
// type/id/version strings.
func systemHistory(t *testing.T, st store.Store) []string {
	t.Helper()
	vs, err := st.History(context.Background(), store.HistoryQuery{Count: 100000})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprintf("%s/%s/%d/%v/%d", v.Type, v.ID, v.VersionID, v.Deleted, len(v.Body))
	}
	return out
}

func TestTransaction(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		t.Run("urn:uuid references are rewritten everywhere in every entry", func(t *testing.T) {
			b := txn("transaction",
				`{"fullUrl":"urn:uuid:11111111-1111-4111-8111-111111111111","resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}}`,
				`{"fullUrl":"urn:uuid:22222222-2222-4222-8222-222222222222","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
				  "subject":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"},
				  "extension":[{"url":"http://e","valueReference":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"}}],
				  "contained":[{"resourceType":"Provenance","id":"p","recorded":"2020-01-01T00:00:00Z","target":[{"reference":"urn:uuid:33333333-3333-4333-8333-333333333333"}],"agent":[{"who":{"reference":"`+testBase+`/Practitioner/abc"}}]}],
				  "performer":[{"reference":"urn:oid:1.2.3"}]},"request":{"method":"POST","url":"Observation"}}`,
				`{"fullUrl":"urn:uuid:33333333-3333-4333-8333-333333333333","resource":{"resourceType":"Patient","id":"fixed-1"},"request":{"method":"PUT","url":"Patient/fixed-1"}}`,
				`{"fullUrl":"urn:oid:1.2.3","resource":{"resourceType":"Practitioner"},"request":{"method":"POST","url":"Practitioner"}}`,
			)
			resp, err := e.Bundle(ctx, b, WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if resp["type"] != "transaction-response" {
				t.Errorf("type %v", resp["type"])
			}
			if _, err := validate.Resource(reparse(t, resp), validate.Options{}); err != nil {
				t.Errorf("the response Bundle is not valid R4: %v", err)
			}
			en := respEntries(t, resp)
			if status(en[0]) != "201 Created" || status(en[2]) != "201 Created" {
				t.Errorf("statuses %s %s, want 201 Created", status(en[0]), status(en[2]))
			}
			obs := string(en[1]["resource"].(fhir.Object)["subject"].(fhir.Object)["reference"].(string))
			pat := typeID(location(en[0]))
			if obs != pat {
				t.Errorf("subject %q, want %q", obs, pat)
			}
			v, err := e.Read(ctx, "Observation", strings.Split(location(en[1]), "/")[1])
			if err != nil {
				t.Fatal(err)
			}
			body := string(v.Body)
			for _, want := range []string{
				`"valueReference":{"reference":"` + pat + `"}`,
				`"target":[{"reference":"Patient/fixed-1"}]`,
				`"who":{"reference":"Practitioner/abc"}`,
				`"performer":[{"reference":"` + typeID(location(en[3])) + `"}]`,
			} {
				if !strings.Contains(body, want) {
					t.Errorf("stored Observation lacks %s:\n%s", want, body)
				}
			}
			if strings.Contains(body, "urn:") {
				t.Errorf("a urn reference was left: %s", body)
			}
		})
		t.Run("entries are processed DELETE, POST, PUT, GET whatever their order", func(t *testing.T) {
			if _, err := e.Update(ctx, "Patient", "ord-1", []byte(`{"resourceType":"Patient","id":"ord-1","active":true}`), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			resp, err := e.Bundle(ctx, txn("transaction",
				`{"request":{"method":"GET","url":"Patient/ord-2"}}`,
				`{"resource":{"resourceType":"Patient","id":"ord-2","active":false},"request":{"method":"PUT","url":"Patient/ord-2"}}`,
				`{"request":{"method":"DELETE","url":"Patient/ord-1"}}`,
				`{"request":{"method":"GET","url":"Patient?_id=ord-1,ord-2"}}`,
			), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			en := respEntries(t, resp)
			if status(en[0]) != "200 OK" || en[0]["resource"].(fhir.Object)["id"] != "ord-2" {
				t.Errorf("GET before the PUT in the bundle did not see it: %v", en[0])
			}
			if status(en[2]) != "204 No Content" {
				t.Errorf("DELETE status %s", status(en[2]))
			}
			found := en[3]["resource"].(fhir.Object)["entry"].([]any)
			if len(found) != 1 {
				t.Errorf("search after the DELETE found %d, want only ord-2", len(found))
			}
		})
		t.Run("conditional create entries reuse the existing resource and map its fullUrl", func(t *testing.T) {
			org := `{"resourceType":"Organization","identifier":[{"system":"urn:o","value":"cc"}],"name":"O"}`
			entries := func() []byte {
				return txn("transaction",
					`{"fullUrl":"urn:uuid:aaaaaaaa-1111-4111-8111-111111111111","resource":`+org+`,"request":{"method":"POST","url":"Organization","ifNoneExist":"identifier=urn:o|cc"}}`,
					`{"resource":{"resourceType":"Patient","managingOrganization":{"reference":"urn:uuid:aaaaaaaa-1111-4111-8111-111111111111"}},"request":{"method":"POST","url":"Patient"}}`)
			}
			r1, err := e.Bundle(ctx, entries(), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r2, err := e.Bundle(ctx, entries(), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			e1, e2 := respEntries(t, r1), respEntries(t, r2)
			if status(e1[0]) != "201 Created" || status(e2[0]) != "200 OK" || location(e1[0]) != location(e2[0]) {
				t.Errorf("got %s %s and %s %s, want 201 then 200 for the same resource", status(e1[0]), location(e1[0]), status(e2[0]), location(e2[0]))
			}
			ref := e2[1]["resource"].(fhir.Object)["managingOrganization"].(fhir.Object)["reference"]
			if ref != typeID(location(e1[0])) {
				t.Errorf("reference %v, want %s", ref, typeID(location(e1[0])))
			}
		})
		t.Run("the same conditional create twice in one transaction is one resource", func(t *testing.T) {
			org := `{"resourceType":"Organization","identifier":[{"system":"urn:o","value":"twice"}]}`
			resp, err := e.Bundle(ctx, txn("transaction",
				`{"resource":`+org+`,"request":{"method":"POST","url":"Organization","ifNoneExist":"identifier=urn:o|twice"}}`,
				`{"resource":`+org+`,"request":{"method":"POST","url":"Organization","ifNoneExist":"identifier=urn:o|twice"}}`), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			en := respEntries(t, resp)
			if location(en[0]) != location(en[1]) {
				t.Errorf("locations %s and %s differ", location(en[0]), location(en[1]))
			}
		})
		t.Run("conditional references resolve to the one match", func(t *testing.T) {
			p := mustCreate(t, e, "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:nhs","value":"42"}]}`)
			resp, err := e.Bundle(ctx, txn("transaction",
				`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:nhs|42"}},"request":{"method":"POST","url":"Observation"}}`), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ref := respEntries(t, resp)[0]["resource"].(fhir.Object)["subject"].(fhir.Object)["reference"]
			if ref != "Patient/"+p.ID {
				t.Errorf("reference %v, want Patient/%s", ref, p.ID)
			}
		})
		t.Run("a conditional reference finds a resource created earlier in the same transaction", func(t *testing.T) {
			resp, err := e.Bundle(ctx, txn("transaction",
				`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:nhs|same-tx"}},"request":{"method":"POST","url":"Observation"}}`,
				`{"resource":{"resourceType":"Patient","identifier":[{"system":"urn:nhs","value":"same-tx"}]},"request":{"method":"POST","url":"Patient"}}`), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			en := respEntries(t, resp)
			ref := en[0]["resource"].(fhir.Object)["subject"].(fhir.Object)["reference"]
			if ref != typeID(location(en[1])) {
				t.Errorf("reference %v, want %s", ref, typeID(location(en[1])))
			}
			if en[1]["fullUrl"] != testBase+"/"+typeID(location(en[1])) {
				t.Errorf("response fullUrl %v is not the created resource's URL", en[1]["fullUrl"])
			}
		})
		t.Run("an absolute fullUrl of a POST entry maps both its URL and its Type/id", func(t *testing.T) {
			resp, err := e.Bundle(ctx, txn("transaction",
				`{"fullUrl":"http://elsewhere.example/fhir/Patient/old-1","resource":{"resourceType":"Patient","id":"old-1"},"request":{"method":"POST","url":"Patient"}}`,
				`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/old-1"},"focus":[{"reference":"http://elsewhere.example/fhir/Patient/old-1"}]},"request":{"method":"POST","url":"Observation"}}`), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			en := respEntries(t, resp)
			pat := typeID(location(en[0]))
			obs := en[1]["resource"].(fhir.Object)
			if pat == "Patient/old-1" || obs["subject"].(fhir.Object)["reference"] != pat || obs["focus"].([]any)[0].(fhir.Object)["reference"] != pat {
				t.Errorf("patient at %s; observation references %v and %v", pat, obs["subject"], obs["focus"])
			}
		})
		t.Run("a conditional reference with several matches fails the transaction", func(t *testing.T) {
			mustCreate(t, e, "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:nhs","value":"twin"}]}`)
			mustCreate(t, e, "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:nhs","value":"twin"}]}`)
			_, err := e.Bundle(ctx, txn("transaction",
				`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:nhs|twin"}},"request":{"method":"POST","url":"Observation"}}`), WriteOptions{})
			wantKind(t, err, fhir.EPreconditionFailed)
		})
		t.Run("a conditional create entry matching several resources fails the transaction", func(t *testing.T) {
			_, err := e.Bundle(ctx, txn("transaction",
				`{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:nhs|twin"}}`), WriteOptions{})
			wantKind(t, err, fhir.EPreconditionFailed)
		})
		t.Run("lenient handling drops unknown elements and reports them in the entry outcome", func(t *testing.T) {
			resp, err := e.Bundle(ctx, txn("transaction",
				`{"resource":{"resourceType":"Patient","nickname":"x"},"request":{"method":"POST","url":"Patient"}}`), WriteOptions{Lenient: true})
			if err != nil {
				t.Fatal(err)
			}
			en := respEntries(t, resp)[0]
			oc := string(fhir.Marshal(en["response"].(fhir.Object)["outcome"]))
			if !strings.Contains(oc, "Patient.nickname") || en["resource"].(fhir.Object)["nickname"] != nil {
				t.Errorf("outcome %s, resource %v", oc, en["resource"])
			}
		})
		t.Run("a reference predicted before the store transaction is checked against what it decides", func(t *testing.T) {
			// Outside the transaction one Patient has the identifier, so
			// the Observation is encoded early with a reference to it; but
			// the transaction itself creates a second one first, making
			// the conditional reference ambiguous.
			mustCreate(t, e, "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:nhs","value":"predicted"}]}`)
			_, err := e.Bundle(ctx, txn("transaction",
				`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:nhs|predicted"}},"request":{"method":"POST","url":"Observation"}}`,
				`{"resource":{"resourceType":"Patient","identifier":[{"system":"urn:nhs","value":"predicted"}]},"request":{"method":"POST","url":"Patient"}}`), WriteOptions{})
			wantKind(t, err, fhir.EPreconditionFailed)
		})
		t.Run("many entries referring to a conditional create all get its id", func(t *testing.T) {
			org := `{"resourceType":"Organization","identifier":[{"system":"urn:o","value":"many"}]}`
			entries := []string{`{"fullUrl":"urn:uuid:bbbbbbbb-1111-4111-8111-111111111111","resource":` + org + `,"request":{"method":"POST","url":"Organization","ifNoneExist":"identifier=urn:o|many"}}`}
			for range 5 {
				entries = append(entries, `{"resource":{"resourceType":"Patient","managingOrganization":{"reference":"urn:uuid:bbbbbbbb-1111-4111-8111-111111111111"}},"request":{"method":"POST","url":"Patient"}}`)
			}
			for run := range 2 {
				resp, err := e.Bundle(ctx, txn("transaction", entries...), WriteOptions{})
				if err != nil {
					t.Fatal(err)
				}
				en := respEntries(t, resp)
				for i := 1; i < len(en); i++ {
					v, err := e.Read(ctx, "Patient", strings.Split(location(en[i]), "/")[1])
					if err != nil {
						t.Fatal(err)
					}
					if ref := parseBody(t, v.Body)["managingOrganization"].(fhir.Object)["reference"]; ref != typeID(location(en[0])) {
						t.Errorf("run %d entry %d: stored reference %v, want %s", run, i, ref, typeID(location(en[0])))
					}
				}
			}
		})
		t.Run("conditional update and delete entries act on their match", func(t *testing.T) {
			mustCreate(t, e, "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:cu","value":"1"}]}`)
			mustCreate(t, e, "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:cd","value":"1"}]}`)
			resp, err := e.Bundle(ctx, txn("transaction",
				`{"resource":{"resourceType":"Patient","identifier":[{"system":"urn:cu","value":"1"}],"active":true},"request":{"method":"PUT","url":"Patient?identifier=urn:cu|1"}}`,
				`{"request":{"method":"DELETE","url":"Patient?identifier=urn:cd|1"}}`), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			en := respEntries(t, resp)
			if status(en[0]) != "200 OK" || !strings.HasSuffix(location(en[0]), "/_history/2") || status(en[1]) != "204 No Content" {
				t.Errorf("got %v", en)
			}
		})
		t.Run("a PATCH entry applies a JSON Patch in a Binary", func(t *testing.T) {
			mustUpdate := `{"resourceType":"Patient","id":"pt-1","active":true}`
			if _, err := e.Update(ctx, "Patient", "pt-1", []byte(mustUpdate), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			data := base64.StdEncoding.EncodeToString([]byte(`[{"op":"replace","path":"/active","value":false}]`))
			resp, err := e.Bundle(ctx, txn("transaction",
				`{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"`+data+`"},"request":{"method":"PATCH","url":"Patient/pt-1"}}`), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r := respEntries(t, resp)[0]["resource"].(fhir.Object); r["active"] != false {
				t.Errorf("patched %v", r)
			}
		})
		for _, tc := range []struct {
			name    string
			bundle  []byte
			kind    fhir.Kind
			exprHas string
		}{
			{"a conditional reference with no match fails the transaction", txn("transaction",
				`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:nhs|none"}},"request":{"method":"POST","url":"Observation"}}`),
				fhir.EPreconditionFailed, "Bundle.entry[0].resource.subject.reference"},
			{"two entries for the same resource are 400", txn("transaction",
				`{"resource":{"resourceType":"Patient","id":"same"},"request":{"method":"PUT","url":"Patient/same"}}`,
				`{"request":{"method":"DELETE","url":"Patient/same"}}`), fhir.EInvalid, "Bundle.entry["},
			{"two entries with one fullUrl are 400", txn("transaction",
				`{"fullUrl":"urn:uuid:10000000-0000-4000-8000-000000000000","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}`,
				`{"fullUrl":"urn:uuid:10000000-0000-4000-8000-000000000000","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}`), fhir.EInvalid, "Bundle.entry[1].fullUrl"},
			{"a POST entry without a resource is 400", txn("transaction", `{"request":{"method":"POST","url":"Patient"}}`), fhir.EInvalid, "Bundle.entry[0].resource"},
			{"an entry without a request is 400", txn("transaction", `{"resource":{"resourceType":"Patient"}}`), fhir.EInvalid, "Bundle.entry[0].request"},
			{"an unknown method is 400", txn("transaction", `{"request":{"method":"FETCH","url":"Patient"}}`), fhir.EInvalid, "Bundle.entry[0].request.method"},
			{"an entry whose resource type differs from its url is 400", txn("transaction", `{"resource":{"resourceType":"Group"},"request":{"method":"POST","url":"Patient"}}`), fhir.EInvalid, "Bundle.entry[0].resource.resourceType"},
			{"an invalid resource fails naming the element in the entry", txn("transaction", `{"resource":{"resourceType":"Patient","gender":"robot"},"request":{"method":"POST","url":"Patient"}}`), fhir.EInvalid, "Bundle.entry[0].resource.gender"},
			{"a Bundle that is not batch or transaction is 400", txn("collection"), fhir.EInvalid, "Bundle.type"},
			{"a body that is not a Bundle is 400", []byte(`{"resourceType":"Patient"}`), fhir.EInvalid, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := systemHistory(t, st)
				_, err := e.Bundle(ctx, tc.bundle, WriteOptions{})
				wantKind(t, err, tc.kind)
				if tc.exprHas != "" && !strings.Contains(err.(*fhir.Error).Issues[0].Expression, tc.exprHas) {
					t.Errorf("expression %q does not name %s", err.(*fhir.Error).Issues[0].Expression, tc.exprHas)
				}
				if after := systemHistory(t, st); len(after) != len(before) {
					t.Errorf("a failed transaction wrote %d versions", len(after)-len(before))
				}
			})
		}
		t.Run("a bundle over the entry limit is 413", func(t *testing.T) {
			small := New(st, Config{BaseURL: testBase, MaxBundleEntries: 2})
			e3 := `{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}`
			_, err := small.Bundle(ctx, txn("transaction", e3, e3, e3), WriteOptions{})
			wantKind(t, err, fhir.ETooLarge)
		})
	})
}

// TestTransactionInvalidLastEntryWritesNothing is the issue's "done when":
// a transaction whose last entry is invalid leaves the store exactly as it
// was, whether the entry fails before the store transaction (validation) or
// inside it (a precondition checked against stored data).
func TestTransactionInvalidLastEntryWritesNothing(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		if _, err := e.Update(ctx, "Patient", "keep", []byte(`{"resourceType":"Patient","id":"keep"}`), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		good := []string{
			`{"fullUrl":"urn:uuid:00000000-0000-4000-8000-000000000000","resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}}`,
			`{"resource":{"resourceType":"Patient","id":"keep","active":false},"request":{"method":"PUT","url":"Patient/keep"}}`,
			`{"request":{"method":"DELETE","url":"Patient/keep2"}}`,
			`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:00000000-0000-4000-8000-000000000000"}},"request":{"method":"POST","url":"Observation"}}`,
		}
		for _, tc := range []struct{ name, last string }{
			{"invalid resource", `{"resource":{"resourceType":"Patient","birthDate":"yesterday"},"request":{"method":"POST","url":"Patient"}}`},
			{"If-Match that fails inside the store transaction", `{"resource":{"resourceType":"Patient","id":"keep","active":true},"request":{"method":"PUT","url":"Patient/keep","ifMatch":"W/\"9\""}}`},
			{"conditional reference that matches nothing", `{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:x|none"}},"request":{"method":"POST","url":"Observation"}}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := systemHistory(t, st)
				entries := append(append([]string{}, good...), tc.last)
				_, err := e.Bundle(ctx, txn("transaction", entries...), WriteOptions{})
				if err == nil {
					t.Fatal("the transaction succeeded")
				}
				if want := fmt.Sprintf("Bundle.entry[%d]", len(good)); !strings.HasPrefix(err.(*fhir.Error).Issues[0].Expression, want) {
					t.Errorf("error %v does not name %s", err, want)
				}
				after := systemHistory(t, st)
				if strings.Join(after, "\n") != strings.Join(before, "\n") {
					t.Errorf("store changed:\nbefore %v\nafter  %v", before, after)
				}
			})
		}
	})
}

func TestBatch(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		resp, err := e.Bundle(ctx, txn("batch",
			`{"resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}}`,
			`{"resource":{"resourceType":"Patient","gender":"robot"},"request":{"method":"POST","url":"Patient"}}`,
			`{"request":{"method":"GET","url":"Patient/nope"}}`,
			`{"resource":{"resourceType":"Patient","id":"b1"},"request":{"method":"PUT","url":"Patient/b1"}}`,
			`"not an entry"`,
		), WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if resp["type"] != "batch-response" {
			t.Errorf("type %v", resp["type"])
		}
		// The outcomes are checked on their own: the validator does not yet
		// treat Bundle.entry.response.outcome as a nested resource.
		plain := reparse(t, resp)
		for _, en := range plain["entry"].([]any) {
			r := en.(fhir.Object)["response"].(fhir.Object)
			if oc, ok := r["outcome"].(fhir.Object); ok {
				if _, err := validate.Resource(oc, validate.Options{}); err != nil {
					t.Errorf("an entry outcome is not valid R4: %v", err)
				}
				delete(r, "outcome")
			}
		}
		if _, err := validate.Resource(plain, validate.Options{}); err != nil {
			t.Errorf("the response Bundle is not valid R4: %v", err)
		}
		en := respEntries(t, resp)
		for i, want := range []string{"201 Created", "400 Bad Request", "404 Not Found", "201 Created", "400 Bad Request"} {
			if got := status(en[i]); got != want {
				t.Errorf("entry %d: status %s, want %s", i, got, want)
			}
		}
		oc := en[1]["response"].(fhir.Object)["outcome"].(fhir.Object)
		if !strings.Contains(string(fhir.Marshal(oc)), "Bundle.entry[1].resource.gender") {
			t.Errorf("outcome %s does not name the element", fhir.Marshal(oc))
		}
		if _, err := e.Read(ctx, "Patient", "b1"); err != nil {
			t.Errorf("entry after a failing one was not written: %v", err)
		}
	})
}
