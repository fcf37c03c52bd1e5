package synth

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/nhsnumber"
	"github.com/sharedcare/sharedcare/internal/synth/codes"
)

// Rec is one generated resource: the organisation whose folder it goes
// to, its type and id, and its JSON.
type Rec struct {
	Org  int
	Type string
	ID   string
	JSON []byte
}

// TruthRow is one row of truth.csv: an organisation's Patient and the true person.
type TruthRow struct {
	ODS, Patient, Person string
}

// WrongNHS records an NHS number injected wrongly into an organisation's
// Patient (wrong-nhs-numbers.csv).
type WrongNHS struct {
	ODS, Patient, Person, Recorded, True string
}

// personOut is everything generated for one person.
type personOut struct {
	recs  []Rec
	truth []TruthRow
	wrong []WrongNHS
	orgs  int // organisations that know the person
	p     *Person
}

// orgPat is the person as one organisation knows them.
type orgPat struct {
	id string // the organisation's Patient id
	n  int    // resources so far (ids are <patient id>-<n>)
}

// emitter builds one person's resources for every organisation.
type emitter struct {
	g    *Generator
	p    *Person
	rng  *Rand
	out  *personOut
	pats map[int]*orgPat
	buf  []byte
}

// ref returns a local reference to a resource.
func ref(typ, id string) fhir.Object { return fhir.Object{"reference": typ + "/" + id} }

// patient returns the reference to o's Patient for the person, creating
// the Patient (o's copy of the demographics) on first use.
func (e *emitter) patient(o *Org) fhir.Object {
	op, ok := e.pats[o.Index]
	if !ok {
		id := fmt.Sprintf("%016x", mix(e.g.seed^mix(uint64(o.Index)<<32|uint64(e.p.Index))))
		op = &orgPat{id: id}
		e.pats[o.Index] = op
		e.out.orgs++
		e.emit(o, e.patientCopy(o, id))
		e.out.truth = append(e.out.truth, TruthRow{o.ODS, id, e.p.ID})
	}
	return ref("Patient", op.id)
}

// add gives r an id (the organisation's Patient id and a counter), labels
// it and queues it; it returns the local reference to r.
func (e *emitter) add(o *Org, r fhir.Object, labels ...codes.Code) fhir.Object {
	e.patient(o)
	op := e.pats[o.Index]
	op.n++
	id := op.id + "-" + strconv.Itoa(op.n)
	r["id"] = id
	if len(labels) > 0 {
		sec := make([]any, len(labels))
		for i, l := range labels {
			sec[i] = coding(l)
		}
		r["meta"] = fhir.Object{"security": sec}
	}
	e.emit(o, r)
	return ref(r["resourceType"].(string), id)
}

func (e *emitter) emit(o *Org, r fhir.Object) {
	e.out.recs = append(e.out.recs, Rec{Org: o.Index, Type: r["resourceType"].(string), ID: r["id"].(string), JSON: fhir.Marshal(r)})
}

func coding(c codes.Code) fhir.Object {
	return fhir.Object{"system": c.System, "code": c.Code, "display": c.Display}
}

// cc is a CodeableConcept of one coding.
func cc(c codes.Code) fhir.Object {
	return fhir.Object{"coding": []any{coding(c)}, "text": c.Display}
}

// text is a CodeableConcept of text only, for concepts the region does not code.
func text(s string) fhir.Object { return fhir.Object{"text": s} }

func qty(v float64, decimals int, unit, code string) fhir.Object {
	return fhir.Object{"value": json.Number(strconv.FormatFloat(v, 'f', decimals, 64)), "unit": unit, "system": codes.UCUM, "code": code}
}

// --- Patient copies -------------------------------------------------------

// errorRates are how often each organisation type's copy of the
// demographics differs from the truth (docs/DATA.md): NHS number missing,
// a typo in a name, the old surname, the old address, day and month
// swapped, and a wrong NHS number.
type errorRates struct{ missingNHS, typo, oldName, oldAddr, swapDM, wrongNHS, nickname float64 }

