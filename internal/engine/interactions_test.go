package engine

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/validate"
)

const patientJSON = `{"resourceType":"Patient","id":"client-chosen","identifier":[{"system":"urn:sys","value":"p1"}],"name":[{"family":"Smith"}]}`

func TestCreate(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		t.Run("create assigns a UUID id, ignoring the client's, and version 1", func(t *testing.T) {
			out, err := e.Create(ctx, "Patient", []byte(patientJSON), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			v := out.Version
			if !out.Created || out.NoOp || v.VersionID != 1 || len(v.ID) != 36 || v.ID == "client-chosen" || !fhir.ValidID(v.ID) {
				t.Fatalf("got created=%v noop=%v version=%d id=%q", out.Created, out.NoOp, v.VersionID, v.ID)
			}
			got := parseBody(t, v.Body)
			m := got["meta"].(fhir.Object)
			if fhir.ID(got) != v.ID || m["versionId"] != "1" || m["lastUpdated"] != fhir.FormatInstant(v.LastUpdated) {
				t.Errorf("body id/meta %q %v do not match the version %q", fhir.ID(got), m, v.ID)
			}
			r, err := e.Read(ctx, "Patient", v.ID)
			if err != nil || string(r.Body) != string(v.Body) {
				t.Errorf("read back %s, %v; want %s", r.Body, err, v.Body)
			}
		})
		t.Run("two creates get different ids", func(t *testing.T) {
			a := mustCreate(t, e, "Patient", patientJSON)
			b := mustCreate(t, e, "Patient", patientJSON)
			if a.ID == b.ID {
				t.Errorf("both got id %s", a.ID)
			}
		})
		for _, tc := range []struct {
			name, typ, body string
			kind            fhir.Kind
			expr            string
		}{
			{"resourceType must match the URL type", "Observation", patientJSON, fhir.EInvalid, "Observation.resourceType"},
			{"a body without resourceType is rejected", "Patient", `{"id":"x"}`, fhir.EInvalid, "Patient"},
			{"malformed JSON is rejected", "Patient", `{"resourceType":"Patient",`, fhir.EInvalid, ""},
			{"unknown elements are rejected under strict handling", "Patient", `{"resourceType":"Patient","nickname":"x"}`, fhir.EInvalid, "Patient.nickname"},
			{"an unknown resource type is not found", "Patientx", `{"resourceType":"Patientx"}`, fhir.ENotFound, ""},
			{"an invalid NHS number is unprocessable", "Patient", `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765918"}]}`, fhir.EUnprocessable, "Patient.identifier[0].value"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := e.Create(ctx, tc.typ, []byte(tc.body), WriteOptions{})
				wantKind(t, err, tc.kind)
				if tc.expr != "" {
					if is := err.(*fhir.Error).Issues; len(is) == 0 || is[0].Expression != tc.expr {
						t.Errorf("got issues %+v, want expression %q", is, tc.expr)
					}
				}
			})
		}
		t.Run("lenient handling drops unknown elements with a warning", func(t *testing.T) {
			out, err := e.Create(ctx, "Patient", []byte(`{"resourceType":"Patient","nickname":"x","gender":"male"}`), WriteOptions{Lenient: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Warnings) != 1 || out.Warnings[0].Expression != "Patient.nickname" {
				t.Errorf("got warnings %+v, want one at Patient.nickname", out.Warnings)
			}
			if strings.Contains(string(out.Version.Body), "nickname") {
				t.Errorf("stored %s still has the dropped element", out.Version.Body)
			}
		})
	})
}

