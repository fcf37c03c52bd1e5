package synth

import (
	"fmt"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/synth/codes"
)

// NS is the namespace of sharedcare's own code and identifier systems.
const NS = "https://fhir.sharedcare.dev"

// OrgTypeSystem is the code system of Organization.type in the region; the
// codes are the Kind values.
const OrgTypeSystem = NS + "/CodeSystem/organisation-type"

// RoleSystem is the code system of PractitionerRole.code in the region.
const RoleSystem = NS + "/CodeSystem/practitioner-role"

// Kind is the type of an organisation.
type Kind string

// The organisation types of the region (issue 3 item 1).
const (
	GPPractice        Kind = "gp-practice"
	AcuteTrust        Kind = "acute-trust"
	MentalHealthTrust Kind = "mental-health-trust"
	CommunityTrust    Kind = "community-trust"
	AmbulanceTrust    Kind = "ambulance-trust"
	NursingHome       Kind = "nursing-home"
	ResidentialHome   Kind = "residential-care-home"
	SocialCare        Kind = "local-authority-adult-social-care"
	Hospice           Kind = "hospice"
	Pharmacy          Kind = "community-pharmacy"
)

// Kinds lists every organisation type, in the order organisations are built.
var Kinds = []Kind{GPPractice, AcuteTrust, MentalHealthTrust, CommunityTrust, AmbulanceTrust,
	NursingHome, ResidentialHome, SocialCare, Hospice, Pharmacy}

var kindDisplay = map[Kind]string{
	GPPractice:        "GP practice",
	AcuteTrust:        "Acute hospital trust",
	MentalHealthTrust: "Mental health trust",
	CommunityTrust:    "Community health services trust",
	AmbulanceTrust:    "Ambulance service trust",
	NursingHome:       "Care home with nursing",
	ResidentialHome:   "Residential care home",
	SocialCare:        "Local authority adult social care",
	Hospice:           "Hospice",
	Pharmacy:          "Community pharmacy",
}

// Role is a staff role.
type Role string

// The staff roles of the region.
const (
	RoleGP           Role = "gp"
	RolePracticeNurs Role = "practice-nurse"
	RoleConsultant   Role = "consultant"
	RoleNurse        Role = "nurse"
	RoleDistrictNurs Role = "district-nurse"
	RoleParamedic    Role = "paramedic"
	RoleSocialWorker Role = "social-worker"
	RoleCareWorker   Role = "care-worker"
	RolePharmacist   Role = "pharmacist"
	RoleAdminClerk   Role = "admin-clerk"
)

var roleDisplay = map[Role]string{
	RoleGP:           "General practitioner",
	RolePracticeNurs: "Practice nurse",
	RoleConsultant:   "Consultant",
	RoleNurse:        "Registered nurse",
	RoleDistrictNurs: "District nurse",
	RoleParamedic:    "Paramedic",
	RoleSocialWorker: "Social worker",
	RoleCareWorker:   "Care worker",
	RolePharmacist:   "Pharmacist",
	RoleAdminClerk:   "Admin clerk",
}

// Staff is one practitioner working in one role at one organisation.
type Staff struct {
	ID     string // Practitioner id (the PractitionerRole id adds "-role")
	Role   Role
	Given  string
	Family string
	Reg    codes.Code // professional registration: System and Code (the number); empty for none
}

// Site is one Location of an organisation (a hospital site, the premises).
type Site struct {
	ID   string // Location id, also its ODS site code
	Name string
	Addr Address
}

// Org is one organisation of the region.
type Org struct {
	Index int
	ODS   string // ODS-style organisation code; also the Organization id and folder name
	Kind  Kind
	Name  string
	Addr  Address
	Phone string
	Sites []Site
	Staff []Staff
	Beds  int // care homes: the number of places
}

// Region is the set of organisations for a population.
type Region struct {
	Orgs   []*Org
	byKind map[Kind][]*Org
}

// Of returns the organisations of kind k.
func (r *Region) Of(k Kind) []*Org { return r.byKind[k] }

