package service

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/mpi"
	"github.com/sharedcare/sharedcare/internal/validate"
)

// Match limits: FHIR leaves count to the server.
const (
	defaultMatchCount = 10
	maxMatchCount     = 100
)

// Match is Patient/$match (FHIR R4 patient-operation-match): body is a
// Parameters resource with resource (a Patient, which need not be stored
// and may be partial), onlyCertainMatches and count; a bare Patient is
// accepted too. The answer is a searchset Bundle of stored Patients, best
// first, each with search.mode match, search.score (the match probability)
// and the match-grade extension (certain, probable, possible). Patients
// merged into another are left out: their target answers for them.
func (s *Service) Match(ctx context.Context, body []byte) (fhir.Object, error) {
	patient, only, count, err := matchParams(body)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	ix := s.ix
	s.mu.Unlock()
	if ix == nil {
		return nil, errNotStarted()
	}
	rec := mpi.FromPatient("", patient)
	var entries []any
	for _, m := range ix.Candidates(rec, count+maxMatchCount) {
		if len(entries) == count {
			break
		}
		if only && !m.Linked() {
			continue
		}
		s.mu.Lock()
		merged := s.replacedBy[m.Ref] != ""
		s.mu.Unlock()
		if merged {
			continue
		}
		typ, id := splitRef(m.Ref)
		v, err := s.st.Read(ctx, typ, id)
		if fhir.IsKind(err, fhir.ENotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if v.Deleted {
			continue
		}
		entries = append(entries, fhir.Object{
			"fullUrl":  s.cfg.BaseURL + "/" + m.Ref,
			"resource": json.RawMessage(v.Body),
			"search": fhir.Object{
				"mode":      "match",
				"score":     decimal(m.Prob),
				"extension": []any{fhir.Object{"url": ExtMatchGrade, "valueCode": string(m.Grade)}},
			},
		})
	}
	b := fhir.Object{
		"resourceType": "Bundle",
		"id":           newID(),
		"meta":         fhir.Object{"lastUpdated": fhir.FormatInstant(s.now())},
		"type":         "searchset",
		"total":        len(entries),
		"link":         []any{fhir.Object{"relation": "self", "url": s.cfg.BaseURL + "/Patient/$match"}},
	}
	if len(entries) > 0 {
		b["entry"] = entries
	}
	return b, nil
}

// matchParams reads $match's parameters.
func matchParams(body []byte) (patient fhir.Object, only bool, count int, err error) {
	r, err := fhir.ParseObject(body, 0)
	if err != nil {
		return nil, false, 0, err
	}
	count = defaultMatchCount
	switch str(r["resourceType"]) {
	case "Patient":
		patient = r
	case "Parameters":
		ps, err := parameters(body)
		if err != nil {
			return nil, false, 0, err
		}
		for _, p := range ps {
			switch str(p["name"]) {
			case "resource":
				patient, _ = p["resource"].(fhir.Object)
				if str(patient["resourceType"]) != "Patient" {
					return nil, false, 0, fhir.Invalid("Parameters.parameter", "parameter resource must hold a Patient")
				}
			case "onlyCertainMatches":
				b, ok := p["valueBoolean"].(bool)
				if !ok {
					return nil, false, 0, fhir.Invalid("Parameters.parameter", "onlyCertainMatches must be a valueBoolean")
				}
				only = b
			case "count":
				n, ok := p["valueInteger"].(json.Number)
				c, err := strconv.Atoi(string(n))
				if !ok || err != nil || c < 1 {
					return nil, false, 0, fhir.Invalid("Parameters.parameter", "count must be a positive valueInteger")
				}
				count = min(c, maxMatchCount)
			}
		}
		if patient == nil {
			return nil, false, 0, fhir.Invalid("Parameters.parameter", "parameter resource (the Patient to match) is required")
		}
	default:
		return nil, false, 0, fhir.Invalid("", "the body must be a Parameters resource (or a Patient), not %q", str(r["resourceType"]))
	}
	// Lenient: a partial Patient is what $match is for; unknown elements
	// are dropped rather than refused, malformed ones are still an error.
	if _, err := validate.Resource(patient, validate.Options{Lenient: true}); err != nil {
		return nil, false, 0, err
	}
	return patient, only, count, nil
}
