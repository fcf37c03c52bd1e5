package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/access/accesstest"
	"github.com/sharedcare/sharedcare/internal/api"
	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/policy"
)

// auditLog opens the real audit log over st, closed when the test ends.
func auditLog(t *testing.T, st store.Store) *audit.Log {
	t.Helper()
	l, err := audit.Open(context.Background(), st, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// auditedAccessNode serves the access fixture (people, proxies, staff of
// several organisations) with access control on and every interaction
// audited in l; it returns the base URL and a token per fixture caller
// (accesstest.Callers) plus "admin".
func auditedAccessNode(t *testing.T, st store.Store, l *audit.Log) (string, map[string]string) {
	t.Helper()
	cfg := config.Default()
	srv := httptest.NewUnstartedServer(nil)
	cfg.BaseURL = "http://" + srv.Listener.Addr().String() + "/fhir"
	cfg.DataDir = t.TempDir()
	a, err := auth.Load(context.Background(), st, cfg.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(st, engine.Config{BaseURL: cfg.BaseURL})
	accesstest.Load(t, eng, time.Now())
	pol, err := access.ParsePolicy(policy.Text)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = api.Audited(api.NewWithAccess(service{eng, st}, a, access.New(st, pol), cfg, nil), l, "test-node")
	srv.Start()
	t.Cleanup(srv.Close)
	toks := map[string]string{}
	for name, p := range accesstest.Callers {
		if toks[name], err = a.Issue(p, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if toks["admin"], err = a.IssueAdmin(time.Hour); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/fhir", toks
}

// logged records an entry of user at org about the patients at time at.
func logged(t *testing.T, l *audit.Log, at time.Time, user, org string, restricted bool, flags []string, patients ...string) int64 {
	t.Helper()
	e := &audit.Entry{Time: at, User: user, Role: "gp-clinician", Org: org, Patients: patients, Action: "R", Outcome: "0",
		Flags: flags, Restricted: restricted, Event: []byte(`{"resourceType":"AuditEvent","action":"R","subtype":[{"code":"read"}]}`)}
	if err := l.Record(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(context.Background()); err != nil { // for e.Index
		t.Fatal(err)
	}
	return e.Index
}

// searchset is a decoded audit search answer.
type searchset struct {
	Total *int
	Link  []struct{ Relation, URL string }
	Entry []struct {
		Resource struct {
			ID   string
			Meta struct{ Tag []struct{ Code string } }
		}
	}
}

func (s searchset) ids() []string {
	var out []string
	for _, e := range s.Entry {
		out = append(out, e.Resource.ID)
	}
	return out
}

func (s searchset) next() string {
	for _, l := range s.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

// auditGet runs an audit search and decodes its answer, failing the test
// unless the status is want.
func auditGet(t *testing.T, url, tok string, want int) (searchset, string) {
	t.Helper()
	code, body := call(t, http.MethodGet, url, tok, "")
	if code != want {
		t.Fatalf("GET %s: %d %s, want %d", url, code, body, want)
	}
	var s searchset
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatalf("GET %s: %v %s", url, err, body)
		}
	}
	return s, body
}

// idsOf are entry indexes as AuditEvent ids.
func idsOf(idx ...int64) []string {
	var out []string
	for _, i := range idx {
		out = append(out, itoa(i))
	}
	return out
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// TestAuditSearchPaging: a page holds _count entries newest first with a
// next link that continues exactly where it ended, until the last page;
// the total is given only when the whole result is on one page; a bad
// _count, cursor or unknown parameter is a 400 naming it.
func TestAuditSearchPaging(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			l := auditLog(t, st)
			base, tok := auditedNode(t, st, l)
			var want []int64
			for range 5 {
				want = append(want, logged(t, l, time.Now(), "dr-page", "A81001", false, nil, "pz"))
			}
			slices.Reverse(want)
			url := base + "/AuditEvent?agent=dr-page&patient=Patient/pz&_count=2"
			var got []string
			pages := 0
			for url != "" && pages < 10 {
				s, _ := auditGet(t, url, tok, http.StatusOK)
				if len(s.Entry) > 2 {
					t.Fatalf("page of %d entries, _count=2", len(s.Entry))
				}
				if s.Total != nil {
					t.Errorf("page %d of several gives a total", pages)
				}
				got = append(got, s.ids()...)
				url = s.next()
				pages++
				// Entries recorded meanwhile (these searches) do not shift the pages.
				logged(t, l, time.Now(), "dr-page", "A81001", false, nil, "pz")
			}
			if w := idsOf(want...); !slices.Equal(got, w) || pages != 3 {
				t.Fatalf("paged %v in %d pages, want %v in 3", got, pages, w)
			}
			s, _ := auditGet(t, base+"/AuditEvent?organization=A81001&_count=1000", tok, http.StatusOK)
			if s.Total == nil || *s.Total != len(s.Entry) || len(s.Entry) != 5+pages || s.next() != "" {
				t.Fatalf("one page: total %v, %d entries, next %q", s.Total, len(s.Entry), s.next())
			}
			for _, q := range []struct{ query, param string }{
				{"_count=0", "_count"}, {"_count=1001", "_count"}, {"_count=x", "_count"},
				{"_cursor=0", "_cursor"}, {"_cursor=-3", "_cursor"}, {"_cursor=abc", "_cursor"},
				{"action=R", "action"}, {"agent=a,b", "agent"}, {"agent=a&agent=b", "agent"},
				{"entity=Observation/1", "entity"}, {"patient=Observation/1", "patient"},
				{"patient=Patient/a&entity=Patient/b", "entity"},
			} {
				_, body := auditGet(t, base+"/AuditEvent?"+q.query, tok, http.StatusBadRequest)
				if !strings.Contains(body, `"expression":["`+q.param+`"]`) {
					t.Errorf("%s: outcome does not name %s: %s", q.query, q.param, body)
				}
			}
		})
	}
}

// TestAuditSearchDates: date takes a year, month, day or instant, alone
// or after eq, ge, gt, le, lt, sa or eb, each standing for its whole period
// (FHIR date search); several dates all apply; anything else (ne and ap
// among them) is a 400.
func TestAuditSearchDates(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			l := auditLog(t, st)
			base, tok := auditedNode(t, st, l)
			at := map[string]int64{}
			for _, ts := range []string{"2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z", "2026-03-15T12:00:00Z", "2026-03-31T23:59:59.5Z", "2026-04-01T00:00:00Z"} {
				tm, err := time.Parse(time.RFC3339Nano, ts)
				if err != nil {
					t.Fatal(err)
				}
				at[ts[:10]] = logged(t, l, tm, "dr-date", "A81001", false, nil, "pd")
			}
			for _, c := range []struct {
				rule  string
				dates string
				want  []string // days of the entries found, newest first
			}{
				{"ge a year is from its first instant", "ge2026", []string{"2026-04-01", "2026-03-31", "2026-03-15", "2026-01-01"}},
				{"lt a year is before it", "lt2026", []string{"2025-12-31"}},
				{"le a month includes its last instant", "le2026-03", []string{"2026-03-31", "2026-03-15", "2026-01-01", "2025-12-31"}},
				{"gt a month is after its end", "gt2026-03", []string{"2026-04-01"}},
				{"ge and le one day is that day", "ge2026-03-15&date=le2026-03-15", []string{"2026-03-15"}},
				{"gt an instant is after its second", "gt2026-03-31T23:59:59Z", []string{"2026-04-01"}},
				{"ge an instant and lt a day", "ge2026-03-15T12:00:00Z&date=lt2026-04-01", []string{"2026-03-31", "2026-03-15"}},
				{"an instant with an offset", "lt2026-01-01T01:00:00%2B01:00", []string{"2025-12-31"}},
				{"lt the first instant finds nothing at it", "lt2025-12-31T23:59:59Z", nil},
				{"a day alone is that day", "2026-03-15", []string{"2026-03-15"}},
				{"eq a month is that month", "eq2026-03", []string{"2026-03-31", "2026-03-15"}},
				{"a year alone is that year", "2025", []string{"2025-12-31"}},
				{"eq an instant is its second", "eq2026-03-31T23:59:59Z", []string{"2026-03-31"}},
				{"eq an instant's fraction is that fraction", "eq2026-03-31T23:59:59.5Z", []string{"2026-03-31"}},
				{"eq a second before the fraction misses it", "eq2026-03-31T23:59:58Z", nil},
				{"sa a month starts after its end", "sa2026-03", []string{"2026-04-01"}},
				{"eb a year ends before it", "eb2026", []string{"2025-12-31"}},
				{"eq a month and lt a day within it", "eq2026-03&date=lt2026-03-20", []string{"2026-03-15"}},
			} {
				t.Run(c.rule, func(t *testing.T) {
					s, _ := auditGet(t, base+"/AuditEvent?agent=dr-date&date="+c.dates, tok, http.StatusOK)
					var want []string
					for _, d := range c.want {
						want = append(want, itoa(at[d]))
					}
					if got := s.ids(); !slices.Equal(got, want) {
						t.Fatalf("got %v, want %v (%v)", got, want, c.want)
					}
				})
			}
			for _, d := range []string{"ne2026", "ap2026", "xx2026", "ge2026-13", "ge26", "26", "ge2026-03-15T12:00:00", "ge2026-03-15T12:00Z", "2026-03-15T12:00:00", "ge", "e", ""} {
				if _, body := auditGet(t, base+"/AuditEvent?date="+d, tok, http.StatusBadRequest); !strings.Contains(body, `"expression":["date"]`) {
					t.Errorf("date=%s: %s", d, body)
				}
			}
		})
	}
}