// one returns the single organisation of kind k (acute, ambulance, ...).
func (r *Region) one(k Kind) *Org { return r.byKind[k][0] }

// count is how many organisations of a kind a population of n people has:
// GP practices about one per 8,000 registered patients (NHS Digital,
// Patients Registered at a GP Practice: about 62 million patients in about
// 6,300 practices, 2024); community pharmacies about one per 5,000 people
// (NHSBSA/General Pharmaceutical Services, about 11,400 pharmacies for 57
// million people in England); care homes about one per 12,000 people
// (CQC, about 14,800 care homes in England, roughly two residential for
// each nursing home by count). One of each of the other kinds serves the
// whole region.
func count(k Kind, n int) int {
	per := map[Kind]int{GPPractice: 8000, Pharmacy: 5000, NursingHome: 18000, ResidentialHome: 10000}[k]
	if per == 0 {
		return 1
	}
	c := (n + per/2) / per
	if c < 1 {
		c = 1
	}
	return c
}

// NewRegion builds the organisations for n people. The region depends on n
// and the seed only.
func NewRegion(n int, seed uint64) *Region {
	r := &Region{byKind: map[Kind][]*Org{}}
	rng := newRand(seed, 1<<62)
	for _, k := range Kinds {
		for i := 0; i < count(k, n); i++ {
			o := &Org{Index: len(r.Orgs), Kind: k}
			o.ODS, o.Name = orgCode(k, i), orgName(k, i)
			o.Addr = randomAddress(rng)
			o.Phone = landline(rng)
			r.Orgs = append(r.Orgs, o)
			r.byKind[k] = append(r.byKind[k], o)
			switch k {
			case AcuteTrust:
				for s, name := range []string{"Severn Vale General Hospital", "Kingsmead Community Hospital", "St Aldhelm's Hospital"} {
					o.Sites = append(o.Sites, Site{ID: fmt.Sprintf("%s%02d", o.ODS, s+1), Name: name, Addr: randomAddress(rng)})
				}
			case NursingHome, ResidentialHome:
				o.Beds = 30 + rng.IntN(40)
				o.Sites = []Site{{ID: o.ODS + "01", Name: o.Name, Addr: o.Addr}}
			default:
				o.Sites = []Site{{ID: o.ODS + "01", Name: o.Name, Addr: o.Addr}}
			}
			o.Staff = staffFor(rng, o)
		}
	}
	return r
}

// orgCode gives ODS-style codes in a range no real organisation uses
// (synthetic codes, so the data can never be mistaken for a real
// organisation's): GP practices a letter and five digits, trusts three
// characters starting with R, care homes and pharmacies five characters
// starting with V and F, the local authority and the hospice three.
func orgCode(k Kind, i int) string {
	switch k {
	case GPPractice:
		return fmt.Sprintf("Z9%04d", i+1)
	case AcuteTrust:
		return "RZ9"
	case MentalHealthTrust:
		return "RZ8"
	case CommunityTrust:
		return "RZ7"
	case AmbulanceTrust:
		return "RZ6"
	case NursingHome:
		return fmt.Sprintf("VZN%02d", i+1)
	case ResidentialHome:
		return fmt.Sprintf("VZR%02d", i+1)
	case SocialCare:
		return "Z9A"
	case Hospice:
		return "NZ9"
	case Pharmacy:
		return fmt.Sprintf("FZ9%02d", i+1)
	}
	panic("synth: unknown kind " + string(k))
}

func orgName(k Kind, i int) string {
	pick := func(list []string) string {
		s := list[i%len(list)]
		if i >= len(list) {
			s += fmt.Sprintf(" %d", i/len(list)+1)
		}
		return s
	}
	switch k {
	case GPPractice:
		return pick(surgeryNames)
	case AcuteTrust:
		return "Severn Vale Hospitals NHS Foundation Trust"
	case MentalHealthTrust:
		return "Severn Vale Mental Health NHS Trust"
	case CommunityTrust:
		return "Severn Vale Community Health NHS Trust"
	case AmbulanceTrust:
		return "Western Counties Ambulance Service NHS Trust"
	case NursingHome:
		return pick(homeNames) + " Nursing Home"
	case ResidentialHome:
		return pick(homeNames[len(homeNames)/2:]) + " Residential Home"
	case SocialCare:
		return "Severn Vale Council Adult Social Care"
	case Hospice:
		return "St Brigid's Hospice"
	case Pharmacy:
		return pick(pharmacyNames)
	}
	return ""
}