func TestConditionalCreate(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		body := `{"resourceType":"Organization","identifier":[{"system":"urn:org","value":"o1"}],"name":"A"}`
		ine := WriteOptions{IfNoneExist: "identifier=urn:org|o1"}
		first, err := e.Create(ctx, "Organization", []byte(body), ine)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("no match creates", func(t *testing.T) {
			if !first.Created || first.NoOp {
				t.Errorf("got created=%v noop=%v, want a create", first.Created, first.NoOp)
			}
		})
		t.Run("one match returns the existing resource without writing", func(t *testing.T) {
			again, err := e.Create(ctx, "Organization", []byte(body), ine)
			if err != nil {
				t.Fatal(err)
			}
			if !again.NoOp || again.Created || again.Version.ID != first.Version.ID || again.Version.VersionID != 1 {
				t.Errorf("got noop=%v created=%v %s/%d, want the existing %s/1", again.NoOp, again.Created, again.Version.ID, again.Version.VersionID, first.Version.ID)
			}
		})
		t.Run("more than one match is 412", func(t *testing.T) {
			mustCreate(t, e, "Organization", body) // plain POST creates a second
			_, err := e.Create(ctx, "Organization", []byte(body), ine)
			wantKind(t, err, fhir.EPreconditionFailed)
		})
		t.Run("unknown criteria are rejected, never ignored", func(t *testing.T) {
			_, err := e.Create(ctx, "Organization", []byte(body), WriteOptions{IfNoneExist: "nonsense=1"})
			wantKind(t, err, fhir.EInvalid)
		})
		t.Run("known but unsupported criteria are rejected", func(t *testing.T) {
			_, err := e.Create(ctx, "Organization", []byte(body), WriteOptions{IfNoneExist: "_filter=name eq A"})
			wantKind(t, err, fhir.ENotSupported)
		})
	})
}

func TestReadVReadDelete(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		v := mustCreate(t, e, "Patient", patientJSON)
		t.Run("read of an id that never existed is 404", func(t *testing.T) {
			_, err := e.Read(ctx, "Patient", "nope")
			wantKind(t, err, fhir.ENotFound)
		})
		t.Run("read of a malformed id is 400", func(t *testing.T) {
			_, err := e.Read(ctx, "Patient", "bad id!")
			wantKind(t, err, fhir.EInvalid)
		})
		t.Run("vread of a version that is not an integer is 404", func(t *testing.T) {
			_, err := e.VRead(ctx, "Patient", v.ID, "abc")
			wantKind(t, err, fhir.ENotFound)
		})
		t.Run("vread of a malformed version id is 400", func(t *testing.T) {
			_, err := e.VRead(ctx, "Patient", v.ID, "a b")
			wantKind(t, err, fhir.EInvalid)
		})
		t.Run("vread of a missing version is 404", func(t *testing.T) {
			_, err := e.VRead(ctx, "Patient", v.ID, "7")
			wantKind(t, err, fhir.ENotFound)
		})
		del, err := e.Delete(ctx, "Patient", v.ID, WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Run("delete writes a deletion marker as version 2", func(t *testing.T) {
			if del.NoOp || del.Version == nil || del.Version.VersionID != 2 || !del.Version.Deleted {
				t.Errorf("got %+v", del)
			}
		})
		t.Run("read after delete is 410", func(t *testing.T) {
			_, err := e.Read(ctx, "Patient", v.ID)
			wantKind(t, err, fhir.EGone)
		})
		t.Run("vread of the deletion marker is 410", func(t *testing.T) {
			_, err := e.VRead(ctx, "Patient", v.ID, "2")
			wantKind(t, err, fhir.EGone)
		})
		t.Run("vread of the version before the delete still works", func(t *testing.T) {
			got, err := e.VRead(ctx, "Patient", v.ID, "1")
			if err != nil || string(got.Body) != string(v.Body) {
				t.Errorf("got %v, %v", got, err)
			}
		})
		t.Run("deleting a deleted resource succeeds without writing", func(t *testing.T) {
			out, err := e.Delete(ctx, "Patient", v.ID, WriteOptions{})
			if err != nil || !out.NoOp || out.Version.VersionID != 2 {
				t.Errorf("got %+v, %v", out, err)
			}
		})
		t.Run("deleting a resource that never existed succeeds without writing", func(t *testing.T) {
			out, err := e.Delete(ctx, "Patient", "never", WriteOptions{})
			if err != nil || !out.NoOp || out.Version != nil {
				t.Errorf("got %+v, %v", out, err)
			}
		})
		t.Run("update after delete re-creates as the next version (201)", func(t *testing.T) {
			body := strings.Replace(patientJSON, "client-chosen", v.ID, 1)
			out, err := e.Update(ctx, "Patient", v.ID, []byte(body), WriteOptions{})
			if err != nil || !out.Created || out.Version.VersionID != 3 {
				t.Fatalf("got %+v, %v", out, err)
			}
			if _, err := e.Read(ctx, "Patient", v.ID); err != nil {
				t.Errorf("read after re-create: %v", err)
			}
		})
	})
}

