package api

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// isAuditSearch reports whether r is answered from the audit log rather
// than the store, before the access model decides it (the middleware calls
// auditSearch for it): the "who looked at my record" search of AuditEvent,
// and the privacy officer's alerts queue with its reviews
// (/fhir/$access-alerts, auditreview.go).
func isAuditSearch(r *http.Request) bool {
	p := strings.TrimSuffix(r.URL.Path, "/")
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	return get && p == "/fhir/AuditEvent" ||
		(get || r.Method == http.MethodPost) && p == "/fhir/$access-alerts"
}

// auditViewer is what one caller may see of the audit log.
type auditViewer struct {
	all bool // the privacy officer or the node operator: every entry
	// patients, otherwise: the unrestricted entries about these Patient
	// ids, the person's whole record (every record the master patient
	// index links to theirs: a hospital's copy is their record too).
	patients []string
}

// sees reports whether the viewer may see e.
func (v auditViewer) sees(e *audit.Entry) bool {
	if v.all {
		return true
	}
	if e.Restricted {
		return false
	}
	for _, p := range e.Patients {
		if slices.Contains(v.patients, p) {
			return true
		}
	}
	return false
}

// recordOf is the person's whole record for Patient id: the ids the
// master patient index links to it, or id alone on a node without the
// access model.
func (h *handler) recordOf(ctx context.Context, id string) ([]string, error) {
	dec := h.decider()
	if dec == nil {
		return []string{id}, nil
	}
	return dec.RecordOf(ctx, id)
}

// searchPeople runs aq once per Patient id of people and merges the
// results newest first, each entry once, at most aq.Limit.
func searchPeople(ctx context.Context, rd audit.Reader, aq audit.Query, people []string) ([]*audit.Entry, error) {
	if len(people) == 1 {
		aq.Patient = people[0]
		return rd.Search(ctx, aq)
	}
	seen := map[int64]bool{}
	var out []*audit.Entry
	for _, id := range people {
		q := aq
		q.Patient = id
		es, err := rd.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if !seen[e.Index] {
				seen[e.Index] = true
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b *audit.Entry) int { return cmp.Compare(b.Index, a.Index) })
	if aq.Limit > 0 && len(out) > aq.Limit {
		out = out[:aq.Limit]
	}
	return out, nil
}

// isPrivacyOfficer reports whether p reviews access for the node: the
// operator, or a user whose role is privacy-officer.
func isPrivacyOfficer(p *auth.Principal) bool {
	return p.Kind == auth.KindAdmin || p.Kind == auth.KindUser && p.Role == "privacy-officer"
}

// auditViewerOf decides what p may see of the audit log. patient is the
// person asked about ("" when not named). A person sees the accesses to
// their own record and may not name another; a proxy must name the person
// and sees their record's accesses only when that person granted them the
// level "full" (docs/ACCESS.md: the level that shows the whole record but
// labelled data; a lower level is a view of part of the record, and who
// looked at the rest is not part of it); everyone else is refused.
func (h *handler) auditViewerOf(ctx context.Context, p *auth.Principal, patient string) (auditViewer, error) {
	if isPrivacyOfficer(p) {
		return auditViewer{all: true}, nil
	}
	if p.Kind == auth.KindPatient {
		if id, ok := strings.CutPrefix(p.Subject, "Patient/"); ok && id != "" {
			record, err := h.recordOf(ctx, id)
			if err != nil {
				return auditViewer{}, err
			}
			if patient != "" {
				if !slices.Contains(record, patient) {
					return auditViewer{}, errorf(fhir.EForbidden, "forbidden", "a person sees only the accesses to their own record")
				}
				record = []string{patient}
			}
			return auditViewer{patients: record}, nil
		}
		if strings.HasPrefix(p.Subject, "RelatedPerson/") {
			if patient == "" {
				return auditViewer{}, fhir.Invalid("patient", "a proxy names the person whose record's accesses they ask for: patient=Patient/<id>")
			}
			record, err := h.proxyFullRecord(ctx, p, patient)
			if err != nil {
				return auditViewer{}, err
			}
			if record == nil {
				return auditViewer{}, errorf(fhir.EForbidden, "forbidden", "a proxy sees who looked at a person's record only when the person granted them full access")
			}
			return auditViewer{patients: record}, nil
		}
	}
	return auditViewer{}, errorf(fhir.EForbidden, "forbidden", "only the person, their proxy with full access and the privacy officer may read the audit log")
}