// TestAuditSearchByWhoWhomWhere: the privacy officer searches by user
// (agent), person (patient or entity) and organisation, alone or together,
// and sees restricted entries; the person sees only their own unrestricted
// entries whatever they narrow by; staff other than the privacy officer
// are refused.
func TestAuditSearchByWhoWhomWhere(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			l := auditLog(t, st)
			base, toks := auditedAccessNode(t, st, l)
			old := time.Date(2020, 5, 1, 10, 0, 0, 0, time.UTC)
			aA := logged(t, l, old, "dr-a", "A1", false, nil, "alice")
			bB := logged(t, l, old.Add(time.Minute), "dr-b", "B1", false, nil, "alice")
			aB := logged(t, l, old.Add(2*time.Minute), "dr-a", "B1", false, nil, "bob")
			rB := logged(t, l, old.Add(3*time.Minute), "dr-b", "B1", true, nil, "alice")
			// Every search is itself audited (with the person it names): the
			// date keeps those out of what is counted.
			const in2020 = "&date=lt2021"
			for _, c := range []struct {
				rule, caller, query string
				want                []int64
			}{
				{"by user", "gp-privacy", "agent=dr-a", []int64{aB, aA}},
				{"by organisation, restricted included", "gp-privacy", "organization=B1", []int64{rB, aB, bB}},
				{"by person", "gp-privacy", "patient=Patient/alice", []int64{rB, bB, aA}},
				{"by person as entity", "gp-privacy", "entity=Patient/alice", []int64{rB, bB, aA}},
				{"by user and person", "gp-privacy", "agent=dr-a&patient=alice", []int64{aA}},
				{"by organisation and user", "admin", "organization=B1&agent=dr-b", []int64{rB, bB}},
				{"the person's own view leaves out restricted entries", "alice", "", []int64{bB, aA}},
				{"the person narrows within their own view", "alice", "organization=B1", []int64{bB}},
				{"the person naming themself", "alice", "patient=Patient/alice", []int64{bB, aA}},
				{"another person sees nothing of alice", "dave", "agent=dr-a", nil},
			} {
				t.Run(c.rule, func(t *testing.T) {
					s, _ := auditGet(t, base+"/AuditEvent?"+strings.TrimPrefix(c.query+in2020, "&"), toks[c.caller], http.StatusOK)
					if got, want := s.ids(), idsOf(c.want...); !slices.Equal(got, want) {
						t.Fatalf("got %v, want %v", got, want)
					}
				})
			}
			for _, c := range []struct{ rule, caller, query string }{
				{"a person may not name another", "alice", "patient=Patient/bob"},
				{"a clinician is refused", "gp-clinician", "patient=Patient/alice"},
				{"a system is refused", "acute-system", ""},
			} {
				t.Run(c.rule, func(t *testing.T) {
					if _, body := auditGet(t, base+"/AuditEvent?"+c.query, toks[c.caller], http.StatusForbidden); strings.Contains(body, "dr-a") {
						t.Fatalf("refusal discloses entries: %s", body)
					}
				})
			}
		})
	}
}