func TestUpdate(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		body := func(id, family string) []byte {
			return []byte(`{"resourceType":"Patient","id":"` + id + `","name":[{"family":"` + family + `"}]}`)
		}
		t.Run("update as create with a client id is 201 version 1", func(t *testing.T) {
			out, err := e.Update(ctx, "Patient", "p-1", body("p-1", "A"), WriteOptions{})
			if err != nil || !out.Created || out.Version.VersionID != 1 || out.Version.ID != "p-1" {
				t.Fatalf("got %+v, %v", out, err)
			}
		})
		t.Run("update of an existing resource is 200 with the next version", func(t *testing.T) {
			out, err := e.Update(ctx, "Patient", "p-1", body("p-1", "B"), WriteOptions{})
			if err != nil || out.Created || out.NoOp || out.Version.VersionID != 2 {
				t.Fatalf("got %+v, %v", out, err)
			}
		})
		t.Run("an update that changes nothing writes no version", func(t *testing.T) {
			out, err := e.Update(ctx, "Patient", "p-1", body("p-1", "B"), WriteOptions{})
			if err != nil || out.Created || !out.NoOp || out.Version.VersionID != 2 {
				t.Fatalf("got %+v, %v", out, err)
			}
			h, err := e.History(ctx, "Patient", "p-1", nil)
			if err != nil || len(h["entry"].([]any)) != 2 {
				t.Errorf("history has %v entries (%v), want 2", len(h["entry"].([]any)), err)
			}
		})
		for _, tc := range []struct {
			name string
			id   string
			body []byte
			kind fhir.Kind
		}{
			{"the body id must equal the URL id", "p-1", body("p-2", "A"), fhir.EInvalid},
			{"the body must have an id", "p-1", []byte(`{"resourceType":"Patient"}`), fhir.EInvalid},
			{"the URL id must be a valid id", "p_1", body("p_1", "A"), fhir.EInvalid},
			{"the body type must match the URL", "p-1", []byte(`{"resourceType":"Group","id":"p-1"}`), fhir.EInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := e.Update(ctx, "Patient", tc.id, tc.body, WriteOptions{})
				wantKind(t, err, tc.kind)
			})
		}
		t.Run("If-Match with the current version succeeds", func(t *testing.T) {
			out, err := e.Update(ctx, "Patient", "p-1", body("p-1", "C"), WriteOptions{IfMatch: `W/"2"`})
			if err != nil || out.Version.VersionID != 3 {
				t.Fatalf("got %+v, %v", out, err)
			}
		})
		t.Run("If-Match accepts a strong ETag", func(t *testing.T) {
			if _, err := e.Update(ctx, "Patient", "p-1", body("p-1", "D"), WriteOptions{IfMatch: `"3"`}); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("If-Match with another version is 412", func(t *testing.T) {
			_, err := e.Update(ctx, "Patient", "p-1", body("p-1", "E"), WriteOptions{IfMatch: `W/"1"`})
			wantKind(t, err, fhir.EPreconditionFailed)
		})
		t.Run("If-Match on a resource that does not exist is 412", func(t *testing.T) {
			_, err := e.Update(ctx, "Patient", "p-9", body("p-9", "E"), WriteOptions{IfMatch: `W/"1"`})
			wantKind(t, err, fhir.EPreconditionFailed)
		})
		t.Run("a malformed If-Match is 400", func(t *testing.T) {
			_, err := e.Update(ctx, "Patient", "p-1", body("p-1", "E"), WriteOptions{IfMatch: `W/"x"`})
			wantKind(t, err, fhir.EInvalid)
		})
		t.Run("If-Match on delete with another version is 412", func(t *testing.T) {
			_, err := e.Delete(ctx, "Patient", "p-1", WriteOptions{IfMatch: `W/"1"`})
			wantKind(t, err, fhir.EPreconditionFailed)
		})
	})
}