// proxyFullRecord returns the person's record (the Patient ids the
// grant covers) when the proxy p holds a grant of level "full" to
// patient's record, else nil. It asks the access model for the proxy's
// read filter as their grants alone make it (their token's scopes set
// aside: the grant is the person's decision) and looks for a grant over
// patient holding every type of the policy's level "full".
func (h *handler) proxyFullRecord(ctx context.Context, p *auth.Principal, patient string) ([]string, error) {
	dec := h.decider()
	if dec == nil {
		return nil, nil
	}
	pp := *p
	pp.Scopes = []string{"patient/*.rs"}
	c, err := access.CallerOf(&pp)
	if err != nil {
		return nil, err
	}
	f, err := dec.Filter(ctx, c, access.OpRead)
	if err != nil {
		return nil, err
	}
	pol := dec.Policy()
	cats := pol.Proxy["full"]
	if len(cats) == 0 {
		return nil, nil
	}
	dir := pol.Categories["directory"]
	var want []string
	for _, cat := range cats {
		for _, t := range pol.Categories[cat] {
			if !slices.Contains(dir, t) {
				want = append(want, t)
			}
		}
	}
	for _, g := range f.Grants {
		if g.NoPatient || !slices.Contains(g.Patients, patient) {
			continue
		}
		all := true
		for _, t := range want {
			if !slices.Contains(g.Types, t) {
				all = false
				break
			}
		}
		if all {
			return g.Patients, nil
		}
	}
	return nil, nil
}

// auditSearchParams are the parameters GET /fhir/AuditEvent understands.
// Any other is refused: an ignored filter would answer a privacy officer
// with more than they asked for, and they might not notice.
var auditSearchParams = map[string]bool{
	"patient": true, "entity": true, "agent": true, "organization": true, "date": true,
	"_count": true, "_cursor": true, "_format": true, "_pretty": true,
}

// auditPageMax is the largest _count; audit.Log serves at most this many.
const auditPageMax = 1000