// TestAuditSearchProxies: a proxy whose person granted them full access
// sees who looked at that person's record as the person does (restricted
// entries left out), naming the person; a proxy of a lower level, or
// asking about someone who granted them nothing, is refused; a proxy who
// names nobody is told to.
func TestAuditSearchProxies(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			l := auditLog(t, st)
			base, toks := auditedAccessNode(t, st, l)
			root := strings.TrimSuffix(base, "/fhir")
			old := time.Date(2020, 5, 1, 10, 0, 0, 0, time.UTC)
			seen := logged(t, l, old, "dr-a", "A1", false, []string{audit.FlagBreakGlass}, "alice")
			hidden := logged(t, l, old.Add(time.Minute), "dr-b", "B1", true, nil, "alice")
			bobs := logged(t, l, old.Add(2*time.Minute), "dr-a", "B1", false, nil, "bob")

			s, _ := auditGet(t, base+"/AuditEvent?patient=Patient/alice&date=lt2021", toks["proxy-full"], http.StatusOK)
			if got, want := s.ids(), idsOf(seen); !slices.Equal(got, want) {
				t.Fatalf("full proxy sees %v, want %v", got, want)
			}
			if len(s.Entry[0].Resource.Meta.Tag) != 1 || s.Entry[0].Resource.Meta.Tag[0].Code != audit.FlagBreakGlass {
				t.Errorf("the break-glass is not flagged to the proxy: %+v", s.Entry[0].Resource.Meta)
			}
			for _, c := range []struct {
				rule, caller, query string
				status              int
			}{
				{"summary level is refused", "proxy-summary", "patient=Patient/alice", 403},
				{"appointments level is refused", "proxy-appt", "patient=Patient/alice", 403},
				{"a full proxy of alice is refused bob's", "proxy-full", "patient=Patient/bob", 403},
				{"a proxy names the person", "proxy-full", "", 400},
			} {
				t.Run(c.rule, func(t *testing.T) {
					if _, body := auditGet(t, base+"/AuditEvent?"+c.query, toks[c.caller], c.status); strings.Contains(body, "dr-a") {
						t.Fatalf("refusal discloses entries: %s", body)
					}
				})
			}
			// The entries themselves, likewise.
			for _, c := range []struct {
				index  int64
				query  string
				status int
			}{
				{seen, "?patient=Patient/alice", 200}, {hidden, "?patient=Patient/alice", 404},
				{bobs, "?patient=Patient/alice", 404}, {seen, "", 400},
			} {
				if code, body := call(t, http.MethodGet, root+"/audit/entry/"+itoa(c.index)+c.query, toks["proxy-full"], ""); code != c.status {
					t.Errorf("entry %d%s as the full proxy: %d %s, want %d", c.index, c.query, code, body, c.status)
				}
			}
		})
	}
}