func TestConditionalUpdateAndDelete(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		org := func(id, name string) []byte {
			idPart := ""
			if id != "" {
				idPart = `"id":"` + id + `",`
			}
			return []byte(`{"resourceType":"Organization",` + idPart + `"identifier":[{"system":"urn:org","value":"x"}],"name":"` + name + `"}`)
		}
		q := url.Values{"identifier": {"urn:org|x"}}
		var id string
		t.Run("conditional update with no match creates with a server id", func(t *testing.T) {
			out, err := e.ConditionalUpdate(ctx, "Organization", q, org("", "A"), WriteOptions{})
			if err != nil || !out.Created || len(out.Version.ID) != 36 {
				t.Fatalf("got %+v, %v", out, err)
			}
			id = out.Version.ID
		})
		t.Run("conditional update with one match updates it", func(t *testing.T) {
			out, err := e.ConditionalUpdate(ctx, "Organization", q, org("", "B"), WriteOptions{})
			if err != nil || out.Created || out.Version.ID != id || out.Version.VersionID != 2 {
				t.Fatalf("got %+v, %v", out, err)
			}
		})
		t.Run("conditional update whose body id differs from the match is 400", func(t *testing.T) {
			_, err := e.ConditionalUpdate(ctx, "Organization", q, org("other", "C"), WriteOptions{})
			wantKind(t, err, fhir.EInvalid)
		})
		t.Run("conditional update with no match creates with the body id", func(t *testing.T) {
			out, err := e.ConditionalUpdate(ctx, "Organization", url.Values{"identifier": {"urn:org|none"}}, []byte(`{"resourceType":"Organization","id":"org-b","name":"N"}`), WriteOptions{})
			if err != nil || !out.Created || out.Version.ID != "org-b" {
				t.Fatalf("got %+v, %v", out, err)
			}
		})
		t.Run("conditional update with no match but an existing body id is 409", func(t *testing.T) {
			_, err := e.ConditionalUpdate(ctx, "Organization", url.Values{"identifier": {"urn:org|none"}}, []byte(`{"resourceType":"Organization","id":"org-b","name":"M"}`), WriteOptions{})
			wantKind(t, err, fhir.EConflict)
		})
		t.Run("conditional update without criteria is 400", func(t *testing.T) {
			_, err := e.ConditionalUpdate(ctx, "Organization", url.Values{}, org("", "A"), WriteOptions{})
			wantKind(t, err, fhir.EInvalid)
		})
		mustCreate(t, e, "Organization", string(org("", "dup")))
		t.Run("conditional update with many matches is 412", func(t *testing.T) {
			_, err := e.ConditionalUpdate(ctx, "Organization", q, org("", "D"), WriteOptions{})
			wantKind(t, err, fhir.EPreconditionFailed)
		})
		t.Run("conditional delete with many matches is 412", func(t *testing.T) {
			_, err := e.ConditionalDelete(ctx, "Organization", q, WriteOptions{})
			wantKind(t, err, fhir.EPreconditionFailed)
		})
		t.Run("conditional delete with one match deletes it", func(t *testing.T) {
			out, err := e.ConditionalDelete(ctx, "Organization", url.Values{"_id": {id}}, WriteOptions{})
			if err != nil || out.NoOp || !out.Version.Deleted || out.Version.ID != id {
				t.Fatalf("got %+v, %v", out, err)
			}
			_, err = e.Read(ctx, "Organization", id)
			wantKind(t, err, fhir.EGone)
		})
		t.Run("conditional delete with no match does nothing", func(t *testing.T) {
			out, err := e.ConditionalDelete(ctx, "Organization", url.Values{"_id": {id}}, WriteOptions{})
			if err != nil || !out.NoOp {
				t.Fatalf("got %+v, %v", out, err)
			}
		})
	})
}

