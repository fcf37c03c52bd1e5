package service

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/mpi"
	"github.com/sharedcare/sharedcare/internal/store"
)

// The review queue is a list of FHIR Tasks: code ReviewCode, focus the
// Patient that was being linked, inputs the candidate Patient, the
// candidate's Person and the match (grade, method, score, probability,
// conflict, reasons). A reviewer lists them with an ordinary search
// (Task?code=CodeSystem|review-link&status=requested) and decides with
// Accept or Reject; the decision completes the Task (businessStatus accepted
// or rejected, output the Person, note who) in the same transaction as the
// link it makes.

// Input and output types of a review Task (codes in CodeSystem).
const (
	inCandidate       = "candidate"
	inCandidatePerson = "candidate-person"
	inGrade           = "grade"
	inMethod          = "method"
	inScore           = "score"
	inProbability     = "probability"
	inConflict        = "conflict"
	inReason          = "reason"
	outPerson         = "person"
)

func coded(code string) fhir.Object {
	return fhir.Object{"coding": []any{fhir.Object{"system": CodeSystem, "code": code}}}
}

func param(code, valueKey string, value any) fhir.Object {
	return fhir.Object{"type": coded(code), valueKey: value}
}

// queueReview adds a review Task for ref against m (in person pid) to the
// change, unless the pair already has an open one.
func (s *Service) queueReview(c *change, ref string, m mpi.Match, pid string) {
	p := pairOf(ref, m.Ref)
	if s.open[p] != "" || c.openTasks[p] != "" {
		return
	}
	now := fhir.FormatInstant(s.now())
	in := []any{
		param(inCandidate, "valueReference", fhir.Object{"reference": m.Ref}),
		param(inCandidatePerson, "valueReference", fhir.Object{"reference": "Person/" + pid}),
		param(inGrade, "valueCode", string(m.Grade)),
		param(inScore, "valueDecimal", decimal(m.Score)),
		param(inProbability, "valueDecimal", decimal(m.Prob)),
		param(inConflict, "valueBoolean", m.Conflict),
	}
	if m.Method != "" {
		in = append(in, param(inMethod, "valueCode", string(m.Method)))
	}
	for _, r := range m.Reason {
		in = append(in, param(inReason, "valueString", r))
	}
	why := fmt.Sprintf("%s may be the same person as %s (%s, score %.1f)", ref, m.Ref, m.Grade, m.Score)
	priority := "routine"
	if m.Conflict {
		// Same NHS number, clearly different people: one of the two
		// records carries someone else's number, which is a safety issue
		// now, not a tidy-up.
		why = fmt.Sprintf("%s and %s share an NHS number but look like different people (score %.1f)", ref, m.Ref, m.Score)
		priority = "urgent"
	}
	id := newID()
	t := fhir.Object{
		"resourceType": "Task",
		"id":           id,
		"status":       "requested",
		"intent":       "proposal",
		"priority":     priority,
		"code":         fhir.Object{"coding": []any{fhir.Object{"system": CodeSystem, "code": ReviewCode, "display": "Review a possible patient match"}}},
		"description":  why,
		// focus, not for: Task.for would put the Task in the Patient's
		// compartment, and an identity review names another person's
		// record, which has no place in this patient's $everything.
		"focus":        fhir.Object{"reference": ref},
		"authoredOn":   now,
		"lastModified": now,
		"input":        in,
	}
	c.tasks = append(c.tasks, taskWrite{r: t})
	c.openTasks[p] = id
}

// review is what a review Task says.
type review struct {
	patient, candidate string
	status, business   string
}

// reviewOf reads a review Task; ok is false for any other Task.
func reviewOf(t fhir.Object) (review, bool) {
	isReview := false
	for _, cd := range objects(objectOf(t["code"])["coding"]) {
		if str(cd["system"]) == CodeSystem && str(cd["code"]) == ReviewCode {
			isReview = true
		}
	}
	if !isReview {
		return review{}, false
	}
	r := review{patient: reference(t["focus"]), status: str(t["status"])}
	for _, cd := range objects(objectOf(t["businessStatus"])["coding"]) {
		if str(cd["system"]) == CodeSystem {
			r.business = str(cd["code"])
		}
	}
	for _, in := range objects(t["input"]) {
		if typeCode(in) == inCandidate {
			r.candidate = reference(in["valueReference"])
		}
	}
	return r, isPatientRef(r.patient) && isPatientRef(r.candidate)
}

func typeCode(in fhir.Object) string {
	for _, cd := range objects(objectOf(in["type"])["coding"]) {
		if str(cd["system"]) == CodeSystem {
			return str(cd["code"])
		}
	}
	return ""
}

func objectOf(v any) fhir.Object { o, _ := v.(fhir.Object); return o }

// loadReviews finds the open and the rejected review pairs.
func (s *Service) loadReviews(ctx context.Context) (map[pair]string, map[pair]bool, error) {
	open, rejected := map[pair]string{}, map[pair]bool{}
	err := s.scan(ctx, "Task", func(v *store.Version, t fhir.Object) error {
		r, ok := reviewOf(t)
		if !ok {
			return nil
		}
		p := pairOf(r.patient, r.candidate)
		switch {
		case r.status == "requested":
			open[p] = v.ID
		case r.business == "rejected":
			rejected[p] = true
		}
		return nil
	})
	return open, rejected, err
}

// who names the caller of a manual decision for the record.
func who(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok {
		return p.String()
	}
	return "unknown"
}

// Accept decides a review: the two Patients are one person. The Patient's
// person is united with the candidate's (every Patient of it moves, the
// emptied Person is retired into the other), the link is recorded as manual
// with the reviewer and the Task, and the Task is completed. It returns the
// completed Task.
func (s *Service) Accept(ctx context.Context, taskID string) (fhir.Object, error) {
	return s.decide(ctx, taskID, true)
}