// auditSearch serves the requests isAuditSearch selects. For GET
// /fhir/AuditEvent: a person sees the entries about themself except
// restricted ones, a proxy with full access the same of the person they
// name; the privacy officer and the node operator see every entry. All may
// narrow by patient (or entity=Patient/x), agent (the user), organization
// (ODS code) and date (a year, month, day or instant, alone or after eq,
// ge, gt, le, lt, sa or eb);
// pages hold _count entries (default 100, at most 1000), newest first,
// with a next link carrying _cursor (the entries before that index). Flags
// are returned as meta.tag codes of each AuditEvent.
func (h *handler) auditSearch(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if strings.TrimSuffix(r.URL.Path, "/") == "/fhir/$access-alerts" {
		h.alertQueue(w, r, p)
		return
	}
	rd, ok := h.audit.(audit.Reader)
	if !ok {
		h.fail(w, r, errorf(fhir.ENotSupported, "not-supported", "this node cannot search its audit log"))
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, r, fhir.Invalid("", "the query string is malformed"))
		return
	}
	aq, count, err := parseAuditQuery(q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v, err := h.auditViewerOf(r.Context(), p, aq.Patient)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	aq.Limit = count + 1 // one more tells whether there is a next page
	var entries []*audit.Entry
	if v.all {
		entries, err = rd.Search(r.Context(), aq)
	} else {
		aq.Unrestricted = true
		entries, err = searchPeople(r.Context(), rd, aq, v.patients)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	bundle := map[string]any{"resourceType": "Bundle", "type": "searchset"}
	links := []any{map[string]any{"relation": "self", "url": h.cfg.BaseURL + "/AuditEvent" + query(q)}}
	if len(entries) > count {
		entries = entries[:count]
		nq := url.Values{}
		for k, vs := range q {
			nq[k] = vs
		}
		nq.Set("_cursor", strconv.FormatInt(entries[len(entries)-1].Index, 10))
		links = append(links, map[string]any{"relation": "next", "url": h.cfg.BaseURL + "/AuditEvent" + query(nq)})
	} else if aq.Before == 0 {
		// The whole result is on this first page: its size is the total.
		bundle["total"] = len(entries)
	}
	bundle["link"] = links
	out := []any{}
	for _, e := range entries {
		var ev map[string]any
		if json.Unmarshal(e.Event, &ev) != nil {
			continue
		}
		ev["id"] = fmt.Sprint(e.Index)
		var tags []any
		for _, f := range e.Flags {
			tags = append(tags, map[string]any{"system": "https://sharedcare.example/audit-flag", "code": f})
		}
		if len(tags) > 0 {
			ev["meta"] = map[string]any{"tag": tags}
		}
		out = append(out, map[string]any{"fullUrl": h.cfg.BaseURL + "/AuditEvent/" + fmt.Sprint(e.Index), "resource": ev})
	}
	bundle["entry"] = out
	raw, _ := json.Marshal(bundle)
	h.sendRaw(w, r, http.StatusOK, raw)
}

// query is q as a URL's query part ("" when empty).
func query(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// parseAuditQuery reads the parameters of an audit search into a query
// (its Patient the person named, if any) and the page size.
func parseAuditQuery(q url.Values) (audit.Query, int, error) {
	var aq audit.Query
	for k, vs := range q {
		if !auditSearchParams[k] {
			return aq, 0, fhir.Invalid(k, "the audit log cannot be searched by %s: use patient, entity, agent, organization, date, _count", truncate(k))
		}
		if k != "date" && len(vs) > 1 {
			return aq, 0, fhir.Invalid(k, "give %s once", k)
		}
		for _, v := range vs {
			if strings.Contains(v, ",") && k != "_format" {
				return aq, 0, fhir.Invalid(k, "%s takes one value (no comma-separated list)", k)
			}
		}
	}
	for _, k := range []string{"patient", "entity"} {
		v := q.Get(k)
		if v == "" {
			continue
		}
		id, err := patientParam(k, v, k == "patient")
		if err != nil {
			return aq, 0, err
		}
		if aq.Patient != "" && aq.Patient != id {
			return aq, 0, fhir.Invalid(k, "patient and entity name different people")
		}
		aq.Patient = id
	}
	aq.User, aq.Org = q.Get("agent"), q.Get("organization")
	for _, d := range q["date"] {
		if err := applyDate(&aq, d); err != nil {
			return aq, 0, err
		}
	}
	count, before, err := auditPage(q)
	aq.Before = before
	return aq, count, err
}

// auditPage reads a page of the audit log's answers: _count (default 100,
// at most auditPageMax) and _cursor (from a next link: entries before it).
func auditPage(q url.Values) (count int, cursor int64, err error) {
	count = 100
	if v := q.Get("_count"); v != "" {
		if count, err = strconv.Atoi(v); err != nil || count < 1 || count > auditPageMax {
			return 0, 0, fhir.Invalid("_count", "_count must be an integer from 1 to %d", auditPageMax)
		}
	}
	if v := q.Get("_cursor"); v != "" {
		if cursor, err = strconv.ParseInt(v, 10, 64); err != nil || cursor < 1 {
			return 0, 0, fhir.Invalid("_cursor", "_cursor must be a page cursor from a next link")
		}
	}
	return count, cursor, nil
}

// patientParam reads parameter k's Patient reference (Patient/<id>, or a
// bare id when bare is true) into the id.
func patientParam(k, v string, bare bool) (string, error) {
	id := strings.TrimPrefix(v, "Patient/")
	if !bare && id == v || strings.Contains(id, "/") || id == "" {
		return "", fhir.Invalid(k, "%s must be a Patient reference, Patient/<id>", k)
	}
	return id, nil
}

// dateSyntax is the message of a date the audit search cannot read.
const dateSyntax = "date must be a year (2026), month (2026-11), day (2026-11-22) or instant with time zone (2026-11-22T09:30:00Z), alone or after eq, ge, gt, le, lt, sa or eb"

// applyDate narrows aq by one date parameter. A date stands for the whole
// period it names (FHIR search, date precision), and an entry's time is an
// instant: 2026-11 (or eq2026-11) is November, ge 2026-11 from the first of
// November on, le 2026-11 up to the end of November, gt and sa 2026-11 from
// December, lt and eb 2026-11 before November. Dates without a time are
// UTC days. Several dates all apply. ne and ap, which are not one period,
// are refused.
func applyDate(aq *audit.Query, d string) error {
	prefix := "eq"
	if len(d) >= 2 && (d[0] < '0' || d[0] > '9') {
		prefix, d = d[:2], d[2:]
	}
	start, end, err := datePeriod(d)
	if err != nil {
		return fhir.Invalid("date", dateSyntax)
	}
	since, until := time.Time{}, time.Time{}
	switch prefix {
	case "eq":
		since, until = start, end
	case "ge":
		since = start
	case "gt", "sa":
		since = end
	case "le":
		until = end
	case "lt", "eb":
		until = start
	default:
		return fhir.Invalid("date", dateSyntax)
	}
	if !since.IsZero() && since.After(aq.Since) {
		aq.Since = since
	}
	if !until.IsZero() && (aq.Until.IsZero() || until.Before(aq.Until)) {
		aq.Until = until
	}
	return nil
}

// datePeriod is the period [start, end) a FHIR date or dateTime names.
func datePeriod(s string) (time.Time, time.Time, error) {
	for _, f := range []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
	} {
		if len(s) == len(f.layout) {
			t, err := time.Parse(f.layout, s)
			if err != nil {
				return t, t, err
			}
			return t, f.next(t), nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !strings.Contains(s, "T") {
		return t, t, fmt.Errorf("not a date")
	}
	// An instant stands for its last digit: a second, or a fraction.
	step := time.Second
	if i := strings.IndexByte(s, '.'); i >= 0 {
		digits := strings.IndexFunc(s[i+1:], func(c rune) bool { return c < '0' || c > '9' })
		if digits < 0 {
			digits = len(s) - i - 1
		}
		for range min(digits, 9) {
			step /= 10
		}
	}
	return t, t.Add(step), nil
}
