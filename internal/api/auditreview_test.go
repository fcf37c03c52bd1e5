package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/sharedcare/sharedcare/internal/access/accesstest"
	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// queueAlert is one alert of the queue as a client reads it.
type queueAlert struct {
	entry               int64
	status, note, who   string
	flags, patients     []string
	reviewer, reviewRef string
}

// fetchQueue reads GET /fhir/$access-alerts (status want) and returns its
// alerts and next link.
func fetchQueue(t *testing.T, url, tok string, want int) ([]queueAlert, string, string) {
	t.Helper()
	code, body := call(t, http.MethodGet, url, tok, "")
	if code != want {
		t.Fatalf("GET %s: %d %s, want %d", url, code, body, want)
	}
	if code != http.StatusOK {
		return nil, "", body
	}
	var p struct {
		ResourceType string
		Parameter    []struct {
			Name     string
			ValueURI string `json:"valueUri"`
			Part     []struct {
				Name           string
				ValueInteger   int64
				ValueString    string
				ValueCode      string
				ValueReference struct{ Reference string }
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil || p.ResourceType != "Parameters" {
		t.Fatalf("GET %s: %v %s", url, err, body)
	}
	var out []queueAlert
	next := ""
	for _, prm := range p.Parameter {
		if prm.Name == "next" {
			next = prm.ValueURI
			continue
		}
		var a queueAlert
		for _, pt := range prm.Part {
			switch pt.Name {
			case "entry":
				a.entry = pt.ValueInteger
			case "status":
				a.status = pt.ValueCode
			case "note":
				a.note = pt.ValueString
			case "user":
				a.who = pt.ValueString
			case "flag":
				a.flags = append(a.flags, pt.ValueCode)
			case "patient":
				a.patients = append(a.patients, pt.ValueReference.Reference)
			case "reviewer":
				a.reviewer = pt.ValueString
			case "review":
				a.reviewRef = pt.ValueReference.Reference
			}
		}
		out = append(out, a)
	}
	return out, next, body
}

func reviewBody(entry any, outcome, note string) string {
	return fmt.Sprintf(`{"resourceType":"Parameters","parameter":[{"name":"entry","valueInteger":%v},{"name":"outcome","valueCode":%q},{"name":"note","valueString":%q}]}`, entry, outcome, note)
}

// statuses maps each alert's entry to its status.
func statuses(as []queueAlert) map[int64]string {
	m := map[int64]string{}
	for _, a := range as {
		m[a.entry] = a.status
	}
	return m
}

// TestAccessAlertQueue: the privacy officer's queue lists every flagged
// entry (break-glass, self-claim, objection override, labelled data) with
// who, whose record and the flags, each "unreviewed" until the officer
// records an outcome; the latest review counts, status=unreviewed and
// =reviewed split the queue, pages continue with a next link, and every
// review is an entry of the tamper-evident log naming the reviewer and the
// entry reviewed. The person sees the alerts about their own record but
// restricted ones, with the outcome and not the note; others are refused.
func TestAccessAlertQueue(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			l := auditLog(t, st)
			base, toks := auditedAccessNode(t, st, l)
			now := time.Now()
			glass := logged(t, l, now, "dr-glass", "A1", false, []string{audit.FlagBreakGlass}, "alice")
			labelled := logged(t, l, now, "dr-label", "B1", false, []string{audit.FlagLabelled}, "bob")
			claim := logged(t, l, now, "dr-claim", "A1", true, []string{audit.FlagSelfClaimed}, "alice")
			override := logged(t, l, now, "dr-over", "A1", false, []string{audit.FlagObjectionOverride, audit.FlagLabelled}, "alice")
			logged(t, l, now, "dr-plain", "A1", false, nil, "alice") // no flag: no alert
			queue := base + "/$access-alerts"
			po := toks["gp-privacy"]

			as, _, _ := fetchQueue(t, queue, po, http.StatusOK)
			want := map[int64]string{glass: "unreviewed", labelled: "unreviewed", claim: "unreviewed", override: "unreviewed"}
			if got := statuses(as); !mapsEqual(got, want) {
				t.Fatalf("queue %v, want %v", got, want)
			}
			if as[0].entry != override || as[0].who != "dr-over" || !slices.Equal(as[0].flags, []string{audit.FlagObjectionOverride, audit.FlagLabelled}) ||
				!slices.Equal(as[0].patients, []string{"Patient/alice"}) {
				t.Fatalf("newest alert %+v", as[0])
			}

			post := func(tok, body string, want int) string {
				t.Helper()
				code, got := call(t, http.MethodPost, queue, tok, body)
				if code != want {
					t.Fatalf("POST %s: %d %s, want %d", body, code, got, want)
				}
				return got
			}
			if got := post(po, reviewBody(glass, "appropriate", "NOTE-GLASS: emergency confirmed"), 200); !strings.Contains(got, `"valueCode":"appropriate"`) {
				t.Fatalf("review answer %s", got)
			}
			post(po, reviewBody(labelled, "inappropriate", "NOTE-LABEL-1"), 200)
			post(toks["admin"], reviewBody(labelled, "escalated", "NOTE-LABEL-2: to the Caldicott guardian"), 200)

			as, _, _ = fetchQueue(t, queue, po, http.StatusOK)
			want = map[int64]string{glass: "appropriate", labelled: "escalated", claim: "unreviewed", override: "unreviewed"}
			if got := statuses(as); !mapsEqual(got, want) {
				t.Fatalf("after reviews %v, want %v", got, want)
			}
			for _, a := range as {
				if a.entry == labelled && (a.note != "NOTE-LABEL-2: to the Caldicott guardian" || a.reviewer != "admin") {
					t.Errorf("the latest review does not count: %+v", a)
				}
			}
			un, _, _ := fetchQueue(t, queue+"?status=unreviewed", po, http.StatusOK)
			if got := statuses(un); !mapsEqual(got, map[int64]string{claim: "unreviewed", override: "unreviewed"}) {
				t.Errorf("status=unreviewed: %v", got)
			}
			rv, _, _ := fetchQueue(t, queue+"?status=reviewed&patient=Patient/bob", po, http.StatusOK)
			if got := statuses(rv); !mapsEqual(got, map[int64]string{labelled: "escalated"}) {
				t.Errorf("status=reviewed for bob: %v", got)
			}

			// Pages of one, newest first, through the whole queue.
			var paged []int64
			url := queue + "?_count=1"
			for i := 0; url != "" && i < 10; i++ {
				var page []queueAlert
				page, url, _ = fetchQueue(t, url, po, http.StatusOK)
				for _, a := range page {
					paged = append(paged, a.entry)
				}
			}
			if !slices.Equal(paged, []int64{override, claim, labelled, glass}) {
				t.Errorf("paged %v", paged)
			}

			// The reviews are in the log: restricted, flagged, naming the
			// reviewer and referencing the alert with the outcome.
			got, err := l.Search(ctx, audit.Query{User: "po-gp", Flagged: true})
			if err != nil || len(got) != 2 {
				t.Fatalf("reviews by po-gp in the log: %v, %d", err, len(got))
			}
			r := got[1]
			if !r.Restricted || !slices.Equal(r.Flags, []string{audit.FlagReview}) || r.Org != accesstest.GP1 || r.Role != "privacy-officer" ||
				!slices.Equal(r.Patients, []string{"alice"}) ||
				!strings.Contains(string(r.Event), `"reference":"AuditEvent/`+itoa(glass)+`"`) || !strings.Contains(string(r.Event), "NOTE-GLASS") {
				t.Fatalf("review entry %+v %s", r, r.Event)
			}
			// The requests themselves are audited like every interaction:
			// so far the officer read the queue 8 times (4 of them pages) and
			// posted 2 reviews.
			all, err := l.Search(ctx, audit.Query{User: "po-gp"})
			requests := 0
			for _, e := range all {
				if len(e.Flags) == 0 && strings.Contains(eventQuery(e.Event), "$access-alerts") {
					requests++
				}
			}
			if err != nil || requests != 10 {
				t.Fatalf("%d of the officer's 10 requests audited (%v)", requests, err)
			}
			// And the log with them still verifies.
			rep, err := audit.Verify(ctx, st.(store.AuditStore), note.VerifierList(l.Verifier()), nil)
			if err != nil || !rep.OK() {
				t.Fatalf("the log does not verify after reviews: %v %+v", err, rep)
			}

			// The person: their own unreviewed and reviewed alerts, the
			// outcome without the note; not the restricted self-claim, not bob's.
			mine, _, body := fetchQueue(t, queue, toks["alice"], http.StatusOK)
			if got := statuses(mine); !mapsEqual(got, map[int64]string{glass: "appropriate", override: "unreviewed"}) {
				t.Fatalf("alice's queue %v", got)
			}
			if strings.Contains(body, "NOTE-") || strings.Contains(body, "dr-claim") {
				t.Fatalf("alice's queue discloses a note or a restricted alert: %s", body)
			}
			fetchQueue(t, queue+"?patient=Patient/bob", toks["alice"], http.StatusForbidden)

			// Refusals: staff, proxies and people neither list all nor review.
			fetchQueue(t, queue, toks["gp-clinician"], http.StatusForbidden)
			fetchQueue(t, queue, toks["proxy-full"], http.StatusForbidden)
			for _, c := range []string{"gp-clinician", "alice", "proxy-full", "acute-system"} {
				post(toks[c], reviewBody(override, "appropriate", ""), http.StatusForbidden)
			}
			if st := statuses(func() []queueAlert { a, _, _ := fetchQueue(t, queue, po, 200); return a }()); st[override] != "unreviewed" {
				t.Fatalf("a refused review counts: %v", st)
			}
		})
	}
}