// Reject decides a review: the two Patients are different people. The pair
// is never linked automatically or queued again; if they are in one person
// now, the Patient leaves it for a person of its own. It returns the
// completed Task.
func (s *Service) Reject(ctx context.Context, taskID string) (fhir.Object, error) {
	return s.decide(ctx, taskID, false)
}

func (s *Service) decide(ctx context.Context, taskID string, accept bool) (fhir.Object, error) {
	if !fhir.ValidID(taskID) {
		return nil, fhir.Invalid("", "invalid Task id")
	}
	by := who(ctx)
	ctx = internal(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ix == nil {
		return nil, errNotStarted()
	}
	err := s.retry(ctx, func(c *change) error {
		v, t, err := s.readCurrent(ctx, "Task/"+taskID)
		if err != nil {
			return err
		}
		if v == nil {
			return fhir.Errorf(fhir.ENotFound, "", "Task/%s not found", taskID)
		}
		if t == nil {
			return fhir.Errorf(fhir.EGone, "", "Task/%s is deleted", taskID)
		}
		r, ok := reviewOf(t)
		if !ok {
			return fhir.Errorf(fhir.EUnprocessable, "Task.code", "Task/%s is not a patient-match review (code %s|%s)", taskID, CodeSystem, ReviewCode)
		}
		if r.status != "requested" {
			return fhir.Errorf(fhir.EConflict, "Task.status", "Task/%s is already decided (status %s)", taskID, r.status)
		}
		pa, pb := s.personOf[r.patient], s.personOf[r.candidate]
		if pa == "" || pb == "" {
			return fhir.Errorf(fhir.EConflict, "", "%s or %s is no longer in the index (deleted?); reject the Task instead", r.patient, r.candidate)
		}
		now := s.now()
		d := decision{Method: string(mpi.Manual), Matched: r.candidate, By: by, Task: "Task/" + taskID, When: now}
		for _, in := range objects(t["input"]) {
			switch typeCode(in) {
			case inGrade:
				d.Grade = mpi.Grade(str(in["valueCode"]))
			case inScore:
				d.Score = number(in["valueDecimal"])
			case inProbability:
				d.Prob = number(in["valueDecimal"])
			}
		}
		business, person := "rejected", ""
		if accept {
			business, person = "accepted", pb
			d.Reason = []string{"review-accepted"}
			moved := slices.Clone(c.membersOf(pa))
			if err := s.unite(ctx, c, pa, pb, r.patient, d.link(r.patient)); err != nil {
				return err
			}
			for _, m := range moved {
				if err := s.closeSettled(ctx, c, m, pb, taskID); err != nil {
					return err
				}
			}
		} else {
			d.Reason = []string{"review-rejected"}
			c.reject = append(c.reject, pairOf(r.patient, r.candidate))
			if pa == pb {
				person = c.newPerson()
				c.attach(r.patient, person, d.link(r.patient))
			}
		}
		t["status"] = "completed"
		t["businessStatus"] = fhir.Object{"coding": []any{fhir.Object{"system": CodeSystem, "code": business}}, "text": business}
		t["lastModified"] = fhir.FormatInstant(now)
		t["note"] = append(objectsAny(t["note"]), fhir.Object{"authorString": by, "time": fhir.FormatInstant(now), "text": "review " + business})
		if person != "" {
			t["output"] = []any{fhir.Object{"type": coded(outPerson), "valueReference": fhir.Object{"reference": "Person/" + person}}}
		}
		c.tasks = append(c.tasks, taskWrite{r: t, version: v.VersionID})
		c.taskDone = append(c.taskDone, pairOf(r.patient, r.candidate))
		return nil
	})
	if err != nil {
		return nil, err
	}
	_, t, err := s.readCurrent(ctx, "Task/"+taskID)
	return t, err
}

// unite moves every Patient of person from into person into (ref's link
// entry replaced by l, the others keeping theirs with a note of where they
// came from); from is retired into into. With from == into only ref's entry
// changes.
func (s *Service) unite(ctx context.Context, c *change, from, into, ref string, l fhir.Object) error {
	if from != into {
		entries, err := s.linkEntries(ctx, from)
		if err != nil {
			return err
		}
		for _, m := range c.membersOf(from) {
			if m == ref {
				continue
			}
			c.attach(m, into, withSub(entries[m], "previous-person", fhir.Object{"valueReference": fhir.Object{"reference": "Person/" + from}}))
		}
	}
	c.attach(ref, into, l)
	return nil
}

// linkEntries returns a Person's current link entries by target.
func (s *Service) linkEntries(ctx context.Context, pid string) (map[string]fhir.Object, error) {
	_, p, err := s.readCurrent(ctx, "Person/"+pid)
	if err != nil {
		return nil, err
	}
	out := map[string]fhir.Object{}
	for _, l := range objects(p["link"]) {
		out[reference(l["target"])] = l
	}
	return out, nil
}

// number reads a JSON number.
func number(v any) float64 {
	var f float64
	if n, ok := v.(interface{ Float64() (float64, error) }); ok {
		f, _ = n.Float64()
	}
	return f
}

// refParam reads a Parameters valueReference naming a Patient.
func refParam(ps []fhir.Object, name string) (string, error) {
	for _, p := range ps {
		if str(p["name"]) == name {
			ref := strings.TrimSpace(reference(p["valueReference"]))
			if !isPatientRef(ref) {
				return "", fhir.Invalid("Parameters.parameter", "parameter %s must be a reference to a Patient (Patient/id)", name)
			}
			return ref, nil
		}
	}
	return "", fhir.Invalid("Parameters.parameter", "parameter %s is required", name)
}
