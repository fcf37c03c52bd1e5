package service

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// change is one link decision being prepared: the membership it would leave
// behind, as an overlay on the service's state, and the resources to write.
// commit writes every Person, Patient and Task it touches in one FHIR
// transaction, each with If-Match on the version it was built from, and only
// then folds the overlay into the service's state; a clash with a concurrent
// client write fails the transaction and the decision is taken again on
// fresh data (retry).
type change struct {
	s          *Service
	members    map[string][]string    // Person id -> members after the change (touched Persons only)
	personOf   map[string]string      // Patient ref -> Person id after the change ("" = none)
	replacedBy map[string]string      // merged-away Patient -> target ("" = no longer merged)
	linkOf     map[string]fhir.Object // Patient ref -> its new Person.link entry
	created    map[string]bool        // Persons this change creates
	retired    map[string]string      // Person id -> the Person it went into ("" = none)
	touched    map[string]bool        // Patients whose Patient.link must be checked
	patientFix map[string]func(fhir.Object)
	tasks      []taskWrite // Tasks to write
	taskDone   []pair      // open reviews this change closes
	reject     []pair      // pairs this change records as different people
	openTasks  map[pair]string
}

func (s *Service) newChange() *change {
	return &change{
		s:          s,
		members:    map[string][]string{},
		personOf:   map[string]string{},
		replacedBy: map[string]string{},
		linkOf:     map[string]fhir.Object{},
		created:    map[string]bool{},
		retired:    map[string]string{},
		touched:    map[string]bool{},
		patientFix: map[string]func(fhir.Object){},
		openTasks:  map[pair]string{},
	}
}

// taskWrite is a Task to write: a new one (version 0, a fresh id) or the
// next version of an existing one.
type taskWrite struct {
	r       fhir.Object
	version int64
}

// engineWrite are the options of the service's own writes: strict, because
// everything it writes it built or read back from the store.
var engineWrite = engine.WriteOptions{}

// maxAttempts bounds how often a decision is taken again after a clash with
// a concurrent write.
const maxAttempts = 5

// retry prepares and commits a change, again on a version clash.
func (s *Service) retry(ctx context.Context, plan func(c *change) error) error {
	for attempt := 1; ; attempt++ {
		c := s.newChange()
		if err := plan(c); err != nil {
			return err
		}
		err := c.commit(ctx)
		if err == nil || attempt == maxAttempts || !(fhir.IsKind(err, fhir.EPreconditionFailed) || fhir.IsKind(err, fhir.EConflict)) {
			return err
		}
	}
}

// person returns the Person a Patient belongs to after the change.
func (c *change) person(ref string) string {
	if p, ok := c.personOf[ref]; ok {
		return p
	}
	return c.s.personOf[ref]
}

// membersOf returns a Person's members after the change.
func (c *change) membersOf(pid string) []string {
	if m, ok := c.members[pid]; ok {
		return m
	}
	return c.s.members[pid]
}

// target returns the Patient a merged-away Patient was merged into.
func (c *change) target(ref string) string {
	if t, ok := c.replacedBy[ref]; ok {
		return t
	}
	return c.s.replacedBy[ref]
}

func (c *change) setReplacedBy(src, dst string) { c.replacedBy[src] = dst }

// touch asks for a Patient's Patient.link to be checked at commit.
func (c *change) touch(ref string) { c.touched[ref] = true }

// newPerson starts a Person with no members.
func (c *change) newPerson() string {
	id := newID()
	c.created[id] = true
	c.members[id] = nil
	return id
}

// attach makes ref a member of pid with the link entry l, leaving the Person
// it was in (which is retired into pid if it is left empty).
func (c *change) attach(ref, pid string, l fhir.Object) {
	if old := c.person(ref); old != "" && old != pid {
		c.remove(ref, old, pid)
	}
	if !slices.Contains(c.membersOf(pid), ref) {
		c.members[pid] = append(slices.Clone(c.membersOf(pid)), ref)
	}
	c.personOf[ref] = pid
	c.linkOf[ref] = l
	c.touchPerson(pid)
}

// detach takes ref out of its Person (retiring it if left empty).
func (c *change) detach(ref string) {
	if old := c.person(ref); old != "" {
		c.remove(ref, old, "")
	}
	c.personOf[ref] = ""
	c.touch(ref)
}

func (c *change) remove(ref, pid, into string) {
	m := slices.DeleteFunc(slices.Clone(c.membersOf(pid)), func(x string) bool { return x == ref })
	c.members[pid] = m
	c.touchPerson(pid)
	if len(m) == 0 {
		c.retired[pid] = into
	}
}

