// Package codes is the small committed terminology table of the synthetic
// region (internal/synth): the SNOMED CT, dm+d, LOINC and HL7 codes the
// generator writes, each with the display the code system gives it.
//
// Only codes whose display was checked are listed; a wrong display is a bug.
// Sources, by table:
//
//   - SNOMED CT (http://snomed.info/sct): the UK Edition as browsed on the
//     NHS England terminology browser (termbrowser.nhs.uk); preferred terms
//     are used as displays. Long-term condition concepts are those of the
//     NHS England Quality and Outcomes Framework (QOF) business-rule
//     registers (diabetes, asthma, COPD, heart failure, atrial fibrillation,
//     dementia, cancer, depression, learning disability), checked against
//     their use in public FHIR examples (Synthea, HL7 and NHS England
//     implementation guides).
//   - dm+d (https://dmd.nhs.uk): Virtual Medicinal Product (VMP) ids and
//     names from the NHSBSA dm+d browser, each confirmed in an NHS England
//     implementation guide or another public source. Medicines whose VMP id
//     could not be confirmed are written as text only (UK Core allows a
//     medicationCodeableConcept with text and no coding); see Medicine.Code.
//   - LOINC (http://loinc.org): Regenstrief LOINC long common names (the
//     display every FHIR example uses), with UCUM units (http://unitsofmeasure.org)
//     and adult reference ranges as UK laboratories report them.
//   - HL7 v3 ActCode and Confidentiality: the FHIR R4 terminology
//     (terminology.hl7.org), displays as published there.
//
// The vaccine product concepts are the SNOMED CT international vaccine
// hierarchy that UK Core and the International Patient Summary use.
package codes

// Code systems.
const (
	SNOMED             = "http://snomed.info/sct"
	DMD                = "https://dmd.nhs.uk"
	LOINC              = "http://loinc.org"
	UCUM               = "http://unitsofmeasure.org"
	ActCode            = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	Confidentiality    = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	ObservationCat     = "http://terminology.hl7.org/CodeSystem/observation-category"
	ConditionCat       = "http://terminology.hl7.org/CodeSystem/condition-category"
	ConditionClinical  = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	ConditionVerStatus = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
	AllergyClinical    = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
	AllergyVerStatus   = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
	DischargeDisp      = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
	FlagCategory       = "http://terminology.hl7.org/CodeSystem/flag-category"
	V2IdentifierType   = "http://terminology.hl7.org/CodeSystem/v2-0203"
	V3RoleCode         = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
	ObsInterpretation  = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	ODS                = "https://fhir.nhs.uk/Id/ods-organization-code"
	ODSSite            = "https://fhir.nhs.uk/Id/ods-site-code"
	GMC                = "https://fhir.hl7.org.uk/Id/gmc-number"
	NMC                = "https://fhir.hl7.org.uk/Id/nmc-number"
	HCPC               = "https://fhir.hl7.org.uk/Id/hcpc-number"
)

// Code is one coding: a system, a code and its display.
type Code struct {
	System, Code, Display string
}

// SCT returns a SNOMED CT code.
func SCT(code, display string) Code { return Code{SNOMED, code, display} }

