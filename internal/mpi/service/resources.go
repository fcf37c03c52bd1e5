package service

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/mpi"
	"github.com/sharedcare/sharedcare/internal/nhsnumber"
)

// The service's own canonical URLs.
const (
	// ExtDecision is the extension on Person.link that records the link
	// decision: method, grade, score, probability, the record matched, the
	// fields that agreed, when, and for manual decisions who and which Task.
	ExtDecision = "https://fhir.sharedcare.dev/StructureDefinition/mpi-link-decision"
	// ExtManagedLink marks the Patient.link entries the index keeps in step
	// (seealso between the Patients of a person, replaced-by and replaces
	// of a merge), so that links a sender wrote are never touched.
	ExtManagedLink = "https://fhir.sharedcare.dev/StructureDefinition/mpi-managed-link"
	// CodeSystem holds the codes of the review queue: the Task code, the
	// Task input and output types and the business statuses.
	CodeSystem = "https://fhir.sharedcare.dev/CodeSystem/mpi"
	// ReviewCode is Task.code of a review: "are these two Patients one
	// person?".
	ReviewCode = "review-link"
	// ExtMatchGrade is FHIR's match-grade extension on a $match entry's search.
	ExtMatchGrade = "http://hl7.org/fhir/StructureDefinition/match-grade"
)

// Methods of a link decision beyond mpi's deterministic, probabilistic and
// manual: the first Patient of a new person links to it by construction.
const methodNewPerson = "new-person"

// decision is one link decision, stored as ExtDecision on Person.link.
type decision struct {
	Method  string
	Grade   mpi.Grade
	Score   float64
	Prob    float64
	Matched string   // the Patient it matched ("" for a new person)
	Reason  []string // fields that agreed, or why a manual decision was taken
	By      string   // who decided (manual)
	Task    string   // the review Task (manual from review)
	When    time.Time
}

// assurance maps a decision to Person.link.assurance (IdentityAssuranceLevel):
// a decision a person took or a verified NHS number gives level4, a
// probabilistic link level3.
func (d decision) assurance() string {
	if d.Method == string(mpi.Probabilistic) {
		return "level3"
	}
	return "level4"
}

// link returns the Person.link entry targeting ref.
func (d decision) link(ref string) fhir.Object {
	ext := []any{
		fhir.Object{"url": "method", "valueCode": d.Method},
	}
	if d.Grade != "" {
		ext = append(ext, fhir.Object{"url": "grade", "valueCode": string(d.Grade)})
	}
	if d.Matched != "" {
		ext = append(ext,
			fhir.Object{"url": "matched", "valueReference": fhir.Object{"reference": d.Matched}},
			fhir.Object{"url": "score", "valueDecimal": decimal(d.Score)},
			fhir.Object{"url": "probability", "valueDecimal": decimal(d.Prob)})
	}
	for _, r := range d.Reason {
		ext = append(ext, fhir.Object{"url": "reason", "valueString": r})
	}
	if d.By != "" {
		ext = append(ext, fhir.Object{"url": "by", "valueString": d.By})
	}
	if d.Task != "" {
		ext = append(ext, fhir.Object{"url": "task", "valueReference": fhir.Object{"reference": d.Task}})
	}
	ext = append(ext, fhir.Object{"url": "decided", "valueDateTime": fhir.FormatInstant(d.When)})
	return fhir.Object{
		"target":    fhir.Object{"reference": ref},
		"assurance": d.assurance(),
		"extension": []any{fhir.Object{"url": ExtDecision, "extension": ext}},
	}
}

// fromMatch is the decision of an automatic link.
func fromMatch(m mpi.Match, now time.Time) decision {
	method := string(m.Method)
	if method == "" {
		method = string(mpi.Probabilistic)
	}
	return decision{Method: method, Grade: m.Grade, Score: m.Score, Prob: m.Prob, Matched: m.Ref, Reason: m.Reason, When: now}
}

// decisionOf reads the decision sub-extension named url from a link entry.
func decisionValue(l fhir.Object, url string) any {
	for _, e := range objects(l["extension"]) {
		if str(e["url"]) != ExtDecision {
			continue
		}
		for _, sub := range objects(e["extension"]) {
			if str(sub["url"]) == url {
				for k, v := range sub {
					if strings.HasPrefix(k, "value") {
						return v
					}
				}
			}
		}
	}
	return nil
}

// isManual reports whether a link entry records a decision a person took:
// a manual link, or one a merge made or moved.
func isManual(l fhir.Object) bool {
	return decisionValue(l, "method") == string(mpi.Manual) || decisionValue(l, "merge-of") != nil || decisionValue(l, "merged-into") != nil
}

// withSub returns a copy of a link entry whose decision has one more
// sub-extension (or, with value nil, none of that name).
func withSub(l fhir.Object, url string, value fhir.Object) fhir.Object {
	l, _ = fhir.Clone(l).(fhir.Object)
	if l == nil {
		return nil // no entry: the Person is rebuilt with a default one
	}
	for _, e := range objects(l["extension"]) {
		if str(e["url"]) != ExtDecision {
			continue
		}
		subs := slices.DeleteFunc(objectsAny(e["extension"]), func(x any) bool {
			o, _ := x.(fhir.Object)
			return str(o["url"]) == url
		})
		if value != nil {
			v := fhir.Object{"url": url}
			maps.Copy(v, value)
			subs = append(subs, v)
		}
		e["extension"] = subs
	}
	return l
}

// managedLink reports whether a Patient.link entry is one the index keeps
// (it carries ExtManagedLink). Links a sender wrote, of any type, are the
// sender's and are left alone.
func managedLink(l fhir.Object) bool {
	for _, e := range objects(l["extension"]) {
		if str(e["url"]) == ExtManagedLink {
			return true
		}
	}
	return false
}