var orgErrors = map[Kind]errorRates{
	GPPractice:        {0, 0.005, 0.02, 0.02, 0, 0, 0},
	AcuteTrust:        {0.02, 0.03, 0.25, 0.3, 0.01, 0.004, 0.01},
	MentalHealthTrust: {0.02, 0.02, 0.25, 0.3, 0.005, 0.004, 0.01},
	CommunityTrust:    {0.03, 0.02, 0.25, 0.3, 0.005, 0.004, 0.01},
	AmbulanceTrust:    {0.15, 0.08, 0.3, 0.2, 0.02, 0.006, 0.05},
	NursingHome:       {0.25, 0.04, 0.4, 0.5, 0.03, 0.006, 0.06},
	ResidentialHome:   {0.25, 0.04, 0.4, 0.5, 0.03, 0.006, 0.06},
	SocialCare:        {0.2, 0.04, 0.4, 0.4, 0.02, 0.006, 0.05},
	Hospice:           {0.03, 0.02, 0.25, 0.3, 0.01, 0.004, 0.02},
	Pharmacy:          {0.01, 0.02, 0.2, 0.3, 0.005, 0.004, 0.02},
}

// local identifier of the Patient at each organisation type.
var localIDs = map[Kind]struct{ path, typ, prefix string }{
	GPPractice:        {"patient-id", "", "GP"},
	AcuteTrust:        {"hospital-number", "MR", "H"},
	MentalHealthTrust: {"patient-id", "MR", "MH"},
	CommunityTrust:    {"patient-id", "MR", "C"},
	AmbulanceTrust:    {"patient-id", "", "AMB"},
	NursingHome:       {"resident-id", "", "R"},
	ResidentialHome:   {"resident-id", "", "R"},
	SocialCare:        {"social-care-id", "", "SC"},
	Hospice:           {"patient-id", "MR", "HS"},
	Pharmacy:          {"pmr-id", "", "PMR"},
}

// NHS number verification status (UK Core).
const (
	verificationExt    = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
	verificationSystem = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
)