// Condition codes (SNOMED CT disorders), named for the generator.
var (
	Type2Diabetes       = SCT("44054006", "Type 2 diabetes mellitus")
	Type1Diabetes       = SCT("46635009", "Type 1 diabetes mellitus")
	Asthma              = SCT("195967001", "Asthma")
	COPD                = SCT("13645005", "Chronic obstructive lung disease")
	HeartFailure        = SCT("84114007", "Heart failure")
	AtrialFibrillation  = SCT("49436004", "Atrial fibrillation")
	Dementia            = SCT("52448006", "Dementia")
	Alzheimers          = SCT("26929004", "Alzheimer's disease")
	Depression          = SCT("35489007", "Depressive disorder")
	MajorDepression     = SCT("370143000", "Major depressive disorder")
	LearningDisability  = SCT("110359009", "Intellectual disability")
	Hypertension        = SCT("38341003", "Hypertension")
	Stroke              = SCT("230690007", "Cerebrovascular accident")
	Schizophrenia       = SCT("58214004", "Schizophrenia")
	BipolarDisorder     = SCT("13746004", "Bipolar disorder")
	AnxietyDisorder     = SCT("197480006", "Anxiety disorder")
	AlcoholDependence   = SCT("7200002", "Alcoholism")
	ChlamydialInfection = SCT("105629000", "Chlamydial infection")
	HIVInfection        = SCT("86406008", "Human immunodeficiency virus infection")
	BreastCancer        = SCT("254837009", "Malignant neoplasm of breast")
	ProstateCancer      = SCT("399068003", "Malignant tumor of prostate")
	LungCancer          = SCT("363358000", "Malignant tumor of lung")
	ColonCancer         = SCT("363406005", "Malignant tumor of colon")
	UrinaryTractInfect  = SCT("68566005", "Urinary tract infectious disease")
	Pneumonia           = SCT("233604007", "Pneumonia")
	AcuteBronchitis     = SCT("10509002", "Acute bronchitis")
	ViralSinusitis      = SCT("444814009", "Viral sinusitis")
	AcuteViralPharyngit = SCT("195662009", "Acute viral pharyngitis")
	OtitisMedia         = SCT("65363002", "Otitis media")
	Cellulitis          = SCT("128045006", "Cellulitis")
	FractureOfAnkle     = SCT("16114001", "Fracture of ankle")
	FractureOfForearm   = SCT("65966004", "Fracture of forearm")
	ConcussionNoLOC     = SCT("62106007", "Concussion with no loss of consciousness")
	Gastroenteritis     = SCT("25374005", "Gastroenteritis")
	AccidentalFall      = SCT("217082002", "Accidental fall")
	ChestPain           = SCT("29857009", "Chest pain")
)

// Findings, procedures and record artefacts.
var (
	NotForResuscitation = SCT("304253006", "Not for resuscitation")
	ForResuscitation    = SCT("304252001", "For resuscitation")
	AtRiskForFalls      = SCT("129839007", "At risk for falls")
	Consultation        = SCT("11429006", "Consultation")
	EmergencyDeptVisit  = SCT("4525004", "Emergency department patient visit")
	EmergencyAdmission  = SCT("183452005", "Emergency hospital admission")
	HospitalAdmission   = SCT("32485007", "Hospital admission")
	HomeVisit           = SCT("439708006", "Home visit")
	PalliativeCare      = SCT("103735009", "Palliative care")
	DischargeSummary    = SCT("373942005", "Discharge summary")
)

// Allergies (SNOMED CT findings, as UK GP systems record them).
var (
	AllergyPenicillin = SCT("91936005", "Allergy to penicillin")
	AllergyPeanuts    = SCT("91935009", "Allergy to peanuts")
	AllergyLatex      = SCT("300916003", "Latex allergy")
	AllergyShellfish  = SCT("300913006", "Shellfish allergy")
	AllergyGrass      = SCT("418689008", "Allergy to grass pollen")
)

// Vaccines (SNOMED CT vaccine products).
var (
	InfluenzaVaccine    = SCT("1181000221105", "Influenza virus antigen only vaccine product")
	PneumococcalVaccine = SCT("836398006", "Vaccine product containing Streptococcus pneumoniae antigen")
	CovidMRNAVaccine    = SCT("1119349007", "SARS-CoV-2 mRNA vaccine")
)

// Medicine is one prescribable product: its dm+d VMP when confirmed, and
// the dose instruction the generator writes.
type Medicine struct {
	Name   string // the dm+d VMP name
	Code   string // dm+d VMP id, "" when not confirmed (written as text only)
	Dosage string // the instruction as printed on the label
	Repeat bool   // a repeat (long-term) medicine rather than an acute course
}