var surgeryNames = []string{"Riverside Surgery", "The Old Mill Medical Centre", "Castle Street Practice",
	"Kingsmead Health Centre", "Abbey Road Surgery", "Westfield Medical Practice", "Orchard Lane Surgery",
	"Priory Medical Group", "Stonebridge Surgery", "Hillview Family Practice", "Marketplace Surgery", "Elm Tree Medical Centre"}

var homeNames = []string{"Beechwood", "Meadowbank", "Rosewood", "The Laurels", "Oakleigh", "Willow Court",
	"Cedar House", "Hawthorn Lodge", "Brookside", "Fairhaven", "Ashgrove", "Lavender House"}

var pharmacyNames = []string{"Vale Pharmacy", "High Street Chemist", "Kingsmead Pharmacy", "Abbey Pharmacy",
	"Riverside Chemist", "Market Square Pharmacy", "Westfield Pharmacy", "Orchard Pharmacy", "Bridge Pharmacy",
	"Castle Pharmacy"}

// staffFor builds the staff of an organisation: enough people in each role
// for records to name a plausible author, not a workforce model.
func staffFor(rng *Rand, o *Org) []Staff {
	var plan []struct {
		r Role
		n int
	}
	add := func(r Role, n int) {
		plan = append(plan, struct {
			r Role
			n int
		}{r, n})
	}
	switch o.Kind {
	case GPPractice:
		add(RoleGP, 4)
		add(RolePracticeNurs, 2)
		add(RoleAdminClerk, 1)
	case AcuteTrust:
		add(RoleConsultant, 12)
		add(RoleNurse, 6)
		add(RoleAdminClerk, 2)
	case MentalHealthTrust:
		add(RoleConsultant, 3)
		add(RoleNurse, 3)
		add(RoleAdminClerk, 1)
	case CommunityTrust:
		add(RoleDistrictNurs, 5)
		add(RoleAdminClerk, 1)
	case AmbulanceTrust:
		add(RoleParamedic, 8)
	case NursingHome:
		add(RoleNurse, 2)
		add(RoleCareWorker, 3)
	case ResidentialHome:
		add(RoleCareWorker, 3)
	case SocialCare:
		add(RoleSocialWorker, 5)
		add(RoleAdminClerk, 1)
	case Hospice:
		add(RoleConsultant, 2)
		add(RoleNurse, 3)
	case Pharmacy:
		add(RolePharmacist, 1)
	}
	var out []Staff
	for _, p := range plan {
		for i := 0; i < p.n; i++ {
			female := rng.IntN(2) == 0
			s := Staff{ID: fmt.Sprintf("%s-pr-%d", o.ODS, len(out)+1), Role: p.r, Given: givenName(rng, female, 1975), Family: familyName(rng)}
			switch p.r {
			case RoleGP, RoleConsultant:
				s.Reg = codes.Code{System: codes.GMC, Code: fmt.Sprintf("%07d", 1000000+rng.IntN(8999999))}
			case RolePracticeNurs, RoleNurse, RoleDistrictNurs:
				s.Reg = codes.Code{System: codes.NMC, Code: fmt.Sprintf("%02d%c%04d%c", rng.IntN(100), 'A'+rune(rng.IntN(26)), rng.IntN(10000), 'A'+rune(rng.IntN(26)))}
			case RoleParamedic:
				s.Reg = codes.Code{System: codes.HCPC, Code: fmt.Sprintf("PA%05d", rng.IntN(100000))}
			case RoleSocialWorker:
				s.Reg = codes.Code{System: NS + "/Id/social-work-england", Code: fmt.Sprintf("SW%06d", rng.IntN(1000000))}
			case RolePharmacist:
				s.Reg = codes.Code{System: NS + "/Id/gphc-number", Code: fmt.Sprintf("2%06d", rng.IntN(1000000))}
			}
			out = append(out, s)
		}
	}
	return out
}