func (e *emitter) patientCopy(o *Org, id string) fhir.Object {
	p, rng, rates := e.p, e.rng, orgErrors[o.Kind]
	given, family, addr, birth := p.Given, p.Family, p.Addr, p.Birth
	if p.FormerFamily != "" && rng.chance(rates.oldName) {
		family = p.FormerFamily
	}
	if p.OldAddr != nil && rng.chance(rates.oldAddr) {
		addr = *p.OldAddr
	}
	if nick, ok := nicknames[given]; ok && rng.chance(rates.nickname*4) {
		given = nick
	}
	if rng.chance(rates.typo) {
		if rng.IntN(2) == 0 {
			family = typo(rng, family)
		} else {
			given = typo(rng, given)
		}
	}
	if rng.chance(rates.swapDM) && birth.Day() <= 12 && birth.Day() != int(birth.Month()) {
		birth = time.Date(birth.Year(), time.Month(birth.Day()), int(birth.Month()), 0, 0, 0, 0, time.UTC)
	} else if o.Kind != GPPractice && rng.chance(rates.swapDM/2) {
		// One digit of the day mistyped (a neighbouring key): 14th for 15th.
		if d := birth.Day(); d < 28 {
			birth = birth.AddDate(0, 0, 1)
		} else {
			birth = birth.AddDate(0, 0, -1)
		}
	}
	if o.Kind != GPPractice && rng.chance(rates.typo/4) {
		// Given and family names entered the wrong way round.
		given, family = family, given
	}
	lid := localIDs[o.Kind]
	local := fhir.Object{"system": NS + "/Id/" + o.ODS + "/" + lid.path, "value": fmt.Sprintf("%s%07d", lid.prefix, mix(uint64(o.Index)<<40^uint64(p.Index)^e.g.seed)%10000000)}
	if lid.typ != "" {
		local["type"] = fhir.Object{"coding": []any{fhir.Object{"system": codes.V2IdentifierType, "code": lid.typ, "display": "Medical record number"}}}
	}
	var ids []any
	if o.Kind == GPPractice || !rng.chance(rates.missingNHS) {
		nhs, status, display := p.NHS, "01", "Number present and verified"
		if o.Kind != GPPractice && rng.chance(rates.wrongNHS) {
			nhs = wrongNHS(rng, p.NHS)
			e.out.wrong = append(e.out.wrong, WrongNHS{o.ODS, id, p.ID, nhs, p.NHS})
			status, display = "02", "Number present but not traced"
		} else if o.Kind != GPPractice && o.Kind != AcuteTrust && rng.chance(0.3) {
			status, display = "02", "Number present but not traced"
		}
		ids = append(ids, fhir.Object{
			"extension": []any{fhir.Object{"url": verificationExt, "valueCodeableConcept": fhir.Object{"coding": []any{fhir.Object{"system": verificationSystem, "code": status, "display": display}}}}},
			"system":    nhsnumber.System, "value": nhs,
		})
	}
	ids = append(ids, local)
	name := fhir.Object{"use": "official", "family": family}
	gv := []any{given}
	if p.Middle != "" && (o.Kind == GPPractice || rng.chance(0.6)) {
		gv = append(gv, p.Middle)
	}
	name["given"] = gv
	pat := fhir.Object{
		"resourceType":         "Patient",
		"id":                   id,
		"identifier":           ids,
		"active":               true,
		"name":                 []any{name},
		"gender":               map[bool]string{true: "male", false: "female"}[p.Male],
		"birthDate":            date(birth),
		"address":              []any{addr.fhir("home")},
		"managingOrganization": localOrgRef(o),
	}
	var tel []any
	if p.Phone != "" {
		tel = append(tel, fhir.Object{"system": "phone", "value": p.Phone, "use": "home"})
	}
	if p.Mobile != "" && (o.Kind == GPPractice || rng.chance(0.8)) {
		tel = append(tel, fhir.Object{"system": "phone", "value": p.Mobile, "use": "mobile"})
	}
	if len(tel) > 0 {
		pat["telecom"] = tel
	}
	if o.Kind == GPPractice {
		pat["generalPractitioner"] = []any{localOrgRef(o)}
	} else {
		pat["generalPractitioner"] = []any{orgRef(p.GP)}
	}
	if !p.Alive() && (o.Kind == GPPractice || rng.chance(0.6)) {
		pat["deceasedDateTime"] = dateTime(p.Death)
		pat["active"] = o.Kind == GPPractice
	}
	return pat
}

// typo makes one keyboard slip: a letter dropped, doubled, swapped with
// its neighbour or replaced.
func typo(rng *Rand, s string) string {
	b := []byte(s)
	if len(b) < 3 {
		return s
	}
	i := 1 + rng.IntN(len(b)-2)
	switch rng.IntN(4) {
	case 0:
		return string(append(b[:i:i], b[i+1:]...))
	case 1:
		return string(append(b[:i+1:i+1], b[i:]...))
	case 2:
		b[i], b[i+1] = b[i+1], b[i]
		if string(b) == s {
			b[i] = 'e'
		}
		return string(b)
	}
	c := byte('a' + rng.IntN(26))
	if b[i] == c {
		c = 'o'
	}
	b[i] = c
	return string(b)
}

// wrongNHS is another valid test-range number: one of the two errors that
// pass the check digit (a different person's number picked up by mistake).
func wrongNHS(rng *Rand, right string) string {
	for {
		n := nhsAt(rng.IntN(len(validNHSPrefixes())))
		if n != right {
			return n
		}
	}
}

// --- helpers for the common resources --------------------------------------

func category(system, code, display string) []any {
	return []any{fhir.Object{"coding": []any{fhir.Object{"system": system, "code": code, "display": display}}}}
}

