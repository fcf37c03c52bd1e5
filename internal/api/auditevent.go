package api

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/audit"
)

// outcomeOf maps an HTTP status to an AuditEvent outcome code: a refusal
// or bad request is minor, a server failure serious.
func outcomeOf(status int) string {
	switch {
	case status < 400:
		return audit.OutcomeSuccess
	case status < 500:
		return audit.OutcomeMinor
	default:
		return audit.OutcomeSerious
	}
}

// auditFacts is what the API knows about one interaction when it audits
// it. It holds no credential: the caller's token never reaches it.
type auditFacts struct {
	Subtype   string // the FHIR auditFacts or operation, e.g. "read", "$everything"
	Action    string // an audit.Action constant
	Status    int
	Time      time.Time
	User      string
	Role      string
	Org       string
	Client    string
	Node      string
	Purpose   string   // the purpose of use, e.g. "TREAT"
	Patients  []string // Patient ids the auditFacts concerned
	Resources []string // "Type/id" references touched
	Query     string   // the search query, already free of secrets
	RequestID string   // the request id (X-Request-Id), as in the access log
	Detail    string   // why it failed, when it did (never a secret)
	Flags     []string
	Restrict  bool
}

// entry builds the audit entry of an interaction, its Event a FHIR
// AuditEvent shaped after IHE Basic Audit Log Patterns.
func (in auditFacts) entry() (*audit.Entry, error) {
	outcome := outcomeOf(in.Status)
	ts := in.Time.UTC().Format(time.RFC3339Nano)
	ev := map[string]any{
		"resourceType": "AuditEvent",
		"type":         map[string]any{"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
		"subtype":      []any{map[string]any{"system": "http://hl7.org/fhir/restful-auditFacts", "code": strings.TrimPrefix(in.Subtype, "$")}},
		"action":       in.Action,
		"period":       map[string]any{"start": ts, "end": ts},
		"recorded":     ts,
		"outcome":      outcome,
		"source":       map[string]any{"observer": map[string]any{"display": in.Node}, "type": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}}},
	}
	if in.Purpose != "" {
		ev["purposeOfEvent"] = []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": in.Purpose}}}}
	}
	var agents []any
	if in.User != "" {
		a := map[string]any{"requestor": true, "who": map[string]any{"identifier": map[string]any{"value": in.User}}}
		if in.Role != "" {
			a["role"] = []any{map[string]any{"text": in.Role}}
		}
		if in.Org != "" {
			a["location"] = map[string]any{"identifier": map[string]any{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": in.Org}}
		}
		agents = append(agents, a)
	}
	if in.Client != "" {
		agents = append(agents, map[string]any{"requestor": in.User == "", "who": map[string]any{"identifier": map[string]any{"value": in.Client}}, "type": map[string]any{"coding": []any{map[string]any{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110150", "display": "Application"}}}})
	}
	if len(agents) == 0 {
		agents = append(agents, map[string]any{"requestor": true, "who": map[string]any{"display": "anonymous"}})
	}
	ev["agent"] = agents
	var entities []any
	for _, p := range in.Patients {
		entities = append(entities, map[string]any{"what": map[string]any{"reference": "Patient/" + p}, "role": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}})
	}
	for _, r := range in.Resources {
		entities = append(entities, map[string]any{"what": map[string]any{"reference": r}, "role": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4", "display": "Domain Resource"}})
	}
	if in.Query != "" {
		entities = append(entities, map[string]any{"role": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24", "display": "Query"}, "query": []byte(in.Query)})
	}
	if len(entities) > 0 {
		ev["entity"] = entities
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	return &audit.Entry{
		Time: in.Time, User: in.User, Role: in.Role, Org: in.Org, Client: in.Client,
		Patients: in.Patients, Action: in.Action, Outcome: outcome,
		Flags: in.Flags, Restricted: in.Restrict, Event: raw,
	}, nil
}