func TestPatch(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		base := `{"resourceType":"Patient","id":"pp","active":true,"name":[{"family":"A","given":["x","y"]}],"extension":[{"url":"http://e/a~b/c","valueString":"v"}]}`
		reset := func(t *testing.T) {
			t.Helper()
			if _, err := e.Update(ctx, "Patient", "pp", []byte(base), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name, patch string
			kind        fhir.Kind // "" for success
			check       func(r fhir.Object) bool
		}{
			{"replace changes a value", `[{"op":"replace","path":"/active","value":false}]`, "",
				func(r fhir.Object) bool { return r["active"] == false }},
			{"add inserts into an array at an index", `[{"op":"add","path":"/name/0/given/1","value":"m"}]`, "",
				func(r fhir.Object) bool { return jsonString(r["name"]) == `[{"family":"A","given":["x","m","y"]}]` }},
			{"add with - appends", `[{"op":"add","path":"/name/0/given/-","value":"z"}]`, "",
				func(r fhir.Object) bool { return jsonString(r["name"]) == `[{"family":"A","given":["x","y","z"]}]` }},
			{"add creates a member", `[{"op":"add","path":"/gender","value":"female"}]`, "",
				func(r fhir.Object) bool { return r["gender"] == "female" }},
			{"remove deletes a member", `[{"op":"remove","path":"/active"}]`, "",
				func(r fhir.Object) bool { _, ok := r["active"]; return !ok }},
			{"move moves a value", `[{"op":"move","from":"/name/0/given/0","path":"/name/0/given/1"}]`, "",
				func(r fhir.Object) bool { return jsonString(r["name"]) == `[{"family":"A","given":["y","x"]}]` }},
			{"copy copies a value", `[{"op":"copy","from":"/name/0/family","path":"/name/0/given/0"}]`, "",
				func(r fhir.Object) bool { return jsonString(r["name"]) == `[{"family":"A","given":["A","x","y"]}]` }},
			{"test that holds lets the patch apply", `[{"op":"test","path":"/name/0/family","value":"A"},{"op":"replace","path":"/active","value":false}]`, "",
				func(r fhir.Object) bool { return r["active"] == false }},
			{"a failing test op is 422", `[{"op":"test","path":"/active","value":false},{"op":"remove","path":"/name"}]`, fhir.EUnprocessable, nil},
			{"a path that is not there is 422", `[{"op":"remove","path":"/birthDate"}]`, fhir.EUnprocessable, nil},
			{"an unknown op is 400", `[{"op":"frobnicate","path":"/active"}]`, fhir.EInvalid, nil},
			{"a patch that is not an array is 400", `{"op":"remove","path":"/active"}`, fhir.EInvalid, nil},
			{"a pointer without a leading slash is 400", `[{"op":"remove","path":"active"}]`, fhir.EInvalid, nil},
			{"a bad ~ escape is 400", `[{"op":"remove","path":"/a~2"}]`, fhir.EInvalid, nil},
			{"changing the id is 400", `[{"op":"replace","path":"/id","value":"other"}]`, fhir.EInvalid, nil},
			{"changing the resourceType is 400", `[{"op":"replace","path":"/resourceType","value":"Group"}]`, fhir.EInvalid, nil},
			{"a patch result that is invalid is rejected", `[{"op":"add","path":"/nickname","value":"x"}]`, fhir.EInvalid, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				reset(t)
				before, _ := e.Read(ctx, "Patient", "pp")
				out, err := e.Patch(ctx, "Patient", "pp", []byte(tc.patch), WriteOptions{})
				if tc.kind != "" {
					wantKind(t, err, tc.kind)
					after, _ := e.Read(ctx, "Patient", "pp")
					if after.VersionID != before.VersionID {
						t.Errorf("a failed patch wrote version %d", after.VersionID)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if out.Version.VersionID != before.VersionID+1 {
					t.Errorf("got version %d, want %d", out.Version.VersionID, before.VersionID+1)
				}
				if r := parseBody(t, out.Version.Body); !tc.check(r) {
					t.Errorf("patched resource %s does not hold", out.Version.Body)
				}
			})
		}
		t.Run("patch honours If-Match", func(t *testing.T) {
			reset(t)
			_, err := e.Patch(ctx, "Patient", "pp", []byte(`[{"op":"replace","path":"/active","value":false}]`), WriteOptions{IfMatch: `W/"1"`})
			wantKind(t, err, fhir.EPreconditionFailed)
		})
		t.Run("patch of a missing resource is 404", func(t *testing.T) {
			_, err := e.Patch(ctx, "Patient", "none", []byte(`[]`), WriteOptions{})
			wantKind(t, err, fhir.ENotFound)
		})
		t.Run("conditional patch patches the one match", func(t *testing.T) {
			reset(t)
			out, err := e.ConditionalPatch(ctx, "Patient", url.Values{"_id": {"pp"}}, []byte(`[{"op":"replace","path":"/active","value":false}]`), WriteOptions{})
			if err != nil || out.Version.ID != "pp" {
				t.Fatalf("got %+v, %v", out, err)
			}
		})
		t.Run("conditional patch with no match is 404", func(t *testing.T) {
			_, err := e.ConditionalPatch(ctx, "Patient", url.Values{"_id": {"zz"}}, []byte(`[]`), WriteOptions{})
			wantKind(t, err, fhir.ENotFound)
		})
		t.Run("patch of a deleted resource is 410", func(t *testing.T) {
			if _, err := e.Delete(ctx, "Patient", "pp", WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			_, err := e.Patch(ctx, "Patient", "pp", []byte(`[]`), WriteOptions{})
			wantKind(t, err, fhir.EGone)
		})
	})
}

func TestHistory(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		for i := range 7 {
			b := `{"resourceType":"Patient","id":"h1","birthDate":"2000-01-0` + strconv.Itoa(i+1) + `"}`
			if _, err := e.Update(ctx, "Patient", "h1", []byte(b), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		mustCreate(t, e, "Organization", `{"resourceType":"Organization","name":"o"}`)
		if _, err := e.Delete(ctx, "Patient", "h1", WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Run("instance history lists every version newest first", func(t *testing.T) {
			h, err := e.History(ctx, "Patient", "h1", nil)
			if err != nil {
				t.Fatal(err)
			}
			h = reparse(t, h)
			entries := h["entry"].([]any)
			if len(entries) != 8 || h["type"] != "history" {
				t.Fatalf("got %d entries, want 8", len(entries))
			}
			first := entries[0].(fhir.Object)
			if first["request"].(fhir.Object)["method"] != "DELETE" || first["resource"] != nil || first["response"].(fhir.Object)["etag"] != `W/"8"` {
				t.Errorf("newest entry %v is not the deletion", first)
			}
			last := entries[7].(fhir.Object)
			if last["request"].(fhir.Object)["method"] != "POST" || last["fullUrl"] != testBase+"/Patient/h1" {
				t.Errorf("oldest entry %v is not the create", last)
			}
		})
		t.Run("history and search Bundles are valid R4", func(t *testing.T) {
			h, err := e.History(ctx, "", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := validate.Resource(reparse(t, h), validate.Options{}); err != nil {
				t.Errorf("history Bundle: %v", err)
			}
			s, err := e.Search(ctx, "Patient", url.Values{"_total": {"accurate"}, "bogus": {"1"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := validate.Resource(reparse(t, s), validate.Options{}); err != nil {
				t.Errorf("searchset Bundle: %v", err)
			}
		})
		t.Run("history pages by cursor without skipping or repeating", func(t *testing.T) {
			seen := map[string]bool{}
			next := testBase + "/_history?_count=3"
			pages := 0
			for next != "" {
				u, _ := url.Parse(next)
				h, err := e.History(ctx, "", "", u.Query())
				if err != nil {
					t.Fatal(err)
				}
				h = reparse(t, h)
				pages++
				next = ""
				for _, l := range h["link"].([]any) {
					if l.(fhir.Object)["relation"] == "next" {
						next = l.(fhir.Object)["url"].(string)
					}
				}
				entries, _ := h["entry"].([]any)
				for _, en := range entries {
					r := en.(fhir.Object)["response"].(fhir.Object)
					key := en.(fhir.Object)["fullUrl"].(string) + r["etag"].(string)
					if seen[key] {
						t.Errorf("version %s on two pages", key)
					}
					seen[key] = true
				}
			}
			if len(seen) != 9 || pages != 3 {
				t.Errorf("got %d versions on %d pages, want 9 on 3", len(seen), pages)
			}
		})
		t.Run("type history lists only that type", func(t *testing.T) {
			h, err := e.History(ctx, "Organization", "", nil)
			if err != nil || len(h["entry"].([]any)) != 1 {
				t.Fatalf("got %v, %v", h, err)
			}
		})
		t.Run("_since keeps the versions written at or after it", func(t *testing.T) {
			all, err := e.History(ctx, "Patient", "h1", nil)
			if err != nil {
				t.Fatal(err)
			}
			entries := reparse(t, all)["entry"].([]any)
			since := entries[2].(fhir.Object)["response"].(fhir.Object)["lastModified"].(string)
			h, err := e.History(ctx, "Patient", "h1", url.Values{"_since": {since}})
			if err != nil {
				t.Fatal(err)
			}
			got := reparse(t, h)["entry"].([]any)
			for _, en := range got {
				lm := en.(fhir.Object)["response"].(fhir.Object)["lastModified"].(string)
				if lm < since {
					t.Errorf("version modified %s is before _since %s", lm, since)
				}
			}
			if len(got) < 3 {
				t.Errorf("got %d versions since %s, want at least 3", len(got), since)
			}
		})
		t.Run("_since in the future gives no entries", func(t *testing.T) {
			h, err := e.History(ctx, "", "", url.Values{"_since": {"2999-01-01T00:00:00Z"}})
			if err != nil || h["entry"] != nil {
				t.Fatalf("got %v, %v", h["entry"], err)
			}
		})
		t.Run("a malformed _since is 400", func(t *testing.T) {
			_, err := e.History(ctx, "", "", url.Values{"_since": {"yesterday"}})
			wantKind(t, err, fhir.EInvalid)
		})
		t.Run("history of a resource that never existed is 404", func(t *testing.T) {
			_, err := e.History(ctx, "Patient", "never", nil)
			wantKind(t, err, fhir.ENotFound)
		})
		t.Run("unknown history parameters are 400 under strict handling", func(t *testing.T) {
			_, err := e.History(WithHandling(ctx, true), "", "", url.Values{"foo": {"1"}})
			wantKind(t, err, fhir.EInvalid)
		})
	})
}

func TestSearch(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		a := mustCreate(t, e, "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:a","value":"1"},{"value":"nosys"}]}`)
		b := mustCreate(t, e, "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:b","value":"1"}]}`)
		c := mustCreate(t, e, "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:a","value":"a,b|c"}]}`)
		o := mustCreate(t, e, "Organization", `{"resourceType":"Organization","identifier":[{"system":"urn:a","value":"1"}]}`)
		ids := func(t *testing.T, typ string, q url.Values) []string {
			t.Helper()
			bundle, err := e.Search(ctx, typ, q)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			entries, _ := bundle["entry"].([]any)
			for _, en := range entries {
				if en.(fhir.Object)["search"].(fhir.Object)["mode"] == "match" {
					var r fhir.Object
					json.Unmarshal(en.(fhir.Object)["resource"].(json.RawMessage), &r)
					out = append(out, r["id"].(string))
				}
			}
			return out
		}
		same := func(got []string, want ...string) bool {
			if len(got) != len(want) {
				return false
			}
			m := map[string]bool{}
			for _, g := range got {
				m[g] = true
			}
			for _, w := range want {
				if !m[w] {
					return false
				}
			}
			return true
		}
		for _, tc := range []struct {
			name string
			typ  string
			q    url.Values
			want []string
		}{
			{"_id matches the id", "Patient", url.Values{"_id": {a.ID}}, []string{a.ID}},
			{"_id with a comma is OR", "Patient", url.Values{"_id": {a.ID + "," + b.ID}}, []string{a.ID, b.ID}},
			{"identifier code matches any system", "Patient", url.Values{"identifier": {"1"}}, []string{a.ID, b.ID}},
			{"identifier system|code matches both", "Patient", url.Values{"identifier": {"urn:a|1"}}, []string{a.ID}},
			{"identifier |code matches only identifiers without a system", "Patient", url.Values{"identifier": {"|nosys"}}, []string{a.ID}},
			{"identifier system| matches any code in the system", "Patient", url.Values{"identifier": {"urn:a|"}}, []string{a.ID, c.ID}},
			{"escaped comma and bar are part of the value", "Patient", url.Values{"identifier": {`urn:a|a\,b\|c`}}, []string{c.ID}},
			{"two occurrences of a parameter are AND", "Patient", url.Values{"identifier": {"urn:a|1", "|nosys"}}, []string{a.ID}},
			{"search is limited to the type", "Organization", url.Values{"identifier": {"urn:a|1"}}, []string{o.ID}},
			{"system search spans types", "", url.Values{"identifier": {"urn:a|1"}}, []string{a.ID, o.ID}},
			{"system search with _type", "", url.Values{"identifier": {"urn:a|1"}, "_type": {"Organization"}}, []string{o.ID}},
			{"deleted resources are not found", "Patient", url.Values{"_id": {"gone"}}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := ids(t, tc.typ, tc.q); !same(got, tc.want...) {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			})
		}
		t.Run("paging by cursor returns every match once", func(t *testing.T) {
			seen := map[string]bool{}
			q := url.Values{"_count": {"1"}, "_total": {"accurate"}}
			for pages := 0; ; pages++ {
				bundle, err := e.Search(ctx, "Patient", q)
				if err != nil {
					t.Fatal(err)
				}
				if bundle["total"] != 3 {
					t.Errorf("total %v, want 3", bundle["total"])
				}
				for _, id := range ids(t, "Patient", q) {
					if seen[id] {
						t.Errorf("%s on two pages", id)
					}
					seen[id] = true
				}
				next := ""
				for _, l := range bundle["link"].([]any) {
					if l.(fhir.Object)["relation"] == "next" {
						next = l.(fhir.Object)["url"].(string)
					}
				}
				if next == "" || pages > 5 {
					break
				}
				if !strings.HasPrefix(next, testBase+"/Patient?") {
					t.Errorf("next link %q is not absolute under the base", next)
				}
				u, _ := url.Parse(next)
				q = u.Query()
			}
			if len(seen) != 3 {
				t.Errorf("saw %d patients, want 3", len(seen))
			}
		})
		t.Run("unknown parameters are ignored and reported under lenient handling", func(t *testing.T) {
			bundle, err := e.Search(ctx, "Patient", url.Values{"_id": {a.ID}, "frobnicate": {"1"}})
			if err != nil {
				t.Fatal(err)
			}
			s := string(fhir.Marshal(bundle))
			if !strings.Contains(s, `"mode":"outcome"`) || !strings.Contains(s, "frobnicate") {
				t.Errorf("no outcome entry naming the parameter: %s", s)
			}
			if strings.Contains(bundle["link"].([]any)[0].(fhir.Object)["url"].(string), "frobnicate") {
				t.Errorf("self link names an ignored parameter")
			}
		})
		t.Run("unknown parameters are 400 under strict handling", func(t *testing.T) {
			_, err := e.Search(WithHandling(ctx, true), "Patient", url.Values{"frobnicate": {"1"}})
			wantKind(t, err, fhir.EInvalid)
		})
		for _, p := range []string{"_filter", "_contained", "general-practitioner:above"} {
			t.Run("known but unsupported "+p+" is an error, never a wider result", func(t *testing.T) {
				_, err := e.Search(ctx, "Patient", url.Values{p: {"x"}})
				wantKind(t, err, fhir.ENotSupported)
			})
		}
		t.Run("_count must be a number", func(t *testing.T) {
			_, err := e.Search(ctx, "Patient", url.Values{"_count": {"x"}})
			wantKind(t, err, fhir.EInvalid)
		})
	})
}

func TestValidateAndCapabilities(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		ctx := context.Background()
		t.Run("a valid resource gives an information issue", func(t *testing.T) {
			oo, err := e.Validate(ctx, "Patient", []byte(`{"resourceType":"Patient"}`), WriteOptions{})
			if err != nil || oo["issue"].([]any)[0].(fhir.Object)["severity"] != "information" {
				t.Fatalf("got %v, %v", oo, err)
			}
		})
		t.Run("an invalid resource gives its errors and is not stored", func(t *testing.T) {
			oo, err := e.Validate(ctx, "Patient", []byte(`{"resourceType":"Patient","id":"v1","gender":"robot"}`), WriteOptions{})
			if err != nil || oo["issue"].([]any)[0].(fhir.Object)["severity"] != "error" {
				t.Fatalf("got %v, %v", oo, err)
			}
			_, err = e.Read(ctx, "Patient", "v1")
			wantKind(t, err, fhir.ENotFound)
		})
		t.Run("a resource wrapped in Parameters is validated", func(t *testing.T) {
			oo, err := e.Validate(ctx, "Patient", []byte(`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient","gender":"robot"}}]}`), WriteOptions{})
			if err != nil || oo["issue"].([]any)[0].(fhir.Object)["severity"] != "error" {
				t.Fatalf("got %v, %v", oo, err)
			}
		})
		t.Run("a body of another type is 400", func(t *testing.T) {
			_, err := e.Validate(ctx, "Patient", []byte(`{"resourceType":"Group"}`), WriteOptions{})
			wantKind(t, err, fhir.EInvalid)
		})
		t.Run("the CapabilityStatement lists what is implemented", func(t *testing.T) {
			c := e.Capabilities()
			rest := c["rest"].([]any)[0].(fhir.Object)
			var patient fhir.Object
			for _, r := range rest["resource"].([]any) {
				if r.(fhir.Object)["type"] == "Patient" {
					patient = r.(fhir.Object)
				}
			}
			if c["fhirVersion"] != "4.0.1" || c["kind"] != "instance" || patient == nil || patient["conditionalDelete"] != "single" {
				t.Fatalf("unexpected CapabilityStatement %s", fhir.Marshal(c))
			}
			if _, err := validate.Resource(reparse(t, c), validate.Options{}); err != nil {
				t.Errorf("the CapabilityStatement is not valid R4: %v", err)
			}
			var params []string
			for _, p := range patient["searchParam"].([]any) {
				params = append(params, p.(fhir.Object)["name"].(string))
			}
			for _, want := range []string{"_id", "_lastUpdated", "_text", "_content", "identifier", "name", "birthdate", "general-practitioner"} {
				if !slices.Contains(params, want) {
					t.Errorf("Patient search params %v lack %s", params, want)
				}
			}
			for _, unsupported := range []string{"_query", "phonetic"} {
				if slices.Contains(params, unsupported) {
					t.Errorf("Patient search params list %s, which is not implemented", unsupported)
				}
			}
		})
	})
}