func (e *emitter) condition(o *Org, c codes.Code, onset time.Time, author *Staff, enc fhir.Object, resolved time.Time, labels []codes.Code) fhir.Object {
	status, statusDisplay := "active", "Active"
	if !resolved.IsZero() {
		status, statusDisplay = "resolved", "Resolved"
	}
	cat := category(codes.ConditionCat, "problem-list-item", "Problem List Item")
	if enc != nil {
		cat = category(codes.ConditionCat, "encounter-diagnosis", "Encounter Diagnosis")
	}
	r := fhir.Object{
		"resourceType":       "Condition",
		"clinicalStatus":     fhir.Object{"coding": []any{fhir.Object{"system": codes.ConditionClinical, "code": status, "display": statusDisplay}}},
		"verificationStatus": fhir.Object{"coding": []any{fhir.Object{"system": codes.ConditionVerStatus, "code": "confirmed", "display": "Confirmed"}}},
		"category":           cat,
		"code":               cc(c),
		"subject":            e.patient(o),
		"onsetDateTime":      date(onset),
		"recordedDate":       dateTime(e.rng.daytime(onset)),
		"recorder":           staffRef(author),
	}
	if enc != nil {
		r["encounter"] = enc
	}
	if !resolved.IsZero() {
		r["abatementDateTime"] = date(resolved)
	}
	return e.add(o, r, labels...)
}

func (e *emitter) encounter(o *Org, class codes.Code, typ fhir.Object, start, end time.Time, who *Staff, reason fhir.Object, site string) (fhir.Object, fhir.Object) {
	r := fhir.Object{
		"resourceType":    "Encounter",
		"status":          "finished",
		"class":           coding(class),
		"type":            []any{typ},
		"subject":         e.patient(o),
		"serviceProvider": localOrgRef(o),
		"period":          fhir.Object{"start": dateTime(start), "end": dateTime(end)},
	}
	if end.IsZero() {
		r["status"] = "in-progress"
		r["period"] = fhir.Object{"start": dateTime(start)}
	}
	if who != nil {
		r["participant"] = []any{fhir.Object{"individual": staffRef(who)}}
	}
	if reason != nil {
		r["reasonCode"] = []any{reason}
	}
	if site != "" {
		r["location"] = []any{fhir.Object{"location": ref("Location", site)}}
	}
	return e.add(o, r), r
}

// observation writes a quantity observation with its reference range.
func (e *emitter) observation(o *Org, l codes.Lab, at time.Time, enc fhir.Object, who *Staff, shift float64, labels ...codes.Code) {
	v := l.Min + e.rng.Float64()*(l.Max-l.Min)*0.6 + shift*(l.Max-l.Min)*0.4
	if v > l.Max {
		v = l.Max
	}
	catCode, catDisplay := "laboratory", "Laboratory"
	if l.VitalSigns {
		catCode, catDisplay = "vital-signs", "Vital Signs"
	}
	r := fhir.Object{
		"resourceType":      "Observation",
		"status":            "final",
		"category":          category(codes.ObservationCat, catCode, catDisplay),
		"code":              cc(l.Code),
		"subject":           e.patient(o),
		"effectiveDateTime": dateTime(at),
		"valueQuantity":     qty(v, l.Decimals, l.UnitText, l.Unit),
	}
	if enc != nil {
		r["encounter"] = enc
	}
	if who != nil {
		r["performer"] = []any{staffRef(who)}
	}
	if l.High > 0 {
		r["referenceRange"] = []any{fhir.Object{"low": qty(l.Low, l.Decimals, l.UnitText, l.Unit), "high": qty(l.High, l.Decimals, l.UnitText, l.Unit)}}
		code, display := "N", "Normal"
		if rounded(v, l.Decimals) > l.High {
			code, display = "H", "High"
		} else if rounded(v, l.Decimals) < l.Low {
			code, display = "L", "Low"
		}
		r["interpretation"] = []any{fhir.Object{"coding": []any{fhir.Object{"system": codes.ObsInterpretation, "code": code, "display": display}}}}
	}
	e.add(o, r, labels...)
}