// staffIn returns a member of o's staff in role r (the first role present
// otherwise), chosen by rng.
func (o *Org) staffIn(rng *Rand, roles ...Role) *Staff {
	for _, r := range roles {
		var idx []int
		for i := range o.Staff {
			if o.Staff[i].Role == r {
				idx = append(idx, i)
			}
		}
		if len(idx) > 0 {
			return &o.Staff[idx[rng.IntN(len(idx))]]
		}
	}
	return &o.Staff[0]
}

// orgRef is a reference to an organisation from outside its own folder: by
// ODS code (logical reference), so that each folder loads on its own.
func orgRef(o *Org) fhir.Object {
	return fhir.Object{"type": "Organization", "identifier": fhir.Object{"system": codes.ODS, "value": o.ODS}, "display": o.Name}
}

// localOrgRef is a reference to the organisation from inside its own folder.
func localOrgRef(o *Org) fhir.Object {
	return fhir.Object{"reference": "Organization/" + o.ODS, "display": o.Name}
}

// orgResources are the resources describing o that go into its own folder:
// the Organization, its Locations, Practitioners and PractitionerRoles.
func orgResources(o *Org) []fhir.Object {
	out := []fhir.Object{{
		"resourceType": "Organization",
		"id":           o.ODS,
		"identifier":   []any{fhir.Object{"system": codes.ODS, "value": o.ODS}},
		"active":       true,
		"type":         []any{fhir.Object{"coding": []any{fhir.Object{"system": OrgTypeSystem, "code": string(o.Kind), "display": kindDisplay[o.Kind]}}}},
		"name":         o.Name,
		"telecom":      []any{fhir.Object{"system": "phone", "value": o.Phone, "use": "work"}},
		"address":      []any{o.Addr.fhir("work")},
	}}
	for _, s := range o.Sites {
		loc := fhir.Object{
			"resourceType":         "Location",
			"id":                   s.ID,
			"identifier":           []any{fhir.Object{"system": codes.ODSSite, "value": s.ID}},
			"status":               "active",
			"name":                 s.Name,
			"mode":                 "instance",
			"address":              s.Addr.fhir("work"),
			"managingOrganization": localOrgRef(o),
		}
		if o.Beds > 0 {
			loc["description"] = fmt.Sprintf("%d places", o.Beds)
		}
		out = append(out, loc)
	}
	for _, s := range o.Staff {
		p := fhir.Object{
			"resourceType": "Practitioner",
			"id":           s.ID,
			"active":       true,
			"name":         []any{fhir.Object{"use": "official", "family": s.Family, "given": []any{s.Given}}},
		}
		if s.Role == RoleGP || s.Role == RoleConsultant {
			p["name"].([]any)[0].(fhir.Object)["prefix"] = []any{"Dr"}
		}
		if s.Reg.Code != "" {
			p["identifier"] = []any{fhir.Object{"system": s.Reg.System, "value": s.Reg.Code}}
		}
		out = append(out, p, fhir.Object{
			"resourceType": "PractitionerRole",
			"id":           s.ID + "-role",
			"active":       true,
			"practitioner": fhir.Object{"reference": "Practitioner/" + s.ID, "display": s.Given + " " + s.Family},
			"organization": localOrgRef(o),
			"code":         []any{fhir.Object{"coding": []any{fhir.Object{"system": RoleSystem, "code": string(s.Role), "display": roleDisplay[s.Role]}}}},
			"location":     []any{fhir.Object{"reference": "Location/" + o.Sites[0].ID}},
		})
	}
	return out
}

// staffRef references a practitioner inside the organisation's own folder.
func staffRef(s *Staff) fhir.Object {
	return fhir.Object{"reference": "Practitioner/" + s.ID, "display": s.Given + " " + s.Family}
}
