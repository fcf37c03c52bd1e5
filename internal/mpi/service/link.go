package service

import (
	"context"
	"slices"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/mpi"
)

// place decides the person of a new Patient, or of one whose demographics
// changed, and queues reviews:
//
//   - A manual link (review accepted, merge) stands.
//   - Otherwise the Patient joins the person of its best automatic match
//     (mpi grade certain, no conflict) unless it must not be linked with some
//     member of that person (mpi.Model.MustNotLink): one member matching
//     well does not make a wrong link safe when another says no.
//   - With no such person it keeps a person of its own (a new one, or the one
//     it already has alone).
//   - Every other person it matched between the thresholds, in conflict, or
//     refused for contradiction, is queued for review once per pair.
func (s *Service) place(ctx context.Context, c *change, rec mpi.Record) error {
	ref := rec.Ref
	cur := s.personOf[ref]
	now := s.now()

	if cur != "" {
		_, r, err := s.readCurrent(ctx, "Person/"+cur)
		if err != nil {
			return err
		}
		for _, l := range objects(r["link"]) {
			if reference(l["target"]) == ref && isManual(l) {
				c.touchPerson(cur) // the golden record may show the new demographics
				return nil
			}
		}
	}

	best, order := s.bestByPerson(rec)
	target := ""
	if cur != "" && len(s.members[cur]) > 1 {
		if m, ok := best[cur]; ok && m.Linked() && !m.Conflict && s.compatible(rec, cur) {
			target = cur
		}
	}
	if target == "" {
		for _, pid := range order {
			if m := best[pid]; m.Linked() && !m.Conflict && s.compatible(rec, pid) {
				target = pid
				break
			}
		}
	}
	switch {
	case target != "":
		c.attach(ref, target, fromMatch(best[target], now).link(ref))
		if err := s.closeSettled(ctx, c, ref, target, ""); err != nil {
			return err
		}
	case cur != "" && len(s.members[cur]) == 1:
		c.touchPerson(cur)
	default:
		pid := c.newPerson()
		c.attach(ref, pid, decision{Method: methodNewPerson, When: now}.link(ref))
	}
	for _, pid := range order {
		if pid == target {
			continue
		}
		if m := best[pid]; m.Review() || m.Conflict || m.Linked() {
			s.queueReview(c, ref, m, pid)
		}
	}
	return nil
}

// closeSettled completes the open reviews between ref and the Patients of
// person pid, which an automatic link has just settled, so the queue holds
// only open questions.
// The Task skip (the one being decided) is left to its decision.
func (s *Service) closeSettled(ctx context.Context, c *change, ref, pid, skip string) error {
	for _, m := range c.membersOf(pid) {
		p := pairOf(ref, m)
		id := s.open[p]
		if id == "" || id == skip || m == ref || slices.Contains(c.taskDone, p) {
			continue
		}
		v, t, err := s.readCurrent(ctx, "Task/"+id)
		if err != nil {
			return err
		}
		if t == nil {
			continue
		}
		now := fhir.FormatInstant(s.now())
		t["status"] = "completed"
		t["businessStatus"] = fhir.Object{"coding": []any{fhir.Object{"system": CodeSystem, "code": "linked-automatically"}}, "text": "linked-automatically"}
		t["lastModified"] = now
		t["output"] = []any{fhir.Object{"type": coded(outPerson), "valueReference": fhir.Object{"reference": "Person/" + pid}}}
		c.tasks = append(c.tasks, taskWrite{r: t, version: v.VersionID})
		c.taskDone = append(c.taskDone, p)
	}
	return nil
}

// bestByPerson compares rec with its candidates and keeps the best match per
// person, best first. Pairs a reviewer rejected and merged-away Patients
// (their target speaks for them) take no part. Records sharing rec's NHS
// number are always compared, so a conflict is seen even when the blocking
// index ranks it out.
func (s *Service) bestByPerson(rec mpi.Record) (map[string]mpi.Match, []string) {
	model := s.ix.Model()
	matches := s.ix.Candidates(rec, s.cfg.Candidates)
	seen := map[string]bool{}
	for _, m := range matches {
		seen[m.Ref] = true
	}
	if rec.NHS != "" {
		for _, other := range s.byNHS[rec.NHS] {
			if other == rec.Ref || seen[other] {
				continue
			}
			if o, ok := s.ix.Get(other); ok {
				if m := model.Compare(rec, o); m.Conflict || m.Grade != mpi.CertainlyNot {
					matches = append(matches, m)
				}
			}
		}
	}
	best := map[string]mpi.Match{}
	for _, m := range matches {
		if m.Ref == rec.Ref || s.rejected[pairOf(rec.Ref, m.Ref)] || s.replacedBy[m.Ref] != "" {
			continue
		}
		pid := s.personOf[m.Ref]
		if pid == "" {
			continue
		}
		if b, ok := best[pid]; !ok || better(m, b) {
			best[pid] = m
		}
	}
	order := make([]string, 0, len(best))
	for pid := range best {
		order = append(order, pid)
	}
	slices.SortFunc(order, func(a, b string) int {
		if better(best[a], best[b]) {
			return -1
		}
		if better(best[b], best[a]) {
			return 1
		}
		return 0
	})
	return best, order
}

// better orders matches: a conflict-free automatic link first, then score.
func better(a, b mpi.Match) bool {
	al, bl := a.Linked() && !a.Conflict, b.Linked() && !b.Conflict
	if al != bl {
		return al
	}
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	return a.Ref < b.Ref
}

// compatible reports whether rec may join person pid automatically: no
// member is one it must never be linked with (mpi.Model.MustNotLink:
// different verified NHS numbers, a conflict, or a low score with two
// identity fields wholly different), the rule batch linking applies when it
// joins clusters; nor one a reviewer said is a different person.
func (s *Service) compatible(rec mpi.Record, pid string) bool {
	model := s.ix.Model()
	for _, m := range s.members[pid] {
		if m == rec.Ref {
			continue
		}
		if s.rejected[pairOf(rec.Ref, m)] {
			return false
		}
		if o, ok := s.ix.Get(m); ok && model.MustNotLink(rec, o) {
			return false
		}
	}
	return true
}

// indexAdd puts a record in the index and the NHS number map.
func (s *Service) indexAdd(rec mpi.Record) {
	s.indexRemove(rec.Ref)
	s.ix.Add(rec)
	if rec.NHS != "" {
		s.byNHS[rec.NHS] = append(s.byNHS[rec.NHS], rec.Ref)
	}
}

// indexRemove takes a record out of the index and the NHS number map.
func (s *Service) indexRemove(ref string) {
	if old, ok := s.ix.Get(ref); ok && old.NHS != "" {
		refs := slices.DeleteFunc(s.byNHS[old.NHS], func(x string) bool { return x == ref })
		if len(refs) == 0 {
			delete(s.byNHS, old.NHS)
		} else {
			s.byNHS[old.NHS] = refs
		}
	}
	s.ix.Remove(ref)
}

// errNotStarted is returned by operations before Start.
func errNotStarted() error {
	return fhir.Errorf(fhir.EUnavailable, "", "the patient index is starting; retry shortly")
}