// TestAuditPersonViewCoversLinkedRecords: the person's "who looked" covers
// their whole record, every Patient the master patient index links to
// theirs (alice's records at the acute and mental health trusts), not only
// the Patient their token names; records of others stay out; a linked
// record may be named, another person's may not; the same holds for
// their alerts.
func TestAuditPersonViewCoversLinkedRecords(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			l := auditLog(t, st)
			base, toks := auditedAccessNode(t, st, l)
			at := time.Date(2020, 5, 1, 10, 0, 0, 0, time.UTC)
			own := logged(t, l, at, "dr-a", "A1", false, nil, "alice")
			acute := logged(t, l, at.Add(time.Minute), "dr-h", "RZ9", false, []string{audit.FlagBreakGlass}, "alice-rz9")
			mh := logged(t, l, at.Add(2*time.Minute), "dr-m", "RZ8", false, nil, "alice-rz8")
			logged(t, l, at.Add(3*time.Minute), "dr-h", "RZ9", false, nil, "bob-rz9")
			logged(t, l, at.Add(4*time.Minute), "dr-h", "RZ9", true, nil, "alice-rz9")

			s, _ := auditGet(t, base+"/AuditEvent?date=lt2021", toks["alice"], http.StatusOK)
			if got, want := s.ids(), idsOf(mh, acute, own); !slices.Equal(got, want) {
				t.Fatalf("alice sees %v, want her three records' unrestricted entries %v", got, want)
			}
			s, _ = auditGet(t, base+"/AuditEvent?date=lt2021&_count=2", toks["alice"], http.StatusOK)
			if got, want := s.ids(), idsOf(mh, acute); !slices.Equal(got, want) {
				t.Fatalf("first page of 2: %v, want %v", got, want)
			}
			s, _ = auditGet(t, base+"/AuditEvent?patient=Patient/alice-rz9&date=lt2021", toks["alice"], http.StatusOK)
			if got, want := s.ids(), idsOf(acute); !slices.Equal(got, want) {
				t.Fatalf("alice naming her acute record sees %v, want %v", got, want)
			}
			auditGet(t, base+"/AuditEvent?patient=Patient/bob-rz9", toks["alice"], http.StatusForbidden)

			code, body := call(t, http.MethodGet, base+"/$access-alerts", toks["alice"], "")
			if code != http.StatusOK || !strings.Contains(body, "dr-h") {
				t.Fatalf("alice's alerts miss the break-glass on her acute record: %d %s", code, body)
			}
		})
	}
}
