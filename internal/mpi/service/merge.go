package service

import (
	"context"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Merge is Patient/$merge: the source Patient is a duplicate of the target.
// Parameters: source-patient and target-patient (valueReference). In one
// transaction the source becomes inactive with Patient.link replaced-by the
// target, the target gets replaces the source, and the two persons become
// one: every Patient of the source's person moves into the target's, its
// link entry marked with the merge (merge-of, previous-person) so that
// Unmerge can put it back, and the emptied Person is retired into the
// target's. Every step is a new version, so the history of the Patients and
// Persons is the full record of the merge. It returns Parameters with the
// outcome and the target Patient as it now is.
func (s *Service) Merge(ctx context.Context, body []byte) (fhir.Object, error) {
	src, dst, err := mergeParams(body)
	if err != nil {
		return nil, err
	}
	by := who(ctx)
	ctx = internal(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ix == nil {
		return nil, errNotStarted()
	}
	err = s.retry(ctx, func(c *change) error {
		if err := s.bothLive(ctx, src, dst); err != nil {
			return err
		}
		if t := s.replacedBy[src]; t != "" {
			return fhir.Errorf(fhir.EConflict, "", "%s is already merged into %s", src, t)
		}
		if t := s.replacedBy[dst]; t != "" {
			return fhir.Errorf(fhir.EUnprocessable, "", "the target %s was itself merged into %s; merge into that Patient", dst, t)
		}
		ps, pt := s.personOf[src], s.personOf[dst]
		if ps == "" || pt == "" {
			return fhir.Errorf(fhir.EConflict, "", "%s or %s is not linked yet; retry shortly", src, dst)
		}
		mark := func(l fhir.Object) fhir.Object {
			l = withSub(l, "merge-of", fhir.Object{"valueReference": fhir.Object{"reference": src}})
			return withSub(l, "previous-person", fhir.Object{"valueReference": fhir.Object{"reference": "Person/" + ps}})
		}
		entries, err := s.linkEntries(ctx, ps)
		if err != nil {
			return err
		}
		srcEntry := withSub(entries[src], "merged-into", fhir.Object{"valueReference": fhir.Object{"reference": dst}})
		srcEntry = withSub(srcEntry, "merged-by", fhir.Object{"valueString": by})
		srcEntry = withSub(srcEntry, "merged-at", fhir.Object{"valueDateTime": fhir.FormatInstant(s.now())})
		if ps != pt {
			for _, m := range c.membersOf(ps) {
				if m != src {
					c.attach(m, pt, mark(entries[m]))
				}
			}
			srcEntry = mark(srcEntry)
		}
		c.attach(src, pt, srcEntry)
		c.setReplacedBy(src, dst)
		c.touch(src)
		c.touch(dst)
		c.patientFix[src] = func(p fhir.Object) { p["active"] = false }
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.mergeResult(ctx, dst, "merged "+src+" into "+dst)
}

// Unmerge is Patient/$unmerge: it undoes Merge of the same source and
// target. The Patients that merge moved go back to their previous Person
// (made active again, the golden record rebuilt), the merge marks leave the
// link entries, the source is active again and the replaced-by and replaces
// links go. The merge's versions stay in the history.
func (s *Service) Unmerge(ctx context.Context, body []byte) (fhir.Object, error) {
	src, dst, err := mergeParams(body)
	if err != nil {
		return nil, err
	}
	ctx = internal(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ix == nil {
		return nil, errNotStarted()
	}
	err = s.retry(ctx, func(c *change) error {
		if err := s.bothLive(ctx, src, dst); err != nil {
			return err
		}
		if s.replacedBy[src] != dst {
			return fhir.Errorf(fhir.EUnprocessable, "", "%s is not merged into %s", src, dst)
		}
		pt := s.personOf[dst]
		entries, err := s.linkEntries(ctx, pt)
		if err != nil {
			return err
		}
		clean := func(l fhir.Object) fhir.Object {
			for _, k := range []string{"merge-of", "previous-person", "merged-into", "merged-by", "merged-at"} {
				l = withSub(l, k, nil)
			}
			return l
		}
		for _, m := range c.membersOf(pt) {
			l := entries[m]
			if reference(decisionValue(l, "merge-of")) != src {
				continue
			}
			prev := reference(decisionValue(l, "previous-person"))
			typ, id := splitRef(prev)
			if typ != "Person" || !fhir.ValidID(id) {
				continue
			}
			c.attach(m, id, clean(l))
		}
		if c.person(src) == pt {
			c.attach(src, pt, clean(entries[src]))
		}
		c.setReplacedBy(src, "")
		c.touch(src)
		c.touch(dst)
		c.patientFix[src] = func(p fhir.Object) { p["active"] = true }
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.mergeResult(ctx, dst, "unmerged "+src+" from "+dst)
}

// bothLive checks that two Patients exist and are not deleted.
func (s *Service) bothLive(ctx context.Context, refs ...string) error {
	for _, ref := range refs {
		v, r, err := s.readCurrent(ctx, ref)
		if err != nil {
			return err
		}
		if v == nil {
			return fhir.Errorf(fhir.ENotFound, "", "%s not found", ref)
		}
		if r == nil {
			return fhir.Errorf(fhir.EGone, "", "%s is deleted", ref)
		}
	}
	return nil
}

// mergeParams reads source-patient and target-patient.
func mergeParams(body []byte) (src, dst string, err error) {
	ps, err := parameters(body)
	if err != nil {
		return "", "", err
	}
	if src, err = refParam(ps, "source-patient"); err != nil {
		return "", "", err
	}
	if dst, err = refParam(ps, "target-patient"); err != nil {
		return "", "", err
	}
	if src == dst {
		return "", "", fhir.Invalid("Parameters.parameter", "source-patient and target-patient are the same Patient")
	}
	return src, dst, nil
}

// parameters parses a Parameters resource and returns its parameters.
func parameters(body []byte) ([]fhir.Object, error) {
	r, err := fhir.ParseObject(body, 0)
	if err != nil {
		return nil, err
	}
	if rt := str(r["resourceType"]); rt != "Parameters" {
		return nil, fhir.Invalid("", "the body must be a Parameters resource, not %q", rt)
	}
	if _, ok := r["parameter"]; ok {
		if _, ok := r["parameter"].([]any); !ok {
			return nil, fhir.Invalid("Parameters.parameter", "parameter must be an array")
		}
	}
	return objects(r["parameter"]), nil
}

// mergeResult is the answer of $merge and $unmerge.
func (s *Service) mergeResult(ctx context.Context, dst, msg string) (fhir.Object, error) {
	_, t, err := s.readCurrent(ctx, dst)
	if err != nil {
		return nil, err
	}
	return fhir.Object{
		"resourceType": "Parameters",
		"parameter": []any{
			fhir.Object{"name": "outcome", "resource": fhir.Object{
				"resourceType": "OperationOutcome",
				"issue":        []any{fhir.Object{"severity": "information", "code": "informational", "diagnostics": msg}},
			}},
			fhir.Object{"name": "result", "resource": t},
		},
	}, nil
}
