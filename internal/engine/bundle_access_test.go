package engine

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// TestBundleAccessFilter: a batch's or transaction's GET entries are
// answered under the access filter (WithAccess) exactly as the direct
// requests are. A withheld resource's read, vread and history are the 404
// of a missing resource, word for word; a search or a type or system
// history leaves it out; a visible resource is served.
func TestBundleAccessFilter(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, e *Engine, st store.Store) {
		bg := context.Background()
		put := func(typ, id, body string) {
			t.Helper()
			if _, err := e.Update(bg, typ, id, []byte(body), WriteOptions{}); err != nil {
				t.Fatalf("%s/%s: %v", typ, id, err)
			}
		}
		cond := func(id, patient, text string) string {
			return `{"resourceType":"Condition","id":"` + id + `","code":{"text":"` + text + `"},"subject":{"reference":"Patient/` + patient + `"}}`
		}
		put("Patient", "seen", `{"resourceType":"Patient","id":"seen"}`)
		put("Patient", "hidden", `{"resourceType":"Patient","id":"hidden"}`)
		for _, text := range []string{"seen-dx-1", "seen-dx-2"} {
			put("Condition", "seen-cond", cond("seen-cond", "seen", text))
		}
		for _, text := range []string{"hidden-dx-1", "hidden-dx-2"} {
			put("Condition", "hidden-cond", cond("hidden-cond", "hidden", text))
		}
		put("Condition", "gone-cond", cond("gone-cond", "seen", "seen-dx-deleted"))
		if _, err := e.Delete(bg, "Condition", "gone-cond", WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		ctx := WithAccess(bg, &store.Filter{Grants: []store.Grant{{Patients: []string{"seen"}}}})

		// direct answers the entry's url as a request of its own would be:
		// the resource or Bundle served, or the error.
		direct := func(t *testing.T, u string) (any, error) {
			t.Helper()
			path, raw, _ := strings.Cut(u, "?")
			q, _ := url.ParseQuery(raw)
			s := strings.Split(path, "/")
			switch {
			case len(s) == 1 && s[0] == "_history":
				return e.History(ctx, "", "", q)
			case len(s) == 1:
				return e.Search(ctx, s[0], q)
			case len(s) == 2 && s[1] == "_history":
				return e.History(ctx, s[0], "", q)
			case len(s) == 2:
				v, err := e.Read(ctx, s[0], s[1])
				if err != nil {
					return nil, err
				}
				return parseBody(t, v.Body), nil
			case len(s) == 3:
				return e.History(ctx, s[0], s[1], q)
			default:
				v, err := e.VRead(ctx, s[0], s[1], s[3])
				if err != nil {
					return nil, err
				}
				return parseBody(t, v.Body), nil
			}
		}
		// batch runs one GET entry in a batch of its own and returns its
		// response entry as JSON.
		batch := func(t *testing.T, u string) (fhir.Object, string) {
			t.Helper()
			b, err := e.Bundle(ctx, txn("batch", `{"request":{"method":"GET","url":"`+u+`"}}`), WriteOptions{})
			if err != nil {
				t.Fatalf("batch GET %s: %v", u, err)
			}
			en := respEntries(t, b)[0]
			return en, string(fhir.Marshal(en))
		}
		for _, tc := range []struct {
			name, url string
			status    string // the entry's and the direct request's
			missing   string // for a withheld one: the url of a missing one, answered alike
		}{
			{"a read of a visible resource", "Condition/seen-cond", "200 OK", ""},
			{"a read of a withheld resource", "Condition/hidden-cond", "404 Not Found", "Condition/no-such-cond"},
			{"a read of a deleted resource, which the filter cannot vouch for", "Condition/gone-cond", "404 Not Found", "Condition/no-such-cond"},
			{"a vread of a visible resource", "Condition/seen-cond/_history/1", "200 OK", ""},
			{"a vread of a withheld resource", "Condition/hidden-cond/_history/1", "404 Not Found", "Condition/no-such-cond/_history/1"},
			{"a vread of a withheld resource's version that does not exist", "Condition/hidden-cond/_history/9", "404 Not Found", "Condition/no-such-cond/_history/9"},
			{"the history of a visible resource", "Condition/seen-cond/_history", "200 OK", ""},
			{"the history of a withheld resource", "Condition/hidden-cond/_history", "404 Not Found", "Condition/no-such-cond/_history"},
			{"a type history leaves the withheld resource out", "Condition/_history", "200 OK", ""},
			{"a system history leaves the withheld resource out", "_history?_count=50", "200 OK", ""},
			{"a search leaves the withheld resource out", "Condition?_id=seen-cond,hidden-cond", "200 OK", ""},
			{"a search's includes leave the withheld resource out", "Condition?_id=seen-cond,hidden-cond&_include=Condition:subject", "200 OK", ""},
			{"a search by the withheld person finds nothing", "Condition?subject=Patient/hidden", "200 OK", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				en, got := batch(t, tc.url)
				if s := status(en); s != tc.status {
					t.Fatalf("GET %s in a batch: %s, want %s: %s", tc.url, s, tc.status, got)
				}
				if strings.Contains(got, "hidden-dx") || strings.Contains(got, "Patient/hidden") && !strings.Contains(tc.url, "Patient/hidden") {
					t.Errorf("GET %s in a batch disclosed the withheld record: %s", tc.url, got)
				}
				want, err := direct(t, tc.url)
				if tc.missing != "" {
					if fhir.KindOf(err) != fhir.ENotFound {
						t.Fatalf("the direct GET %s: %v, want a 404", tc.url, err)
					}
					_, miss := batch(t, tc.missing)
					if mid, id := strings.Split(tc.missing, "/")[1], strings.Split(tc.url, "/")[1]; got != strings.ReplaceAll(miss, mid, id) {
						t.Errorf("GET %s in a batch is told from a missing one:\n got     %s\n missing %s", tc.url, got, miss)
					}
					wantOC := string(fhir.Marshal(reparse(t, fhir.Outcome(atEntry(0, err)))))
					if gotOC := string(fhir.Marshal(en["response"].(fhir.Object)["outcome"])); gotOC != wantOC {
						t.Errorf("GET %s in a batch: outcome %s, the direct request's %s", tc.url, gotOC, wantOC)
					}
					return
				}
				if err != nil {
					t.Fatalf("the direct GET %s: %v", tc.url, err)
				}
				res, _ := en["resource"].(fhir.Object)
				w := reparse(t, fhir.Object{"x": want})["x"].(fhir.Object)
				if res["type"] == "searchset" {
					// A batch's searchset has no paging links; its matches
					// are the direct search's.
					gm, _ := entries(t, res)
					wm, _ := entries(t, w)
					spec := []string{"Condition/seen-cond"}
					if strings.Contains(tc.url, "subject=Patient/hidden") {
						spec = nil
					}
					if !sameSet(gm, wm) || !sameSet(gm, spec) {
						t.Errorf("GET %s in a batch matched %v, the direct search %v", tc.url, gm, wm)
					}
					return
				}
				if g, w := string(fhir.Marshal(res)), string(fhir.Marshal(w)); g != w {
					t.Errorf("GET %s in a batch served\n %s\nthe direct request\n %s", tc.url, g, w)
				}
				if !strings.Contains(got, "seen-dx") {
					t.Errorf("GET %s in a batch did not serve the visible record: %s", tc.url, got)
				}
			})
		}
		t.Run("one batch serves the visible entries and withholds the others", func(t *testing.T) {
			b, err := e.Bundle(ctx, txn("batch",
				`{"request":{"method":"GET","url":"Condition/seen-cond"}}`,
				`{"request":{"method":"GET","url":"Condition/hidden-cond"}}`,
				`{"request":{"method":"GET","url":"Condition/hidden-cond/_history/2"}}`,
				`{"request":{"method":"GET","url":"Condition/seen-cond/_history/2"}}`,
				`{"request":{"method":"GET","url":"Condition/hidden-cond/_history"}}`,
				`{"request":{"method":"GET","url":"Condition/seen-cond/_history"}}`,
			), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ens := respEntries(t, b)
			for i, want := range []string{"200 OK", "404 Not Found", "404 Not Found", "200 OK", "404 Not Found", "200 OK"} {
				if got := status(ens[i]); got != want {
					t.Errorf("entry %d: %s, want %s", i, got, want)
				}
			}
			if s := string(fhir.Marshal(b)); strings.Contains(s, "hidden-dx") {
				t.Errorf("the batch disclosed the withheld record: %s", s)
			}
		})
		t.Run("a transaction's GET of a withheld resource fails it as a missing one does", func(t *testing.T) {
			get := func(u string) error {
				_, err := e.Bundle(ctx, txn("transaction", `{"request":{"method":"GET","url":"`+u+`"}}`), WriteOptions{})
				return err
			}
			for _, u := range []string{"Condition/hidden-cond", "Condition/hidden-cond/_history/1", "Condition/hidden-cond/_history"} {
				err := get(u)
				miss := get(strings.Replace(u, "hidden-cond", "no-such-cond", 1))
				if fhir.KindOf(err) != fhir.ENotFound {
					t.Fatalf("GET %s in a transaction: %v, want a 404", u, err)
				}
				if g, m := string(fhir.Marshal(fhir.Outcome(err))), string(fhir.Marshal(fhir.Outcome(miss))); g != strings.ReplaceAll(m, "no-such-cond", "hidden-cond") {
					t.Errorf("GET %s in a transaction is told from a missing one:\n got     %s\n missing %s", u, g, m)
				}
			}
			b, err := e.Bundle(ctx, txn("transaction",
				`{"request":{"method":"GET","url":"Condition/seen-cond"}}`,
				`{"request":{"method":"GET","url":"Condition/seen-cond/_history/1"}}`,
				`{"request":{"method":"GET","url":"Condition/seen-cond/_history"}}`), WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range []string{"seen-dx-2", "seen-dx-1", "seen-dx-2"} {
				if en := respEntries(t, b)[i]; status(en) != "200 OK" || !strings.Contains(string(fhir.Marshal(en)), want) {
					t.Errorf("a transaction's GET %d of a visible resource: %s", i, fhir.Marshal(en))
				}
			}
		})
	})
}
