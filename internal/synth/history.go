package synth

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/synth/codes"
)

// ltcCare is what each long-term condition brings: its code at the GP,
// the repeat medicines, and the annual-review observations.
var ltcCare = map[string]struct {
	meds []codes.Medicine
	labs []codes.Lab
}{
	"diabetes":            {[]codes.Medicine{codes.Metformin500, codes.Atorvastatin20}, []codes.Lab{codes.HbA1c, codes.Cholesterol, codes.Creatinine, codes.BodyWeight}},
	"asthma":              {[]codes.Medicine{codes.Salbutamol100}, nil},
	"copd":                {[]codes.Medicine{codes.Salbutamol100}, []codes.Lab{codes.SpO2}},
	"heart-failure":       {[]codes.Medicine{codes.Furosemide40, codes.Bisoprolol2_5}, []codes.Lab{codes.NTproBNP, codes.Potassium, codes.Creatinine}},
	"atrial-fibrillation": {[]codes.Medicine{codes.Apixaban5, codes.Bisoprolol2_5}, []codes.Lab{codes.HeartRate, codes.Creatinine}},
	"dementia":            {[]codes.Medicine{codes.Donepezil5}, nil},
	"cancer":              {nil, []codes.Lab{codes.Haemoglobin}},
	"depression":          {[]codes.Medicine{codes.Sertraline50}, nil},
	"learning-disability": {nil, []codes.Lab{codes.BodyWeight}},
}

// cancerCodes vary the cancer site by sex (the QOF cancer register is
// all sites; breast, prostate, lung and colorectal are the commonest).
func cancerCode(rng *Rand, male bool) codes.Code {
	if male {
		return pick(rng, []codes.Code{codes.ProstateCancer, codes.ProstateCancer, codes.LungCancer, codes.ColonCancer})
	}
	return pick(rng, []codes.Code{codes.BreastCancer, codes.BreastCancer, codes.LungCancer, codes.ColonCancer})
}

// acute conditions seen in general practice and A&E.
var gpAcute = []struct {
	code codes.Code
	med  *codes.Medicine
	days int
}{
	{codes.ViralSinusitis, nil, 10}, {codes.AcuteViralPharyngit, nil, 7}, {codes.AcuteBronchitis, &codes.Amoxicillin500, 14},
	{codes.OtitisMedia, &codes.Amoxicillin500, 7}, {codes.UrinaryTractInfect, &codes.Nitrofurantoin50, 5},
	{codes.Cellulitis, &codes.Amoxicillin500, 10}, {codes.Gastroenteritis, nil, 5},
}

var aeReasons = []codes.Code{codes.ChestPain, codes.AccidentalFall, codes.FractureOfAnkle, codes.FractureOfForearm,
	codes.ConcussionNoLOC, codes.Pneumonia, codes.UrinaryTractInfect, codes.Cellulitis, codes.Gastroenteritis}

