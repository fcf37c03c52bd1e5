package api

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// accessAlerts answers GET /fhir/$access-alerts on a node without an audit
// log: the break-glass and self-claims the access model keeps, for a
// privacy officer, or the person's own. A node with an audit log answers
// from the log instead (alertQueue).
func (h *handler) accessAlerts(w http.ResponseWriter, r *http.Request, dec *access.Decider, c *access.Caller) {
	ctx := r.Context()
	alerts, err := dec.Alerts(ctx, c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	params := []any{}
	for _, a := range alerts {
		params = append(params, fhir.Object{"name": "alert", "part": []any{
			fhir.Object{"name": "kind", "valueCode": a.Kind},
			fhir.Object{"name": "user", "valueString": a.User},
			fhir.Object{"name": "organisation", "valueString": a.Org},
			fhir.Object{"name": "role", "valueString": a.Role},
			fhir.Object{"name": "patient", "valueReference": fhir.Object{"reference": "Patient/" + a.Patient}},
			fhir.Object{"name": "reason", "valueCode": a.Reason},
			fhir.Object{"name": "text", "valueString": a.Text},
			fhir.Object{"name": "at", "valueInstant": a.At.UTC().Format(time.RFC3339)},
			fhir.Object{"name": "expires", "valueInstant": a.Expires.UTC().Format(time.RFC3339)},
		}})
	}
	h.sendObject(w, r, http.StatusOK, fhir.Object{"resourceType": "Parameters", "parameter": params})
}

// alertQueue answers /fhir/$access-alerts on a node with an audit log:
// GET lists the alerts, POST records a review (recordReview).
func (h *handler) alertQueue(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if r.Method == http.MethodPost {
		h.recordReview(w, r, p)
		return
	}
	h.listAlerts(w, r, p)
}

// listAlerts answers GET /fhir/$access-alerts from the audit log: every
// flagged entry (break-glass, self-claimed relationship, objection
// override, access to labelled data), newest first, each with its entry
// index, who, role, organisation, people, when, flags, what, and its
// latest review or "unreviewed". The privacy officer and the operator see
// every alert and each review's note, and may narrow by patient and
// status (unreviewed or reviewed); a person sees the alerts about their own
// record that are not restricted, with the review's outcome but not its
// note. Pages of _count alerts (default 100) continue from _cursor.
//
// Reviews are always recorded after the alert they judge, so one pass over
// the flagged entries newest first meets each alert's latest review before
// the alert itself; a page deep in the queue reads every flagged entry
// above it (docs/AUDIT.md).
func (h *handler) listAlerts(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
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
	for k, vs := range q {
		switch k {
		case "patient", "status", "_count", "_cursor", "_format", "_pretty":
		default:
			h.fail(w, r, fhir.Invalid(k, "the alerts queue cannot be narrowed by %s: use patient, status, _count", truncate(k)))
			return
		}
		if len(vs) > 1 {
			h.fail(w, r, fhir.Invalid(k, "give %s once", k))
			return
		}
	}
	status := q.Get("status")
	if status != "" && status != "unreviewed" && status != "reviewed" {
		h.fail(w, r, fhir.Invalid("status", "status must be unreviewed or reviewed"))
		return
	}
	count, cursor, err := auditPage(q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var patient string
	if v := q.Get("patient"); v != "" {
		if patient, err = patientParam("patient", v, true); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	// The privacy officer, or the person (their whole record, as in "who
	// looked"); a proxy is not shown the alerts.
	if !isPrivacyOfficer(p) && (p.Kind != auth.KindPatient || !strings.HasPrefix(p.Subject, "Patient/")) {
		h.fail(w, r, errorf(fhir.EForbidden, "forbidden", "only the privacy officer and the person may see access alerts"))
		return
	}
	v, err := h.auditViewerOf(r.Context(), p, patient)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !v.all {
		// One record: read it by its key. Several (records the patient
		// index links): read the flagged entries and keep theirs.
		patient = ""
		if len(v.patients) == 1 {
			patient = v.patients[0]
		}
	}

	ctx := r.Context()
	latest := map[int64]*review{}
	var page []*audit.Entry
	var next int64 // the next page's cursor, 0 when there is none
	before := int64(0)
scan:
	for {
		es, err := rd.Search(ctx, audit.Query{Flagged: true, Patient: patient, Before: before, Limit: auditPageMax})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		for _, e := range es {
			if !audit.IsAlert(e) {
				if rv, ok := reviewFrom(e); ok && latest[rv.reviewed] == nil {
					latest[rv.reviewed] = rv
				}
				continue
			}
			if cursor > 0 && e.Index >= cursor || !v.sees(e) {
				continue
			}
			if status == "unreviewed" && latest[e.Index] != nil || status == "reviewed" && latest[e.Index] == nil {
				continue
			}
			if len(page) == count {
				next = page[count-1].Index
				break scan
			}
			page = append(page, e)
		}
		if len(es) < auditPageMax {
			break
		}
		before = es[len(es)-1].Index
	}
	params := []any{}
	for _, e := range page {
		params = append(params, alertParam(e, latest[e.Index], v.all))
	}
	if next > 0 {
		nq := url.Values{}
		for k, vs := range q {
			nq[k] = vs
		}
		nq.Set("_cursor", strconv.FormatInt(next, 10))
		params = append(params, fhir.Object{"name": "next", "valueUri": h.cfg.BaseURL + "/$access-alerts?" + nq.Encode()})
	}
	h.sendObject(w, r, http.StatusOK, fhir.Object{"resourceType": "Parameters", "parameter": params})
}

// alertParam is one alert of the queue with its latest review (nil for
// none); the review's note and reviewer only when withNote.
func alertParam(e *audit.Entry, rv *review, withNote bool) fhir.Object {
	var parts []any
	// A FHIR integer is 32-bit: past that the entry is named by its event
	// alone (a busy node records two billion entries in weeks).
	if e.Index <= math.MaxInt32 {
		parts = append(parts, fhir.Object{"name": "entry", "valueInteger": e.Index})
	}
	parts = append(parts,
		fhir.Object{"name": "event", "valueReference": fhir.Object{"reference": "AuditEvent/" + strconv.FormatInt(e.Index, 10)}},
		fhir.Object{"name": "at", "valueInstant": e.Time.UTC().Format(time.RFC3339Nano)})
	for _, kv := range [][2]string{{"user", e.User}, {"role", e.Role}, {"organisation", e.Org}, {"client", e.Client}} {
		if kv[1] != "" {
			parts = append(parts, fhir.Object{"name": kv[0], "valueString": kv[1]})
		}
	}
	for _, id := range e.Patients {
		parts = append(parts, fhir.Object{"name": "patient", "valueReference": fhir.Object{"reference": "Patient/" + id}})
	}
	for _, f := range e.Flags {
		parts = append(parts, fhir.Object{"name": "flag", "valueCode": f})
	}
	if what := whatOf(e); what != "" {
		parts = append(parts, fhir.Object{"name": "what", "valueString": what})
	}
	parts = append(parts, fhir.Object{"name": "outcome", "valueCode": e.Outcome})
	if rv == nil {
		parts = append(parts, fhir.Object{"name": "status", "valueCode": "unreviewed"})
	} else {
		parts = append(parts, fhir.Object{"name": "status", "valueCode": rv.outcome},
			fhir.Object{"name": "reviewed", "valueInstant": rv.at.UTC().Format(time.RFC3339Nano)},
			fhir.Object{"name": "review", "valueReference": fhir.Object{"reference": "AuditEvent/" + strconv.FormatInt(rv.index, 10)}})
		if withNote {
			parts = append(parts, fhir.Object{"name": "reviewer", "valueString": rv.user})
			if rv.note != "" {
				parts = append(parts, fhir.Object{"name": "note", "valueString": rv.note})
			}
		}
	}
	return fhir.Object{"name": "alert", "part": parts}
}

// whatOf says what an entry's interaction was: its subtype, the resources
// it touched and its query, from the AuditEvent recorded.
func whatOf(e *audit.Entry) string {
	var ev struct {
		Subtype []struct {
			Code string `json:"code"`
		} `json:"subtype"`
		Entity []struct {
			What struct {
				Reference string `json:"reference"`
			} `json:"what"`
			Query []byte `json:"query"`
		} `json:"entity"`
	}
	if json.Unmarshal(e.Event, &ev) != nil {
		return ""
	}
	var parts []string
	for _, s := range ev.Subtype {
		parts = append(parts, s.Code)
	}
	for _, en := range ev.Entity {
		switch {
		case len(en.Query) > 0:
			parts = append(parts, string(en.Query))
		case en.What.Reference != "" && !strings.HasPrefix(en.What.Reference, "Patient/"):
			parts = append(parts, en.What.Reference)
		}
	}
	return strings.Join(parts, " ")
}