// TestAccessAlertReviewInput: a review that names no alert, an unknown
// outcome, a malformed body or an entry that is not an alert is a 400
// OperationOutcome; an entry that does not exist a 404; nothing is
// recorded as a review for any of them.
func TestAccessAlertReviewInput(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			l := auditLog(t, st)
			base, toks := auditedAccessNode(t, st, l)
			alert := logged(t, l, time.Now(), "dr-glass", "A1", false, []string{audit.FlagBreakGlass}, "alice")
			plain := logged(t, l, time.Now(), "dr-plain", "A1", false, nil, "alice")
			code, _ := call(t, http.MethodPost, base+"/$access-alerts", toks["gp-privacy"], reviewBody(alert, "appropriate", "first"))
			if code != http.StatusOK {
				t.Fatalf("review: %d", code)
			}
			first, err := l.Search(ctx, audit.Query{User: "po-gp", Flagged: true})
			if err != nil || len(first) != 1 {
				t.Fatalf("review entries: %v %d", err, len(first))
			}
			for _, c := range []struct {
				rule, body string
				status     int
			}{
				{"not Parameters", `{"resourceType":"Patient"}`, 400},
				{"not JSON", `{`, 400},
				{"no entry", `{"resourceType":"Parameters","parameter":[{"name":"outcome","valueCode":"appropriate"}]}`, 400},
				{"no outcome", `{"resourceType":"Parameters","parameter":[{"name":"entry","valueInteger":` + itoa(alert) + `}]}`, 400},
				{"an unknown outcome", reviewBody(alert, "fine", ""), 400},
				{"a negative entry", reviewBody(-1, "appropriate", ""), 400},
				{"an entry that is not an integer", reviewBody(`"x"`, "appropriate", ""), 400},
				{"an entry given twice", `{"resourceType":"Parameters","parameter":[{"name":"entry","valueInteger":1},{"name":"entry","valueInteger":2},{"name":"outcome","valueCode":"appropriate"}]}`, 400},
				{"an unknown parameter", `{"resourceType":"Parameters","parameter":[{"name":"verdict","valueCode":"appropriate"}]}`, 400},
				{"an entry without flags", reviewBody(plain, "appropriate", ""), 400},
				{"a review of a review", reviewBody(first[0].Index, "appropriate", ""), 400},
				{"a note too long", reviewBody(alert, "appropriate", strings.Repeat("n", 4001)), 400},
				{"an entry past the log", reviewBody(999999, "appropriate", ""), 404},
				{"an event that is not an AuditEvent", `{"resourceType":"Parameters","parameter":[{"name":"event","valueReference":{"reference":"Patient/` + itoa(alert) + `"}},{"name":"outcome","valueCode":"appropriate"}]}`, 400},
				{"an event whose id is not an index", `{"resourceType":"Parameters","parameter":[{"name":"event","valueReference":{"reference":"AuditEvent/0` + itoa(alert) + `"}},{"name":"outcome","valueCode":"appropriate"}]}`, 400},
				{"both entry and event", `{"resourceType":"Parameters","parameter":[{"name":"entry","valueInteger":` + itoa(alert) + `},{"name":"event","valueReference":{"reference":"AuditEvent/` + itoa(alert) + `"}},{"name":"outcome","valueCode":"appropriate"}]}`, 400},
				{"a bad status filter", "", 400},
			} {
				t.Run(c.rule, func(t *testing.T) {
					method, url := http.MethodPost, base+"/$access-alerts"
					if c.body == "" {
						method, url = http.MethodGet, url+"?status=pending"
					}
					code, body := call(t, method, url, toks["gp-privacy"], c.body)
					if code != c.status || !strings.Contains(body, `"OperationOutcome"`) {
						t.Fatalf("%d %s, want %d OperationOutcome", code, body, c.status)
					}
				})
			}
			if got, err := l.Search(ctx, audit.Query{User: "po-gp", Flagged: true}); err != nil || len(got) != 1 {
				t.Fatalf("refused reviews were recorded: %v %d", err, len(got))
			}
			// The alert named by its event (entries past a FHIR integer's
			// range have no entry number in the queue).
			if code, body := call(t, http.MethodPost, base+"/$access-alerts", toks["gp-privacy"],
				`{"resourceType":"Parameters","parameter":[{"name":"event","valueReference":{"reference":"AuditEvent/`+itoa(alert)+`"}},{"name":"outcome","valueCode":"escalated"}]}`); code != http.StatusOK || !strings.Contains(body, `"escalated"`) {
				t.Fatalf("a review naming the event: %d %s", code, body)
			}
			if got, err := l.Search(ctx, audit.Query{User: "po-gp", Flagged: true}); err != nil || len(got) != 2 {
				t.Fatalf("the review naming the event was not recorded: %v %d", err, len(got))
			}
		})
	}
}

func mapsEqual(a, b map[int64]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