// DMD returns the medicine's coding, false when it is text only.
func (m Medicine) DMD() (Code, bool) {
	if m.Code == "" {
		return Code{}, false
	}
	return Code{DMD, m.Code, m.Name}, true
}

// Medicines used by the generator, consistent with the condition each is
// prescribed for (NICE guidance: metformin first line in type 2 diabetes,
// a DOAC for AF, loop diuretic in heart failure with fluid overload, SABA
// reliever in asthma and COPD, an SSRI in depression, an acetylcholinesterase
// inhibitor in Alzheimer's disease, a calcium-channel blocker in
// hypertension).
var (
	Paracetamol500   = Medicine{"Paracetamol 500mg tablets", "322236009", "Take two tablets up to four times a day when required", false}
	Amlodipine5      = Medicine{"Amlodipine 5mg tablets", "319283006", "Take one tablet once a day", true}
	Furosemide40     = Medicine{"Furosemide 40mg tablets", "317972000", "Take one tablet each morning", true}
	Salbutamol100    = Medicine{"Salbutamol 100micrograms/dose inhaler CFC free", "39113611000001102", "Inhale two doses when required", true}
	Amoxicillin500   = Medicine{"Amoxicillin 500mg capsules", "39732411000001106", "Take one capsule three times a day for 5 days", false}
	Apixaban5        = Medicine{"Apixaban 5mg tablets", "42206511000001102", "Take one tablet twice a day", true}
	MorphineMR10     = Medicine{"Morphine 10mg modified-release capsules", "36126411000001107", "Take one capsule twice a day", true}
	Prednisolone5    = Medicine{"Prednisolone 5mg tablets", "42087311000001104", "Take six tablets once a day for 5 days", false}
	Metformin500     = Medicine{"Metformin 500mg tablets", "", "Take one tablet twice a day with food", true}
	Sertraline50     = Medicine{"Sertraline 50mg tablets", "", "Take one tablet once a day", true}
	Donepezil5       = Medicine{"Donepezil 5mg tablets", "", "Take one tablet at night", true}
	Atorvastatin20   = Medicine{"Atorvastatin 20mg tablets", "", "Take one tablet at night", true}
	Bisoprolol2_5    = Medicine{"Bisoprolol 2.5mg tablets", "", "Take one tablet once a day", true}
	InsulinGlargine  = Medicine{"Insulin glargine 100units/ml solution for injection 3ml pre-filled pens", "", "Inject as directed once a day", true}
	Olanzapine10     = Medicine{"Olanzapine 10mg tablets", "", "Take one tablet at night", true}
	Nitrofurantoin50 = Medicine{"Nitrofurantoin 50mg capsules", "", "Take one capsule four times a day for 3 days", false}
)

// Lab is one laboratory or vital-sign observation: LOINC code, UCUM unit,
// the adult reference range (zero Low and High when none is reported) and
// the range the generator draws values from.
type Lab struct {
	Code       Code
	Unit       string // UCUM code
	UnitText   string // the unit as printed
	Low, High  float64
	Min, Max   float64 // drawn values
	Decimals   int
	VitalSigns bool // category vital-signs rather than laboratory
}

// LOINC returns a LOINC code.
func LOINCCode(code, display string) Code { return Code{LOINC, code, display} }