// history writes the person's records at every organisation that knows them.
func (e *emitter) history() {
	p, rng := e.p, e.rng
	end := p.end()
	band := BandOf(p.Age)
	gp := p.GP
	gpDoc := gp.staffIn(rng, RoleGP)
	nurse := gp.staffIn(rng, RolePracticeNurs)
	e.patient(gp)

	// Long-term conditions on the GP problem list, their repeat medicines
	// and annual reviews.
	var repeats []codes.Medicine
	var cancer codes.Code
	for _, c := range LongTermConditions {
		onset, ok := p.LTC[c.Name]
		if !ok {
			continue
		}
		code := c.Code
		var labels []codes.Code
		switch c.Name {
		case "cancer":
			code = cancerCode(rng, p.Male)
			cancer = code
		case "diabetes":
			if p.Age < 25 || rng.chance(0.08) {
				code = codes.Type1Diabetes
			}
		case "dementia":
			if rng.chance(0.6) {
				code = codes.Alzheimers
			}
		case "depression":
			labels = []codes.Code{codes.LabelPSY}
			if rng.chance(0.3) {
				code = codes.MajorDepression
			}
		}
		e.condition(gp, code, onset, gpDoc, nil, time.Time{}, labels)
		care := ltcCare[c.Name]
		meds := care.meds
		if code == codes.Type1Diabetes {
			meds = []codes.Medicine{codes.InsulinGlargine}
		}
		if c.Name == "dementia" && code != codes.Alzheimers {
			meds = nil
		}
		if c.Name == "copd" && rng.chance(0.3) {
			e.medication(gp, codes.Prednisolone5, rng.daytime(rng.between(e.since(1), end)), gpDoc, false)
		}
		for _, m := range meds {
			if p.Age < 18 && m != codes.Salbutamol100 && m != codes.InsulinGlargine {
				continue
			}
			e.medication(gp, m, rng.daytime(maxTime(onset, end.AddDate(-5, 0, 0))), gpDoc, !p.Alive(), labels...)
			repeats = append(repeats, m)
		}
		for y := 0; y < 2; y++ {
			at := rng.daytime(end.AddDate(-y-1, 0, 1+rng.IntN(360)))
			if at.After(end) || at.Before(onset) {
				continue
			}
			enc, _ := e.encounter(gp, codes.ClassAmbulatory, cc(codes.Consultation), at, at.Add(20*time.Minute), nurse, cc(code), gp.Sites[0].ID)
			if p.Age >= 18 {
				e.bloodPressure(gp, at, enc, nurse, 0.5)
			}
			for _, l := range care.labs {
				e.observation(gp, l, at, enc, nurse, 0.6)
			}
		}
	}
	for _, c := range p.Extra {
		e.condition(gp, c.code, c.onset, gpDoc, nil, time.Time{}, c.labels)
		switch c.code {
		case codes.Hypertension:
			e.medication(gp, codes.Amlodipine5, rng.daytime(maxTime(c.onset, end.AddDate(-5, 0, 0))), gpDoc, !p.Alive())
			repeats = append(repeats, codes.Amlodipine5)
		case codes.Schizophrenia, codes.BipolarDisorder:
			e.medication(gp, codes.Olanzapine10, rng.daytime(maxTime(c.onset, end.AddDate(-5, 0, 0))), gpDoc, !p.Alive(), c.labels...)
			repeats = append(repeats, codes.Olanzapine10)
		}
	}

	// Next of kin: a parent for children, a spouse or child for most older people.
	if p.Age < 16 || (p.Age >= 65 && rng.chance(0.8)) {
		e.relatedPerson(gp, "N", "Next-of-Kin")
	}

	// Allergies (GP record; the hospital copies them on admission).
	allergies := e.allergies()
	for _, a := range allergies {
		e.allergy(gp, a, gpDoc)
	}

	// Routine and acute GP consultations over the last two years.
	nGP := rng.poisson(gpRate[band] * 2)
	for k := 0; k < nGP; k++ {
		at := rng.daytime(rng.between(e.since(2), end))
		who := gp.staffIn(rng, RoleGP, RolePracticeNurs)
		a := pick(rng, gpAcute)
		enc, _ := e.encounter(gp, codes.ClassAmbulatory, cc(codes.Consultation), at, at.Add(10*time.Minute), who, cc(a.code), gp.Sites[0].ID)
		if rng.chance(0.5) {
			resolved := at.AddDate(0, 0, a.days)
			if resolved.After(end) {
				resolved = time.Time{} // still active on Ref
			}
			e.condition(gp, a.code, at, who, enc, resolved, nil)
		}
		if a.med != nil && rng.chance(0.6) && who.Role == RoleGP {
			e.medication(gp, *a.med, at, who, false)
		}
		if p.Age >= 18 && rng.chance(0.3) {
			e.bloodPressure(gp, at, enc, who, 0.3)
		}
	}

	// Immunisations: seasonal flu for 65+ (about 75% uptake, some given at
	// the pharmacy), pneumococcal once at 65+, COVID-19 boosters for 75+.
	if p.Age >= 65 {
		for season := 1; season <= 3; season++ {
			at := rng.daytime(time.Date(Ref.Year()-season, 10, 1+rng.IntN(60), 0, 0, 0, 0, time.UTC))
			if at.After(end) || !rng.chance(0.75) {
				continue
			}
			if rng.chance(0.25) {
				e.immunisation(p.Pharmacy, codes.InfluenzaVaccine, at, p.Pharmacy.staffIn(rng, RolePharmacist))
			} else {
				e.immunisation(gp, codes.InfluenzaVaccine, at, nurse)
			}
		}
		if at := rng.daytime(p.Birth.AddDate(65, 0, rng.IntN(300))); at.Before(end) && rng.chance(0.7) {
			e.immunisation(gp, codes.PneumococcalVaccine, at, nurse)
		}
	}
	if p.Age >= 75 && rng.chance(0.7) {
		if at := rng.daytime(time.Date(Ref.Year()-1, 4, 1+rng.IntN(60), 0, 0, 0, 0, time.UTC)); at.Before(end) {
			e.immunisation(gp, codes.CovidMRNAVaccine, at, nurse)
		}
	}

	// Flags: safeguarding (about 0.5% of children are on a child protection
	// plan; adult safeguarding concerns for frail older people), domestic
	// abuse (labelled very restricted: it must never leave the practice).
	if p.Age < 18 && rng.chance(0.006) {
		e.flag(gp, "safety", "Safety", text("Child protection plan in place: discuss with safeguarding lead before sharing"), rng.daytime(rng.between(e.since(2), end)), gpDoc, codes.LabelRestricted)
	}
	if p.Age >= 75 && rng.chance(0.004) {
		e.flag(gp, "safety", "Safety", text("Adult safeguarding concern: financial abuse suspected"), rng.daytime(rng.between(e.since(2), end)), gpDoc, codes.LabelRestricted)
	}
	if p.Age >= 18 && rng.chance(map[bool]float64{true: 0.004, false: 0.012}[p.Male]) {
		e.flag(gp, "safety", "Safety", text("Domestic abuse: do not disclose address or contact details"), rng.daytime(rng.between(e.since(3), end)), gpDoc, codes.LabelSDV, codes.LabelVeryRestr)
	}

	// Pharmacy: the nominated pharmacy dispenses every repeat medicine.
	if len(repeats) > 0 {
		ph := p.Pharmacy
		pharmacist := ph.staffIn(rng, RolePharmacist)
		for _, m := range repeats {
			for k := 0; k < 2; k++ {
				at := rng.daytime(end.AddDate(0, -1-2*k, -rng.IntN(20)))
				e.dispense(ph, m, at, pharmacist)
			}
		}
	}

	frail := p.Age >= 75 || p.Has("dementia") || p.Has("heart-failure")
	e.hospital(allergies, cancer)
	e.ambulance()
	careHome := e.careHome(frail)
	e.community(frail, careHome)
	e.socialCare(frail, careHome)
	e.mentalHealth()
	e.endOfLife(cancer, careHome)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

type allergyDef struct {
	code     codes.Code
	category string
	reaction string
	severe   bool
}

func (e *emitter) allergies() []allergyDef {
	rng := e.rng
	var out []allergyDef
	if rng.chance(0.06) {
		out = append(out, allergyDef{codes.AllergyPenicillin, "medication", "Rash", rng.chance(0.1)})
	}
	if rng.chance(map[bool]float64{true: 0.02, false: 0.008}[e.p.Age < 18]) {
		out = append(out, allergyDef{codes.AllergyPeanuts, "food", "Anaphylaxis", true})
	}
	if rng.chance(0.005) {
		out = append(out, allergyDef{codes.AllergyLatex, "environment", "Contact dermatitis", false})
	}
	if rng.chance(0.005) {
		out = append(out, allergyDef{codes.AllergyShellfish, "food", "Urticaria", false})
	}
	if rng.chance(0.04) {
		out = append(out, allergyDef{codes.AllergyGrass, "environment", "Allergic rhinitis", false})
	}
	return out
}

func (e *emitter) allergy(o *Org, a allergyDef, who *Staff) {
	crit := "low"
	if a.severe {
		crit = "high"
	}
	e.add(o, fhir.Object{
		"resourceType":       "AllergyIntolerance",
		"clinicalStatus":     fhir.Object{"coding": []any{fhir.Object{"system": codes.AllergyClinical, "code": "active", "display": "Active"}}},
		"verificationStatus": fhir.Object{"coding": []any{fhir.Object{"system": codes.AllergyVerStatus, "code": "confirmed", "display": "Confirmed"}}},
		"type":               "allergy",
		"category":           []any{a.category},
		"criticality":        crit,
		"code":               cc(a.code),
		"patient":            e.patient(o),
		"recordedDate":       dateTime(e.rng.daytime(e.rng.between(minTime(e.p.Birth.AddDate(1, 0, 0), e.p.end()), e.p.end()))),
		"recorder":           staffRef(who),
		"reaction":           []any{fhir.Object{"manifestation": []any{text(a.reaction)}}},
	})
}

func (e *emitter) immunisation(o *Org, v codes.Code, at time.Time, who *Staff) {
	e.add(o, fhir.Object{
		"resourceType":       "Immunization",
		"status":             "completed",
		"vaccineCode":        cc(v),
		"patient":            e.patient(o),
		"occurrenceDateTime": dateTime(at),
		"primarySource":      true,
		"lotNumber":          fmt.Sprintf("%c%c%04d", 'A'+rune(e.rng.IntN(26)), 'A'+rune(e.rng.IntN(26)), e.rng.IntN(10000)),
		"performer":          []any{fhir.Object{"actor": staffRef(who)}},
	})
}

func (e *emitter) dispense(o *Org, m codes.Medicine, at time.Time, who *Staff) {
	med := fhir.Object{"text": m.Name}
	if c, ok := m.DMD(); ok {
		med["coding"] = []any{coding(c)}
	}
	e.add(o, fhir.Object{
		"resourceType":              "MedicationDispense",
		"status":                    "completed",
		"medicationCodeableConcept": med,
		"subject":                   e.patient(o),
		"performer":                 []any{fhir.Object{"actor": staffRef(who)}},
		"quantity":                  fhir.Object{"value": 56, "unit": "dose"},
		"whenHandedOver":            dateTime(at),
		"dosageInstruction":         []any{fhir.Object{"text": m.Dosage}},
	})
}

// hospital writes A&E attendances, emergency and elective admissions with
// their diagnoses, labs, and a discharge letter, and cancer outpatients.
func (e *emitter) hospital(allergies []allergyDef, cancer codes.Code) {
	p, rng := e.p, e.rng
	acute := e.g.region.one(AcuteTrust)
	band := BandOf(p.Age)
	end := p.end()
	from := e.since(3)
	copied := false
	admit := func(start time.Time, reason codes.Code, emergency bool) {
		if !copied {
			for _, a := range allergies {
				e.allergy(acute, a, acute.staffIn(rng, RoleNurse))
			}
			copied = true
		}
		cons := acute.staffIn(rng, RoleConsultant)
		los := 1 + rng.IntN(3) + int(rng.ExpFloat64()*float64(2+band))
		stop := rng.daytime(start.AddDate(0, 0, los))
		disp := codes.DischargeHome
		if !p.Alive() && stop.After(p.Death.AddDate(0, 0, -10)) && rng.chance(0.45) {
			stop, disp = p.Death, codes.DischargeExpired
		} else if stop.After(end) {
			stop = end
		}
		if stop.Before(start) {
			stop = start.Add(time.Hour)
		}
		typ := cc(codes.HospitalAdmission)
		if emergency {
			typ = cc(codes.EmergencyAdmission)
		}
		site := pick(rng, acute.Sites).ID
		encRef, enc := e.encounter(acute, codes.ClassInpatient, typ, start, stop, cons, cc(reason), site)
		enc["hospitalization"] = fhir.Object{"dischargeDisposition": cc(disp)}
		e.condition(acute, reason, start, cons, encRef, time.Time{}, nil)
		for _, l := range []codes.Lab{codes.Haemoglobin, codes.Sodium, codes.Potassium, codes.Creatinine, codes.CRP} {
			e.observation(acute, l, start.Add(time.Hour), encRef, nil, 0.4)
		}
		// The encounter was queued before hospitalization was set: re-marshal it.
		e.remarshal(acute, enc)
		if disp != codes.DischargeExpired {
			e.dischargeLetter(acute, encRef, enc, reason, start, stop, cons)
		}
	}
	for k, n := 0, rng.poisson(aeRate[band]*3); k < n; k++ {
		at := rng.between(from, end)
		reason := pick(rng, aeReasons)
		site := acute.Sites[0].ID
		encRef, _ := e.encounter(acute, codes.ClassEmergency, cc(codes.EmergencyDeptVisit), at, at.Add(time.Duration(60+rng.IntN(400))*time.Minute), acute.staffIn(rng, RoleConsultant), cc(reason), site)
		e.observation(acute, codes.HeartRate, at.Add(10*time.Minute), encRef, nil, 0.3)
		e.bloodPressure(acute, at.Add(10*time.Minute), encRef, nil, 0.3)
		if rng.chance(0.25) {
			admit(at.Add(5*time.Hour), reason, true)
		}
	}
	for k, n := 0, rng.poisson(emergAdmRate[band]*3*0.75); k < n; k++ {
		admit(rng.between(from, end), pick(rng, aeReasons), true)
	}
	for k, n := 0, rng.poisson(electAdmRate[band]*3); k < n; k++ {
		admit(rng.daytime(rng.between(from, end)), pick(rng, []codes.Code{codes.Cellulitis, codes.FractureOfAnkle, codes.ChestPain}), false)
	}
	if cancer.Code != "" && rng.chance(0.7) {
		cons := acute.staffIn(rng, RoleConsultant)
		onset := p.LTC["cancer"]
		e.condition(acute, cancer, onset, cons, nil, time.Time{}, nil)
		for k := 0; k < 2; k++ {
			at := rng.daytime(rng.between(maxTime(onset, from), end))
			e.encounter(acute, codes.ClassAmbulatory, cc(codes.Consultation), at, at.Add(30*time.Minute), cons, cc(cancer), acute.Sites[0].ID)
		}
	}
}

// remarshal replaces the queued JSON of r (changed after it was added).
func (e *emitter) remarshal(o *Org, r fhir.Object) {
	id := r["id"].(string)
	for i := len(e.out.recs) - 1; i >= 0; i-- {
		if e.out.recs[i].Org == o.Index && e.out.recs[i].ID == id && e.out.recs[i].Type == r["resourceType"] {
			e.out.recs[i].JSON = fhir.Marshal(r)
			return
		}
	}
}

// dischargeLetter writes the discharge summary as a DocumentReference whose
// attachment is the letter (plain text), as a UK trust's document feed would.
func (e *emitter) dischargeLetter(o *Org, encRef, enc fhir.Object, reason codes.Code, start, stop time.Time, cons *Staff) {
	p := e.p
	letter := fmt.Sprintf("DISCHARGE SUMMARY\n%s\nPatient: %s %s, born %s, NHS number %s\nAdmitted: %s  Discharged: %s\nDiagnosis: %s\nDischarged home. GP to review in two weeks.\nConsultant: Dr %s %s\n",
		o.Name, p.Given, p.Family, p.Birth.Format("02/01/2006"), p.NHS, start.Format("02/01/2006"), stop.Format("02/01/2006"), reason.Display, cons.Given, cons.Family)
	e.add(o, fhir.Object{
		"resourceType": "DocumentReference",
		"status":       "current",
		"type":         cc(codes.DischargeSummary),
		"subject":      encRefSubject(enc),
		"date":         dateTime(stop),
		"author":       []any{staffRef(cons)},
		"custodian":    localOrgRef(o),
		"description":  "Discharge summary: " + reason.Display,
		"content": []any{fhir.Object{"attachment": fhir.Object{
			"contentType": "text/plain", "language": "en-GB", "title": "Discharge summary",
			"data": base64.StdEncoding.EncodeToString([]byte(letter)), "creation": dateTime(stop),
		}}},
		"context": fhir.Object{"encounter": []any{encRef}, "period": periodFrom(start, stop)},
	})
}

func encRefSubject(enc fhir.Object) any { return enc["subject"] }

// ambulance writes incidents attended by the ambulance service, with the
// observations taken on scene; most end in conveyance to A&E.
func (e *emitter) ambulance() {
	p, rng := e.p, e.rng
	amb := e.g.region.one(AmbulanceTrust)
	acute := e.g.region.one(AcuteTrust)
	end := p.end()
	for k, n := 0, rng.poisson(ambulanceRate[BandOf(p.Age)]*3); k < n; k++ {
		at := rng.between(e.since(3), end)
		para := amb.staffIn(rng, RoleParamedic)
		reason := pick(rng, []codes.Code{codes.AccidentalFall, codes.ChestPain, codes.Pneumonia, codes.ConcussionNoLOC})
		encRef, enc := e.encounter(amb, codes.ClassField, text("Emergency ambulance response"), at, at.Add(time.Duration(40+rng.IntN(60))*time.Minute), para, cc(reason), "")
		if rng.chance(0.65) {
			enc["hospitalization"] = fhir.Object{"destination": fhir.Object{"type": "Location", "identifier": fhir.Object{"system": codes.ODSSite, "value": acute.Sites[0].ID}, "display": acute.Sites[0].Name}}
			e.remarshal(amb, enc)
		}
		for _, l := range []codes.Lab{codes.HeartRate, codes.RespRate, codes.SpO2, codes.Temperature} {
			e.observation(amb, l, at.Add(15*time.Minute), encRef, para, 0.5)
		}
		e.bloodPressure(amb, at.Add(15*time.Minute), encRef, para, 0.5)
	}
}

// careHome places frail people in a nursing or residential home (about
// 4% of people over 85 in England live in a care home with nursing and as
// many in a residential home; dementia doubles the chance). The residence
// is an in-progress Encounter (class inpatient non-acute) at the home's
// Location, which is what issue 6's care-home relationship rule reads.
func (e *emitter) careHome(frail bool) *Org {
	p, rng := e.p, e.rng
	if !frail || p.Age < 65 {
		return nil
	}
	pr := map[bool]float64{true: 0.09, false: 0.015}[p.Age >= 85]
	if p.Age >= 75 && p.Age < 85 {
		pr = 0.035
	}
	if p.Has("dementia") {
		pr *= 2.5
	}
	if !rng.chance(pr) {
		return nil
	}
	kind := ResidentialHome
	if p.Has("dementia") || p.Has("heart-failure") || rng.chance(0.4) {
		kind = NursingHome
	}
	home := pick(rng, e.g.region.Of(kind))
	start := rng.daytime(rng.between(p.end().AddDate(-3, 0, 0), p.end().AddDate(0, -1, 0)))
	stop := time.Time{}
	if !p.Alive() {
		stop = p.Death
	}
	carer := home.staffIn(rng, RoleNurse, RoleCareWorker)
	service := "Residential care"
	if kind == NursingHome {
		service = "Nursing care"
	}
	encRef, enc := e.encounter(home, codes.ClassNonAcute, text("Care home residence"), start, stop, carer, nil, home.Sites[0].ID)
	enc["serviceType"] = text(service)
	e.remarshal(home, enc)
	for m := 0; m < 12; m += 3 {
		if at := rng.daytime(p.end().AddDate(0, -m, -rng.IntN(20))); at.After(start) {
			e.observation(home, codes.BodyWeight, at, encRef, carer, 0.3)
		}
	}
	if rng.chance(0.5) {
		e.flag(home, "safety", "Safety", cc(codes.AtRiskForFalls), start, carer)
	}
	e.carePlan(home, "Care home care plan", "Personal care, nutrition, mobility and medicines support", start, carer,
		[]string{"Support with washing and dressing each morning", "Weigh monthly; refer to dietitian if weight falls", "Two carers for transfers"})
	e.relatedPerson(home, "N", "Next-of-Kin")
	return home
}

// community writes district nursing for housebound frail people and home
// oxygen for a share of people with COPD or heart failure.
func (e *emitter) community(frail bool, home *Org) {
	p, rng := e.p, e.rng
	ct := e.g.region.one(CommunityTrust)
	end := p.end()
	if frail && home == nil && rng.chance(0.18) {
		dn := ct.staffIn(rng, RoleDistrictNurs)
		start := rng.between(e.since(2), end.AddDate(0, 0, -30))
		epRef := e.episode(ct, "District nursing", start, time.Time{}, dn)
		for k, n := 0, 2+rng.IntN(6); k < n; k++ {
			at := rng.daytime(rng.between(start, end))
			_, enc := e.encounter(ct, codes.ClassHomeHealth, cc(codes.HomeVisit), at, at.Add(30*time.Minute), dn, text("Wound care and medicines review"), "")
			enc["episodeOfCare"] = []any{epRef}
			e.remarshal(ct, enc)
		}
		if rng.chance(0.4) {
			e.flag(ct, "safety", "Safety", cc(codes.AtRiskForFalls), start, dn)
		}
	}
	// Other community services: podiatry for people with diabetes (annual
	// foot protection for the at-risk group), musculoskeletal physiotherapy
	// and the falls service.
	service := ""
	switch {
	case p.Has("diabetes") && p.Age >= 40 && rng.chance(0.2):
		service = "Diabetes foot protection (podiatry)"
	case p.Age >= 75 && home == nil && rng.chance(0.08):
		service = "Falls prevention service"
	case p.Age >= 18 && rng.chance(0.04):
		service = "Musculoskeletal physiotherapy"
	}
	if service != "" {
		who := ct.staffIn(rng, RoleDistrictNurs)
		start := rng.daytime(rng.between(e.since(3), end.AddDate(0, 0, -7)))
		stop := start.AddDate(0, 2+rng.IntN(4), 0)
		if stop.After(end) {
			stop = time.Time{} // still under the service on Ref
		}
		epRef := e.episode(ct, service, start, stop, who)
		for k, n := 0, 1+rng.IntN(3); k < n; k++ {
			at := rng.daytime(rng.between(start, start.AddDate(0, 2, 0)))
			if at.After(end) {
				break
			}
			_, enc := e.encounter(ct, codes.ClassAmbulatory, cc(codes.Consultation), at, at.Add(40*time.Minute), who, text(service), ct.Sites[0].ID)
			enc["episodeOfCare"] = []any{epRef}
			e.remarshal(ct, enc)
		}
		if service == "Falls prevention service" {
			e.flag(ct, "safety", "Safety", cc(codes.AtRiskForFalls), start, who)
		}
	}
	if (p.Has("copd") && rng.chance(0.15)) || (p.Has("heart-failure") && rng.chance(0.04)) {
		dn := ct.staffIn(rng, RoleDistrictNurs)
		e.deviceRequest(ct, "Home oxygen concentrator", rng.daytime(rng.between(e.since(2), end)), dn, []any{
			fhir.Object{"code": text("Oxygen flow rate"), "valueQuantity": qty(float64(1+rng.IntN(3)), 0, "L/min", "L/min")},
			fhir.Object{"code": text("Hours per day"), "valueQuantity": qty(float64(15+rng.IntN(9)), 0, "h/d", "h/d")},
		})
	}
}

// socialCare writes the local authority's Care Act assessment, the care
// and support plan, a care package (EpisodeOfCare) and equipment
// (DeviceRequest: hoist with sling size).
func (e *emitter) socialCare(frail bool, home *Org) {
	p, rng := e.p, e.rng
	if p.Age < 18 {
		return
	}
	pr := 0.01
	switch {
	case p.Has("learning-disability"):
		pr = 0.6
	case p.Age >= 90:
		pr = 0.3
	case p.Age >= 80:
		pr = 0.12
	case p.Age >= 65:
		pr = 0.03
	}
	if p.Has("dementia") || home != nil {
		pr = 0.7
	}
	if !rng.chance(pr) {
		return
	}
	la := e.g.region.one(SocialCare)
	sw := la.staffIn(rng, RoleSocialWorker)
	end := p.end()
	at := rng.daytime(rng.between(e.since(3), end.AddDate(0, 0, -14)))
	e.encounter(la, codes.ClassHomeHealth, text("Care Act 2014 needs assessment"), at, at.Add(90*time.Minute), sw, text("Needs for care and support"), "")
	pkg := "Home care: two calls a day"
	if home != nil {
		pkg = "Long-term placement: " + home.Name
	} else if p.Has("learning-disability") {
		pkg = "Supported living and day opportunities"
	} else if rng.chance(0.3) {
		pkg = "Home care: four calls a day, double-handed"
	}
	start := at.AddDate(0, 0, 7+rng.IntN(21))
	if start.After(end) {
		start = end
	}
	var stop time.Time
	if !p.Alive() {
		stop = p.Death
	}
	e.episode(la, pkg, start, stop, sw)
	e.carePlan(la, "Care and support plan", pkg, start, sw, []string{"Personal care", "Meal preparation", "Medication prompts"})
	if frail && (p.Age >= 80 || p.Has("dementia")) && rng.chance(0.35) {
		e.deviceRequest(la, "Mobile hoist", start, sw, []any{
			fhir.Object{"code": text("Sling size"), "valueCodeableConcept": text(pick(rng, []string{"Small", "Medium", "Large", "Extra large"}))},
			fhir.Object{"code": text("Sling type"), "valueCodeableConcept": text("Full body sling with head support")},
		})
	}
	if rng.chance(0.6) {
		e.relatedPerson(la, "C", "Emergency Contact")
	}
}

// mentalHealth writes secondary mental health care: everyone with a
// serious mental illness, a fifth of people with depression, and memory
// services for half of people with dementia. Every clinical record here is
// labelled PSY and restricted.
func (e *emitter) mentalHealth() {
	p, rng := e.p, e.rng
	var reason codes.Code
	smi, talking := false, false
	for _, c := range p.Extra {
		if c.code == codes.Schizophrenia || c.code == codes.BipolarDisorder {
			reason, smi = c.code, true
		}
	}
	switch {
	case smi:
	case p.Has("depression") && p.Age >= 18 && rng.chance(0.2):
		reason = codes.Depression
	case p.Has("dementia") && rng.chance(0.5):
		reason = codes.Dementia
	case p.Age >= 18 && (p.Has("depression") || hasExtra(p, codes.AnxietyDisorder)) && rng.chance(0.15):
		// NHS Talking Therapies, run by the mental health trust.
		reason = codes.AnxietyDisorder
		if p.Has("depression") {
			reason = codes.Depression
		}
		talking = true
	default:
		return
	}
	mh := e.g.region.one(MentalHealthTrust)
	psy := []codes.Code{codes.LabelPSY, codes.LabelRestricted}
	cons := mh.staffIn(rng, RoleConsultant)
	end := p.end()
	start := rng.daytime(rng.between(e.since(3), end.AddDate(0, 0, -30)))
	team := map[bool]string{true: "Community mental health team", false: "Memory assessment service"}[reason != codes.Dementia]
	if talking {
		team = "NHS Talking Therapies"
	}
	ep := e.episodeLabelled(mh, team, start, time.Time{}, cons, psy)
	e.condition(mh, reason, start, cons, nil, time.Time{}, psy)
	for k, n := 0, 1+rng.IntN(4); k < n; k++ {
		at := rng.daytime(rng.between(start, end))
		encRef, enc := e.encounter(mh, codes.ClassAmbulatory, cc(codes.Consultation), at, at.Add(50*time.Minute), mh.staffIn(rng, RoleConsultant, RoleNurse), cc(reason), mh.Sites[0].ID)
		enc["episodeOfCare"] = []any{ep}
		enc["meta"] = fhir.Object{"security": []any{coding(codes.LabelPSY), coding(codes.LabelRestricted)}}
		e.remarshal(mh, enc)
		_ = encRef
	}
	if reason != codes.Dementia && !talking {
		e.carePlanLabelled(mh, "Mental health crisis plan", "What to do in a crisis", start, cons, []string{
			"Early warning signs: poor sleep, withdrawing from family, stopping medication",
			"In a crisis call the 24-hour crisis line on 0117 496 0999",
			"Preferred treatment setting: home treatment team before admission",
		}, psy)
	}
}

// endOfLife writes ReSPECT-style plans (preferred place of care and a
// resuscitation decision, with a DNACPR flag when not for resuscitation)
// for people in the last year of life, with advanced dementia or frailty,
// and the hospice's care for people dying of cancer.
func (e *emitter) endOfLife(cancer codes.Code, home *Org) {
	p, rng := e.p, e.rng
	end := p.end()
	likely := (!p.Alive() && rng.chance(0.6)) || (p.Has("dementia") && p.Age >= 80 && rng.chance(0.5)) ||
		(home != nil && rng.chance(0.6)) || (p.Has("heart-failure") && p.Age >= 80 && rng.chance(0.3))
	if !likely {
		return
	}
	gp := p.GP
	doc := gp.staffIn(rng, RoleGP)
	at := rng.daytime(rng.between(e.since(1), end.AddDate(0, 0, -3)))
	place := "Home"
	if home != nil {
		place = "Care home"
	} else if cancer.Code != "" && rng.chance(0.4) {
		place = "Hospice"
	}
	resus := codes.NotForResuscitation
	if rng.chance(0.15) {
		resus = codes.ForResuscitation
	}
	e.respect(gp, at, doc, place, resus)
	if resus == codes.NotForResuscitation {
		e.flag(gp, "clinical", "Clinical", cc(codes.NotForResuscitation), at, doc)
	}
	if home != nil {
		e.respect(home, at, home.staffIn(rng, RoleNurse, RoleCareWorker), place, resus)
	}
	if cancer.Code != "" && (place == "Hospice" || rng.chance(0.5)) {
		h := e.g.region.one(Hospice)
		cons := h.staffIn(rng, RoleConsultant)
		start := at.AddDate(0, 0, rng.IntN(30))
		if start.After(end) {
			start = end
		}
		var stop time.Time
		if !p.Alive() {
			stop = p.Death
		}
		ep := e.episode(h, "Specialist palliative care", start, stop, cons)
		e.condition(h, cancer, p.LTC["cancer"], cons, nil, time.Time{}, nil)
		_, enc := e.encounter(h, codes.ClassHomeHealth, cc(codes.PalliativeCare), start, start.Add(time.Hour), h.staffIn(rng, RoleNurse), cc(cancer), "")
		enc["episodeOfCare"] = []any{ep}
		e.remarshal(h, enc)
		e.respect(h, start, cons, place, resus)
		e.medication(h, codes.MorphineMR10, start, cons, !p.Alive())
		if resus == codes.NotForResuscitation {
			e.flag(h, "clinical", "Clinical", cc(codes.NotForResuscitation), start, cons)
		}
	}
}

// respect writes an end-of-life CarePlan in the shape of a ReSPECT form:
// the preferred place of care and the resuscitation decision as activities.
func (e *emitter) respect(o *Org, at time.Time, who *Staff, place string, resus codes.Code) {
	e.add(o, fhir.Object{
		"resourceType": "CarePlan",
		"status":       "active",
		"intent":       "plan",
		"category":     []any{text("End of life care plan (ReSPECT)")},
		"title":        "ReSPECT: recommended summary plan for emergency care and treatment",
		"subject":      e.patient(o),
		"period":       fhir.Object{"start": dateTime(at)},
		"created":      dateTime(at),
		"author":       staffRef(who),
		"activity": []any{
			fhir.Object{"detail": fhir.Object{"code": text("Preferred place of care"), "status": "in-progress", "description": place}},
			fhir.Object{"detail": fhir.Object{"code": cc(resus), "status": "in-progress", "description": "Resuscitation decision: " + resus.Display}},
		},
	})
}

func (e *emitter) carePlan(o *Org, title, desc string, at time.Time, who *Staff, acts []string) {
	e.carePlanLabelled(o, title, desc, at, who, acts, nil)
}

func (e *emitter) carePlanLabelled(o *Org, title, desc string, at time.Time, who *Staff, acts []string, labels []codes.Code) {
	var activity []any
	for _, a := range acts {
		activity = append(activity, fhir.Object{"detail": fhir.Object{"status": "in-progress", "description": a}})
	}
	e.add(o, fhir.Object{
		"resourceType": "CarePlan",
		"status":       "active",
		"intent":       "plan",
		"category":     []any{text(title)},
		"title":        title,
		"description":  desc,
		"subject":      e.patient(o),
		"period":       fhir.Object{"start": dateTime(at)},
		"created":      dateTime(at),
		"author":       staffRef(who),
		"activity":     activity,
	}, labels...)
}

func (e *emitter) episode(o *Org, typ string, start, stop time.Time, who *Staff) fhir.Object {
	return e.episodeLabelled(o, typ, start, stop, who, nil)
}

func (e *emitter) episodeLabelled(o *Org, typ string, start, stop time.Time, who *Staff, labels []codes.Code) fhir.Object {
	status := "active"
	if !stop.IsZero() {
		status = "finished"
	}
	return e.add(o, fhir.Object{
		"resourceType":         "EpisodeOfCare",
		"status":               status,
		"type":                 []any{text(typ)},
		"patient":              e.patient(o),
		"managingOrganization": localOrgRef(o),
		"period":               periodFrom(start, stop),
		"careManager":          staffRef(who),
	}, labels...)
}

func (e *emitter) deviceRequest(o *Org, device string, at time.Time, who *Staff, params []any) {
	e.add(o, fhir.Object{
		"resourceType":        "DeviceRequest",
		"status":              "active",
		"intent":              "order",
		"codeCodeableConcept": text(device),
		"subject":             e.patient(o),
		"authoredOn":          dateTime(at),
		"requester":           staffRef(who),
		"parameter":           params,
	})
}

// relatedPerson writes a next of kin or carer (v2 contact role N or C).
func (e *emitter) relatedPerson(o *Org, role, roleDisplay string) {
	p, rng := e.p, e.rng
	rel, relDisplay, female := "CHILD", "child", rng.IntN(2) == 0
	family := p.Family
	if p.Age < 18 {
		rel, relDisplay = "PRN", "parent"
	} else if p.Age < 70 && rng.chance(0.6) {
		rel, relDisplay, female = "SPS", "spouse", p.Male
	} else if rng.chance(0.4) {
		family = familyName(rng)
	}
	r := fhir.Object{
		"resourceType": "RelatedPerson",
		"active":       true,
		"patient":      e.patient(o),
		"relationship": []any{
			fhir.Object{"coding": []any{fhir.Object{"system": codes.V3RoleCode, "code": rel, "display": relDisplay}}},
			fhir.Object{"coding": []any{fhir.Object{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": role, "display": roleDisplay}}},
		},
		"name":    []any{fhir.Object{"family": family, "given": []any{givenName(rng, female, p.Birth.Year()+25)}}},
		"telecom": []any{fhir.Object{"system": "phone", "value": mobile(rng), "use": "mobile"}},
		"gender":  map[bool]string{true: "female", false: "male"}[female],
	}
	if role == "C" {
		r["relationship"] = append(r["relationship"].([]any), text("Unpaid carer"))
	}
	e.add(o, r)
}

func hasExtra(p *Person, c codes.Code) bool {
	for _, x := range p.Extra {
		if x.code == c {
			return true
		}
	}
	return false
}

// since is the start of a window of the last years of the person's history,
// never before their birth.
func (e *emitter) since(years int) time.Time {
	return maxTime(e.p.end().AddDate(-years, 0, 0), e.p.Birth.Add(24*time.Hour))
}