func rounded(v float64, d int) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', d, 64), 64)
	return f
}

// bloodPressure writes a blood pressure panel (systolic and diastolic components).
func (e *emitter) bloodPressure(o *Org, at time.Time, enc fhir.Object, who *Staff, shift float64, labels ...codes.Code) {
	sys := codes.SystolicLab.Min + e.rng.Float64()*40 + shift*30
	dia := codes.DiastolicLab.Min + e.rng.Float64()*25 + shift*15
	comp := func(c codes.Code, v float64) fhir.Object {
		return fhir.Object{"code": cc(c), "valueQuantity": qty(v, 0, "mmHg", "mm[Hg]")}
	}
	r := fhir.Object{
		"resourceType":      "Observation",
		"status":            "final",
		"category":          category(codes.ObservationCat, "vital-signs", "Vital Signs"),
		"code":              cc(codes.BPPanel),
		"subject":           e.patient(o),
		"effectiveDateTime": dateTime(at),
		"component":         []any{comp(codes.SystolicBP, sys), comp(codes.DiastolicBP, dia)},
	}
	if enc != nil {
		r["encounter"] = enc
	}
	if who != nil {
		r["performer"] = []any{staffRef(who)}
	}
	e.add(o, r, labels...)
}

// medication writes a MedicationRequest; it returns the prescription's
// identifier (shared with the pharmacy's dispenses) so records in two
// organisations can be tied together without a cross-folder reference.
func (e *emitter) medication(o *Org, m codes.Medicine, start time.Time, who *Staff, stopped bool, labels ...codes.Code) fhir.Object {
	med := fhir.Object{"text": m.Name}
	if c, ok := m.DMD(); ok {
		med["coding"] = []any{coding(c)}
	}
	course := fhir.Object{"coding": []any{fhir.Object{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", "code": "acute", "display": "Short course (acute) therapy"}}}
	status := "completed"
	if m.Repeat {
		course = fhir.Object{"coding": []any{fhir.Object{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", "code": "continuous", "display": "Continuous long term therapy"}}}
		status = "active"
		if stopped {
			status = "stopped"
		}
	}
	id := fhir.Object{"system": "https://fhir.nhs.uk/Id/prescription-order-item-number", "value": e.uuid()}
	e.add(o, fhir.Object{
		"resourceType":              "MedicationRequest",
		"identifier":                []any{id},
		"status":                    status,
		"intent":                    "order",
		"medicationCodeableConcept": med,
		"subject":                   e.patient(o),
		"authoredOn":                dateTime(start),
		"requester":                 staffRef(who),
		"courseOfTherapyType":       course,
		"dosageInstruction":         []any{fhir.Object{"text": m.Dosage}},
	}, labels...)
	return id
}

// uuid is a version-4-shaped UUID drawn from the person's generator.
func (e *emitter) uuid() string {
	a, b := e.rng.Uint64(), e.rng.Uint64()
	a = a&^(0xf<<12) | 4<<12
	b = b&^(0x3<<62) | 0x2<<62
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

func (e *emitter) flag(o *Org, catCode, catDisplay string, code fhir.Object, start time.Time, who *Staff, labels ...codes.Code) {
	r := fhir.Object{
		"resourceType": "Flag",
		"status":       "active",
		"category":     category(codes.FlagCategory, catCode, catDisplay),
		"code":         code,
		"subject":      e.patient(o),
		"period":       fhir.Object{"start": dateTime(start)},
	}
	if who != nil {
		r["author"] = staffRef(who)
	}
	e.add(o, r, labels...)
}

func periodFrom(start, end time.Time) fhir.Object {
	if end.IsZero() {
		return fhir.Object{"start": dateTime(start)}
	}
	return fhir.Object{"start": dateTime(start), "end": dateTime(end)}
}

func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}