// touchPerson marks every member of a Person, before and after, for the
// Patient.link check.
func (c *change) touchPerson(pid string) {
	if _, ok := c.members[pid]; !ok {
		c.members[pid] = slices.Clone(c.s.members[pid])
	}
	for _, m := range c.s.members[pid] {
		c.touched[m] = true
	}
	for _, m := range c.members[pid] {
		c.touched[m] = true
	}
}

// commit writes the change in one transaction and then applies it to the
// service's state.
func (c *change) commit(ctx context.Context) error {
	var entries []any
	put := func(typ, id string, r fhir.Object, version int64) {
		req := fhir.Object{"method": "PUT", "url": typ + "/" + id}
		if version > 0 {
			req["ifMatch"] = `W/"` + strconv.FormatInt(version, 10) + `"`
		}
		r["id"] = id
		entries = append(entries, fhir.Object{"fullUrl": c.s.cfg.BaseURL + "/" + typ + "/" + id, "resource": r, "request": req})
	}

	// Patients first: the Persons' golden records are built from them.
	bodies := map[string]fhir.Object{}
	for _, ref := range sortedKeys(c.touched) {
		v, r, err := c.s.readCurrent(ctx, ref)
		if err != nil {
			return err
		}
		if r == nil {
			continue // deleted meanwhile: its own deletion detaches it
		}
		bodies[ref] = r
		before := fhir.Marshal(r)
		if fix := c.patientFix[ref]; fix != nil {
			fix(r)
		}
		setManagedLinks(r, c.patientLinks(ref))
		if string(fhir.Marshal(r)) != string(before) {
			put("Patient", v.ID, r, v.VersionID)
		}
	}

	for _, pid := range sortedKeys(c.members) {
		var version int64
		var p fhir.Object
		if !c.created[pid] {
			v, r, err := c.s.readCurrent(ctx, "Person/"+pid)
			if err != nil {
				return err
			}
			if r == nil {
				return fhir.Errorf(fhir.EConflict, "", "Person/%s was deleted while a link decision was taken", pid)
			}
			version, p = v.VersionID, r
		}
		np := c.personBody(pid, p, bodies)
		if p != nil && string(fhir.Marshal(np)) == string(fhir.Marshal(p)) {
			continue
		}
		put("Person", pid, np, version)
	}
	for _, t := range c.tasks {
		put("Task", str(t.r["id"]), t.r, t.version)
	}
	if len(entries) > 0 {
		b := fhir.Object{"resourceType": "Bundle", "type": "transaction", "entry": entries}
		start := time.Now()
		_, err := c.s.eng.Bundle(ctx, fhir.Marshal(b), engineWrite)
		c.s.stats.Write += time.Since(start)
		c.s.stats.Writes++
		c.s.stats.Wrote += len(entries)
		if err != nil {
			return err
		}
	}

	// Durable: fold the overlay into the service's state.
	s := c.s
	for pid, m := range c.members {
		if len(m) == 0 {
			delete(s.members, pid)
		} else {
			s.members[pid] = m
		}
	}
	for ref, pid := range c.personOf {
		if pid == "" {
			delete(s.personOf, ref)
		} else {
			s.personOf[ref] = pid
		}
	}
	for src, dst := range c.replacedBy {
		if dst == "" {
			delete(s.replacedBy, src)
		} else {
			s.replacedBy[src] = dst
		}
	}
	for _, p := range c.taskDone {
		delete(s.open, p)
	}
	for p, id := range c.openTasks {
		s.open[p] = id
	}
	for _, p := range c.reject {
		s.rejected[p] = true
	}
	return nil
}

// readCurrent reads the current version of "Type/id"; r is nil when it is
// deleted or absent.
func (s *Service) readCurrent(ctx context.Context, ref string) (*store.Version, fhir.Object, error) {
	typ, id := splitRef(ref)
	v, err := s.st.Read(ctx, typ, id)
	if fhir.IsKind(err, fhir.ENotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if v.Deleted {
		return v, nil, nil
	}
	r, err := fhir.ParseObject(v.Body, 0)
	if err != nil {
		return nil, nil, fhir.Internal(err)
	}
	return v, r, nil
}

// decimal renders a score with three decimals (valueDecimal).
func decimal(x float64) json.Number { return json.Number(strconv.FormatFloat(x, 'f', 3, 64)) }