// patientLinks returns the Patient.link entries the index wants on ref after
// the change: replaced-by its merge target, replaces what was merged into it,
// seealso every other Patient of its person.
func (c *change) patientLinks(ref string) []fhir.Object {
	var out []fhir.Object
	done := map[string]bool{ref: true}
	add := func(other, typ string) {
		if !done[other] {
			done[other] = true
			out = append(out, fhir.Object{
				"extension": []any{fhir.Object{"url": ExtManagedLink, "valueBoolean": true}},
				"other":     fhir.Object{"reference": other},
				"type":      typ,
			})
		}
	}
	if t := c.target(ref); t != "" {
		add(t, "replaced-by")
	}
	var sources []string
	for src := range c.s.replacedBy {
		sources = append(sources, src)
	}
	for src := range c.replacedBy {
		sources = append(sources, src)
	}
	slices.Sort(sources)
	for _, src := range slices.Compact(sources) {
		if c.target(src) == ref {
			add(src, "replaces")
		}
	}
	if pid := c.person(ref); pid != "" {
		for _, m := range c.membersOf(pid) {
			add(m, "seealso")
		}
	}
	return out
}

// setManagedLinks replaces the managed entries of Patient.link with want,
// keeping the others in place.
func setManagedLinks(p fhir.Object, want []fhir.Object) {
	var links []any
	for _, l := range objects(p["link"]) {
		if !managedLink(l) {
			links = append(links, l)
		}
	}
	for _, l := range want {
		links = append(links, l)
	}
	if len(links) == 0 {
		delete(p, "link")
		return
	}
	p["link"] = links
}

// personBody builds the Person pid after the change from its current body
// (nil for a new Person) and the current bodies of its members.
func (c *change) personBody(pid string, cur fhir.Object, bodies map[string]fhir.Object) fhir.Object {
	p := fhir.Object{}
	if cur != nil {
		p = fhir.Clone(cur).(fhir.Object)
	}
	p["resourceType"] = "Person"
	p["id"] = pid
	old := map[string]fhir.Object{}
	for _, l := range objects(p["link"]) {
		old[reference(l["target"])] = l
	}
	members := c.membersOf(pid)
	into, retiring := c.retired[pid]
	if len(members) == 0 && !retiring {
		return p
	}
	if len(members) == 0 {
		// Retired: kept, inactive, pointing at the Person it went into, so
		// its history and the references to it stay readable.
		p["active"] = false
		delete(p, "link")
		if into != "" {
			d := decision{Method: string(mpi.Manual), Reason: []string{"merged-into"}, When: c.s.now()}
			p["link"] = []any{d.link("Person/" + into)}
		}
		return p
	}
	p["active"] = true
	links := make([]any, 0, len(members))
	for _, m := range members {
		l := c.linkOf[m]
		if l == nil {
			l = old[m]
		}
		if l == nil {
			l = decision{Method: methodNewPerson, When: c.s.now()}.link(m)
		}
		links = append(links, l)
	}
	p["link"] = links
	golden(p, c.goldenSource(members, bodies))
	return p
}

// goldenSource chooses the member whose demographics the Person shows: one
// with a verified NHS number if any, else the most recently updated.
func (c *change) goldenSource(members []string, bodies map[string]fhir.Object) fhir.Object {
	var best fhir.Object
	bestVerified, bestUpdated := false, ""
	for _, m := range members {
		b := bodies[m]
		if b == nil {
			continue
		}
		rec, _ := c.s.ix.Get(m)
		updated := str(fhir.Meta(b)["lastUpdated"])
		if best == nil || (rec.NHSVerified && !bestVerified) || (rec.NHSVerified == bestVerified && updated > bestUpdated) {
			best, bestVerified, bestUpdated = b, rec.NHSVerified, updated
		}
	}
	return best
}

// golden copies the demographics of src onto the Person p: names, gender,
// birth date, telecom, addresses and the NHS number (local identifiers stay
// on the Patients, whose organisations issued them).
func golden(p, src fhir.Object) {
	if src == nil {
		return
	}
	for _, k := range []string{"name", "gender", "birthDate", "telecom", "address", "identifier"} {
		delete(p, k)
	}
	for _, k := range []string{"name", "gender", "birthDate", "telecom", "address"} {
		if v, ok := src[k]; ok {
			p[k] = fhir.Clone(v)
		}
	}
	var ids []any
	for _, id := range objects(src["identifier"]) {
		if str(id["system"]) == nhsnumber.System {
			ids = append(ids, fhir.Clone(id))
		}
	}
	if len(ids) > 0 {
		p["identifier"] = ids
	}
}

// objects returns the objects of a JSON array (nil for anything else).
func objects(v any) []fhir.Object {
	a, _ := v.([]any)
	out := make([]fhir.Object, 0, len(a))
	for _, x := range a {
		if o, ok := x.(fhir.Object); ok {
			out = append(out, o)
		}
	}
	return out
}

func objectsAny(v any) []any { a, _ := v.([]any); return slices.Clone(a) }

// reference returns Reference.reference.
func reference(v any) string {
	o, _ := v.(fhir.Object)
	return str(o["reference"])
}

func str(v any) string { s, _ := v.(string); return s }

func isPatientRef(ref string) bool {
	id, ok := strings.CutPrefix(ref, "Patient/")
	return ok && fhir.ValidID(id)
}

// splitRef splits "Type/id".
func splitRef(ref string) (typ, id string) {
	typ, id, _ = strings.Cut(ref, "/")
	return typ, id
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.SortedFunc(maps.Keys(m), cmp.Compare[string])
}

// now is the decision time.
func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }
