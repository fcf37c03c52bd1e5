package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// A privacy officer's review of an alert is an audit entry of its own
// (flag audit.FlagReview), recorded durably before the review is
// acknowledged: as tamper-evident as the access it judges, and never
// rewritten; a later review of the same alert supersedes it in the queue
// (alerts.go) and both stay in the log. The reviewed entry is referenced
// in the review's AuditEvent as entity AuditEvent/<index> (object role 13,
// security resource) whose details are the outcome and the note. The
// review names the reviewed entry's people, so that their queue finds it,
// and is restricted: the person sees the outcome in their queue, not the
// reviewer's note, and the review is not a look at their record.

// reviewNoteMax bounds a review's note (it is stored in the log forever).
const reviewNoteMax = 4000

// review is a recorded review as the queue shows it.
type review struct {
	index    int64 // the review's own entry
	reviewed int64 // the entry reviewed
	outcome  string
	note     string
	user     string
	at       time.Time
}

// reviewFrom reads the review an entry flagged audit.FlagReview records.
func reviewFrom(e *audit.Entry) (*review, bool) {
	var ev struct {
		Entity []struct {
			What struct {
				Reference string `json:"reference"`
			} `json:"what"`
			Detail []struct {
				Type        string `json:"type"`
				ValueString string `json:"valueString"`
			} `json:"detail"`
		} `json:"entity"`
	}
	if json.Unmarshal(e.Event, &ev) != nil {
		return nil, false
	}
	for _, en := range ev.Entity {
		ref, ok := strings.CutPrefix(en.What.Reference, "AuditEvent/")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(ref, 10, 64)
		if err != nil {
			return nil, false
		}
		rv := &review{index: e.Index, reviewed: n, user: e.User, at: e.Time}
		for _, d := range en.Detail {
			switch d.Type {
			case "outcome":
				rv.outcome = d.ValueString
			case "note":
				rv.note = d.ValueString
			}
		}
		return rv, rv.outcome != ""
	}
	return nil, false
}