// Labs and vital signs.
var (
	SystolicBP   = LOINCCode("8480-6", "Systolic blood pressure")
	DiastolicBP  = LOINCCode("8462-4", "Diastolic blood pressure")
	BPPanel      = LOINCCode("85354-9", "Blood pressure panel with all children optional")
	HeartRate    = Lab{LOINCCode("8867-4", "Heart rate"), "/min", "beats/minute", 60, 100, 52, 118, 0, true}
	RespRate     = Lab{LOINCCode("9279-1", "Respiratory rate"), "/min", "breaths/minute", 12, 20, 11, 28, 0, true}
	Temperature  = Lab{LOINCCode("8310-5", "Body temperature"), "Cel", "°C", 36.1, 37.8, 35.8, 39.2, 1, true}
	SpO2         = Lab{LOINCCode("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"), "%", "%", 94, 100, 88, 100, 0, true}
	BodyWeight   = Lab{LOINCCode("29463-7", "Body weight"), "kg", "kg", 0, 0, 48, 120, 1, true}
	BodyHeight   = Lab{LOINCCode("8302-2", "Body height"), "cm", "cm", 0, 0, 150, 195, 0, true}
	HbA1c        = Lab{LOINCCode("59261-8", "Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol"), "mmol/mol", "mmol/mol", 20, 41, 36, 95, 0, false}
	Haemoglobin  = Lab{LOINCCode("718-7", "Hemoglobin [Mass/volume] in Blood"), "g/L", "g/L", 115, 165, 92, 170, 0, false}
	Sodium       = Lab{LOINCCode("2951-2", "Sodium [Moles/volume] in Serum or Plasma"), "mmol/L", "mmol/L", 133, 146, 128, 147, 0, false}
	Potassium    = Lab{LOINCCode("2823-3", "Potassium [Moles/volume] in Serum or Plasma"), "mmol/L", "mmol/L", 3.5, 5.3, 3.1, 5.9, 1, false}
	Creatinine   = Lab{LOINCCode("14682-9", "Creatinine [Moles/volume] in Serum or Plasma"), "umol/L", "µmol/L", 59, 104, 45, 190, 0, false}
	CRP          = Lab{LOINCCode("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma"), "mg/L", "mg/L", 0, 5, 1, 180, 0, false}
	Cholesterol  = Lab{LOINCCode("14647-2", "Cholesterol [Moles/volume] in Serum or Plasma"), "mmol/L", "mmol/L", 0, 5, 3.2, 7.8, 1, false}
	NTproBNP     = Lab{LOINCCode("33762-6", "Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in Serum or Plasma"), "pg/mL", "pg/mL", 0, 400, 150, 6000, 0, false}
	SystolicLab  = Lab{SystolicBP, "mm[Hg]", "mmHg", 90, 140, 98, 178, 0, true}
	DiastolicLab = Lab{DiastolicBP, "mm[Hg]", "mmHg", 60, 90, 58, 104, 0, true}
)

// Security labels (meta.security), the vocabulary issue 6's access rules act on.
var (
	LabelPSY        = Code{ActCode, "PSY", "psychiatry disorder information sensitivity"}
	LabelSEX        = Code{ActCode, "SEX", "sexuality and reproductive health information sensitivity"}
	LabelSTD        = Code{ActCode, "STD", "sexually transmitted disease information sensitivity"}
	LabelHIV        = Code{ActCode, "HIV", "HIV/AIDS information sensitivity"}
	LabelETH        = Code{ActCode, "ETH", "substance abuse information sensitivity"}
	LabelSDV        = Code{ActCode, "SDV", "sexual assault, abuse, or domestic violence information sensitivity"}
	LabelRestricted = Code{Confidentiality, "R", "restricted"}
	LabelVeryRestr  = Code{Confidentiality, "V", "very restricted"}
)

// Encounter classes (v3 ActCode, the R4 Encounter.class binding).
var (
	ClassAmbulatory = Code{ActCode, "AMB", "ambulatory"}
	ClassEmergency  = Code{ActCode, "EMER", "emergency"}
	ClassInpatient  = Code{ActCode, "IMP", "inpatient encounter"}
	ClassHomeHealth = Code{ActCode, "HH", "home health"}
	ClassNonAcute   = Code{ActCode, "NONAC", "inpatient non-acute"}
	ClassField      = Code{ActCode, "FLD", "field"}
)

// Discharge dispositions (HL7 discharge-disposition).
var (
	DischargeHome    = Code{DischargeDisp, "home", "Home"}
	DischargeHospice = Code{DischargeDisp, "hosp", "Hospice"}
	DischargeLong    = Code{DischargeDisp, "long", "Long-term care"}
	DischargeExpired = Code{DischargeDisp, "exp", "Expired"}
)