// reviewEntry builds the audit entry of p's review of entry e.
func (h *handler) reviewEntry(p *auth.Principal, e *audit.Entry, outcome, note string, now time.Time) (*audit.Entry, error) {
	ts := now.UTC().Format(time.RFC3339Nano)
	agent := map[string]any{"requestor": true, "who": map[string]any{"identifier": map[string]any{"value": p.Subject}}}
	if p.Role != "" {
		agent["role"] = []any{map[string]any{"text": p.Role}}
	}
	if p.Organisation != "" {
		agent["location"] = map[string]any{"identifier": map[string]any{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": p.Organisation}}
	}
	detail := []any{map[string]any{"type": "outcome", "valueString": outcome}}
	if note != "" {
		detail = append(detail, map[string]any{"type": "note", "valueString": note})
	}
	entities := []any{map[string]any{
		"what":   map[string]any{"reference": "AuditEvent/" + strconv.FormatInt(e.Index, 10)},
		"role":   map[string]any{"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "13", "display": "Security Resource"},
		"detail": detail,
	}}
	for _, id := range e.Patients {
		entities = append(entities, map[string]any{"what": map[string]any{"reference": "Patient/" + id}, "role": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}})
	}
	ev := map[string]any{
		"resourceType": "AuditEvent",
		"type":         map[string]any{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110113", "display": "Security Alert"},
		"subtype":      []any{map[string]any{"system": "https://sharedcare.example/audit-flag", "code": audit.FlagReview}},
		"action":       audit.ActionExecute,
		"period":       map[string]any{"start": ts, "end": ts},
		"recorded":     ts,
		"outcome":      audit.OutcomeSuccess,
		"source":       map[string]any{"observer": map[string]any{"display": h.node}},
		"agent":        []any{agent},
		"entity":       entities,
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	return &audit.Entry{Time: now, User: p.Subject, Role: p.Role, Org: p.Organisation, Client: p.Client,
		Patients: e.Patients, Action: audit.ActionExecute, Outcome: audit.OutcomeSuccess,
		Flags: []string{audit.FlagReview}, Restricted: true, Event: raw}, nil
}

// entryReader is what a review needs of the log: the entry reviewed.
type entryReader interface {
	Entry(ctx context.Context, index int64) (*audit.Entry, error)
}

// eventRef is a Reference naming an alert's AuditEvent.
type eventRef struct {
	Reference string `json:"reference"`
}

// alertIndex is the entry index a review's "entry" (valueInteger) or
// "event" (valueReference AuditEvent/<index>, written canonically) names;
// ok is false when it names none.
func alertIndex(name string, integer json.RawMessage, ref *eventRef) (int64, bool) {
	id := string(integer)
	if name == "event" {
		if ref == nil {
			return 0, false
		}
		var found bool
		if id, found = strings.CutPrefix(ref.Reference, "AuditEvent/"); !found {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 0 || name == "event" && strconv.FormatInt(n, 10) != id {
		return 0, false
	}
	return n, true
}

// recordReview answers POST /fhir/$access-alerts: the privacy officer (or
// the operator) records the outcome of their review of an alert. The body
// is a Parameters resource: entry (valueInteger, the alert's entry index,
// the id of its AuditEvent) or event (valueReference AuditEvent/<index>,
// which also names entries past a FHIR integer's range), outcome
// (valueCode: appropriate,
// inappropriate or escalated) and an optional note (valueString). The
// answer, once the review's entry is durable, is the review as the queue
// shows it.
func (h *handler) recordReview(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if !isPrivacyOfficer(p) {
		h.fail(w, r, errorf(fhir.EForbidden, "forbidden", "only the privacy officer may review access alerts"))
		return
	}
	er, ok := h.audit.(entryReader)
	if !ok {
		h.fail(w, r, errorf(fhir.ENotSupported, "not-supported", "this node cannot read its audit log"))
		return
	}
	body, err := h.readBody(w, r, resourceTypes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var in struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name           string          `json:"name"`
			ValueInteger   json.RawMessage `json:"valueInteger"`
			ValueCode      *string         `json:"valueCode"`
			ValueString    *string         `json:"valueString"`
			ValueReference *eventRef       `json:"valueReference"`
		} `json:"parameter"`
	}
	if json.Unmarshal(body, &in) != nil || in.ResourceType != "Parameters" {
		h.fail(w, r, fhir.Invalid("", "send a Parameters resource with entry (valueInteger) or event (valueReference), outcome (valueCode) and note (valueString)"))
		return
	}
	index, outcome, note := int64(-1), "", ""
	seen := map[string]bool{}
	for i, prm := range in.Parameter {
		at := "Parameters.parameter[" + strconv.Itoa(i) + "]"
		if seen[prm.Name] {
			h.fail(w, r, fhir.Invalid(at, "%s is given twice", prm.Name))
			return
		}
		seen[prm.Name] = true
		switch prm.Name {
		case "entry", "event":
			if seen["entry"] && seen["event"] {
				h.fail(w, r, fhir.Invalid(at, "name the alert by entry or by event, not both"))
				return
			}
			var ok bool
			if index, ok = alertIndex(prm.Name, prm.ValueInteger, prm.ValueReference); !ok {
				if prm.Name == "entry" {
					h.fail(w, r, fhir.Invalid(at+".valueInteger", "entry must be the alert's entry index, a non-negative valueInteger"))
				} else {
					h.fail(w, r, fhir.Invalid(at+".valueReference", "event must reference the alert's AuditEvent: AuditEvent/<index>"))
				}
				return
			}
		case "outcome":
			if prm.ValueCode != nil {
				outcome = *prm.ValueCode
			}
			switch outcome {
			case audit.ReviewAppropriate, audit.ReviewInappropriate, audit.ReviewEscalated:
			default:
				h.fail(w, r, fhir.Invalid(at+".valueCode", "outcome must be appropriate, inappropriate or escalated"))
				return
			}
		case "note":
			if prm.ValueString != nil {
				note = *prm.ValueString
			}
			if len(note) > reviewNoteMax {
				h.fail(w, r, fhir.Invalid(at+".valueString", "the note is longer than %d bytes", reviewNoteMax))
				return
			}
		default:
			h.fail(w, r, fhir.Invalid(at+".name", "unknown parameter %q: use entry (or event), outcome, note", truncate(prm.Name)))
			return
		}
	}
	if index < 0 {
		h.fail(w, r, fhir.Invalid("Parameters.parameter", "entry (or event) is required: the alert reviewed"))
		return
	}
	if outcome == "" {
		h.fail(w, r, fhir.Invalid("Parameters.parameter", "outcome is required: appropriate, inappropriate or escalated"))
		return
	}
	ctx := r.Context()
	e, err := er.Entry(ctx, index)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !audit.IsAlert(e) {
		h.fail(w, r, fhir.Invalid("Parameters.parameter", "entry %d is not an alert (no flag, or a review itself)", index))
		return
	}
	re, err := h.reviewEntry(p, e, outcome, note, time.Now())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.audit.Record(ctx, re); err != nil {
		h.fail(w, r, err)
		return
	}
	noteOf(r).addPatients(e.Patients...)
	noteOf(r).addResources("AuditEvent/" + strconv.FormatInt(e.Index, 10))
	rv, _ := reviewFrom(re)
	h.sendObject(w, r, http.StatusOK, fhir.Object{"resourceType": "Parameters", "parameter": []any{alertParam(e, rv, true)}})
}
