package access

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Systems and URIs the access model reads in the data.
const (
	// ODSSystem identifies organisations by ODS code.
	ODSSystem = "https://fhir.nhs.uk/Id/ods-organization-code"
	// OrgTypeSystem codes Organization.type (docs/DATA.md).
	OrgTypeSystem = "https://fhir.sharedcare.dev/CodeSystem/organisation-type"
	// SourcePrefix + ODS code is the meta.source every write is stamped
	// with: the organisation that holds the record (store.Grant.Sources).
	SourcePrefix = "https://sharedcare.example/ods/"
	// ConsentKindSystem codes Consent.category: objection, withhold, proxy.
	ConsentKindSystem = "https://fhir.sharedcare.dev/CodeSystem/consent-kind"
	// CategorySystem codes a data category of the policy in
	// Consent.provision.class (withholding a category).
	CategorySystem = "https://fhir.sharedcare.dev/CodeSystem/data-category"
	// ProxyLevelSystem codes a proxy's level in Consent.provision.class.
	ProxyLevelSystem = "https://fhir.sharedcare.dev/CodeSystem/proxy-level"
)

// PersonSource is the meta.source of what a person writes themselves (their
// Consent): it belongs to no organisation.
const PersonSource = "https://sharedcare.example/person"

// Source returns the meta.source of the organisation with ODS code ods.
func Source(ods string) string { return SourcePrefix + ods }

// facts is what the access model reads from the data, taken at one store
// write sequence: organisations and their types, consents, proxies and
// (lazily, per organisation) care relationships.
type facts struct {
	seq        int64
	taken      time.Time
	gen        int64               // Decider.gen when the sequence was last checked
	checked    time.Time           // when it was
	orgType    map[string]string   // ODS -> organisation type
	orgsByType map[string][]string // type -> ODS codes
	consents   map[string]*consentRules
	proxies    map[string][]proxyGrant  // RelatedPerson id -> grants
	related    map[string][]string      // ODS -> Patient ids (with linked records)
	filters    map[string]*compiled     // caller and interaction -> filter
	compiling  map[string]chan struct{} // filters being compiled, closed when done
}

// consentRules are the restrictions one person set (on every Patient id
// linked to them).
type consentRules struct {
	objection  bool
	categories []string // withheld categories
	orgs       []string // ODS codes whose data is withheld
}

func (c *consentRules) key() string {
	if c.objection {
		return "objection"
	}
	return "withhold:" + strings.Join(c.categories, ",") + "|" + strings.Join(c.orgs, ",")
}

type proxyGrant struct {
	patients []string
	level    string
}

// relevantTypes are the resource types the facts are read from: a write of
// any other type leaves them valid.
var relevantTypes = map[string]bool{"Organization": true, "Patient": true, "Encounter": true, "EpisodeOfCare": true, "ServiceRequest": true, "Consent": true}

// searchAll runs q to the end and returns every match.
func searchAll(ctx context.Context, st store.Store, q *store.Query) ([]*store.Version, error) {
	q.Count = 1000
	var out []*store.Version
	for {
		res, err := st.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, res.Versions...)
		if res.Next == "" {
			return out, nil
		}
		q.Cursor = res.Next
	}
}

func refCond(param, typ, id string) store.Cond {
	return store.Cond{Kind: store.CondReference, Param: param, RefType: typ, RefID: id}
}

func tokenCond(param, system, code string) store.Cond {
	return store.Cond{Kind: store.CondToken, Param: param, System: system, Code: code}
}

// loadFacts reads organisations, consents and proxies.
func loadFacts(ctx context.Context, st store.Store, seq int64, now time.Time) (*facts, error) {
	f := &facts{seq: seq, taken: now, orgType: map[string]string{}, orgsByType: map[string][]string{},
		consents: map[string]*consentRules{}, proxies: map[string][]proxyGrant{}, related: map[string][]string{}, filters: map[string]*compiled{},
		compiling: map[string]chan struct{}{}}
	orgs, err := searchAll(ctx, st, &store.Query{Types: []string{"Organization"}})
	if err != nil {
		return nil, err
	}
	for _, v := range orgs {
		o, err := fhir.ParseObject(v.Body, 64)
		if err != nil {
			continue
		}
		ods, typ := "", ""
		for _, id := range arr(o["identifier"]) {
			if str(id, "system") == ODSSystem {
				ods = str(id, "value")
			}
		}
		for _, cc := range arr(o["type"]) {
			for _, c := range arr(obj(cc)["coding"]) {
				if str(c, "system") == OrgTypeSystem {
					typ = str(c, "code")
				}
			}
		}
		if ods != "" && typ != "" {
			f.orgType[ods] = typ
			f.orgsByType[typ] = append(f.orgsByType[typ], ods)
		}
	}
	for _, l := range f.orgsByType {
		slices.Sort(l)
	}

	cons, err := searchAll(ctx, st, &store.Query{Types: []string{"Consent"}, Clauses: []store.Clause{{{Kind: store.CondToken, Param: "status", AnySystem: true, Code: "active"}}}})
	if err != nil {
		return nil, err
	}
	for _, v := range cons {
		c, err := fhir.ParseObject(v.Body, 64)
		if err != nil {
			continue
		}
		if err := f.addConsent(ctx, st, c, now); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// addConsent reads one active Consent: its kind (category coding of
// ConsentKindSystem), the person (patient), and the provision.
func (f *facts) addConsent(ctx context.Context, st store.Store, c fhir.Object, now time.Time) error {
	kind := ""
	for _, cc := range arr(c["category"]) {
		for _, cd := range arr(obj(cc)["coding"]) {
			if str(cd, "system") == ConsentKindSystem {
				kind = str(cd, "code")
			}
		}
	}
	patient := refID(obj(c["patient"]), "Patient")
	prov := obj(c["provision"])
	if kind == "" || patient == "" || prov == nil || !inPeriod(obj(prov["period"]), now) {
		return nil
	}
	ids, err := linked(ctx, st, []string{patient})
	if err != nil {
		return err
	}
	var classes []fhir.Object
	for _, cl := range arr(prov["class"]) {
		classes = append(classes, obj(cl))
	}
	switch kind {
	case "objection", "withhold":
		if str(prov, "type") != "deny" {
			return nil
		}
		for _, id := range ids {
			r := f.consents[id]
			if r == nil {
				r = &consentRules{}
				f.consents[id] = r
			}
			if kind == "objection" {
				r.objection = true
				continue
			}
			for _, cl := range classes {
				if str(cl, "system") == CategorySystem {
					r.categories = appendUnique(r.categories, str(cl, "code"))
				}
			}
			for _, a := range arr(prov["actor"]) {
				ref := obj(obj(a)["reference"])
				if ods := refID(ref, "Organization"); ods != "" {
					r.orgs = appendUnique(r.orgs, ods)
				} else if id := obj(ref["identifier"]); str(id, "system") == ODSSystem {
					r.orgs = appendUnique(r.orgs, str(id, "value"))
				}
			}
		}
	case "proxy":
		if str(prov, "type") != "permit" {
			return nil
		}
		level := ""
		for _, cl := range classes {
			if str(cl, "system") == ProxyLevelSystem {
				level = str(cl, "code")
			}
		}
		for _, a := range arr(prov["actor"]) {
			if rp := refID(obj(obj(a)["reference"]), "RelatedPerson"); rp != "" && level != "" {
				f.proxies[rp] = append(f.proxies[rp], proxyGrant{patients: ids, level: level})
			}
		}
	}
	return nil
}

// relatedTo returns the Patient ids the organisation ods has a care
// relationship with, read from the data: registered GP practice
// (Patient.generalPractitioner), an encounter (including care home
// residence) or episode of care (including care packages) it provides that
// is open or ended less than grace ago, and an active referral to it
// (ServiceRequest.performer). Each id comes with the ids linked to it by
// the master patient index (Patient.link), so the relationship covers the
// person's records at every organisation.
func relatedTo(ctx context.Context, st store.Store, ods string, now time.Time, grace time.Duration) ([]string, error) {
	cutoff := now.Add(-grace).UnixMilli()
	after := store.Clause{{Kind: store.CondDate, Param: "date", Prefix: store.PrefixGT, Lo: cutoff, Hi: cutoff}}
	notVoid := func() []store.Clause {
		return []store.Clause{
			{{Kind: store.CondToken, Param: "status", AnySystem: true, Code: "cancelled", Not: true}},
			{{Kind: store.CondToken, Param: "status", AnySystem: true, Code: "entered-in-error", Not: true}},
		}
	}
	byOrg := func(param string) store.Clause {
		return store.Clause{refCond(param, "Organization", ods), tokenCond(param+":identifier", ODSSystem, ods)}
	}
	queries := []struct {
		q     *store.Query
		field string
	}{
		{&store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{byOrg("general-practitioner")}}, ""},
		{&store.Query{Types: []string{"Encounter"}, Clauses: append([]store.Clause{byOrg("service-provider"), after}, notVoid()...)}, "subject"},
		{&store.Query{Types: []string{"EpisodeOfCare"}, Clauses: append([]store.Clause{byOrg("organization"), after}, notVoid()...)}, "patient"},
		{&store.Query{Types: []string{"ServiceRequest"}, Clauses: []store.Clause{byOrg("performer"),
			{{Kind: store.CondToken, Param: "status", AnySystem: true, Code: "active"}, {Kind: store.CondToken, Param: "status", AnySystem: true, Code: "on-hold"}}}}, "subject"},
	}
	var ids []string
	for _, qq := range queries {
		vs, err := searchAll(ctx, st, qq.q)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			if qq.field == "" {
				ids = append(ids, v.ID)
				continue
			}
			r, err := fhir.ParseObject(v.Body, 64)
			if err != nil {
				continue
			}
			if id := refID(obj(r[qq.field]), "Patient"); id != "" {
				ids = append(ids, id)
			}
		}
	}
	return linked(ctx, st, ids)
}

// linked returns ids with every Patient id linked to one of them
// (Patient.link, in both directions, followed up to three steps: the index
// may link each record to one other), sorted and without duplicates.
func linked(ctx context.Context, st store.Store, ids []string) ([]string, error) {
	slices.Sort(ids)
	out := slices.Compact(slices.Clone(ids))
	frontier := out
	for step := 0; step < 3 && len(frontier) > 0; step++ {
		next, err := linkedOnce(ctx, st, frontier)
		if err != nil {
			return nil, err
		}
		frontier = without(next, out)
		out = mergeSorted(out, frontier)
	}
	return out, nil
}

// linkedOnce is one step of linked.
func linkedOnce(ctx context.Context, st store.Store, ids []string) ([]string, error) {
	out := slices.Clone(ids)
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		var byID, byLink store.Clause
		for _, id := range chunk {
			byID = append(byID, store.Cond{Kind: store.CondID, Code: id})
			byLink = append(byLink, refCond("link", "Patient", id))
		}
		res, err := st.Search(ctx, &store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{byID}, Count: len(chunk),
			Include: []store.Include{{SourceType: "Patient", Param: "link", TargetType: "Patient"}}, MaxIncluded: 100000})
		if err != nil {
			return nil, err
		}
		for _, v := range res.Included {
			out = append(out, v.ID)
		}
		back, err := searchAll(ctx, st, &store.Query{Types: []string{"Patient"}, Clauses: []store.Clause{byLink}})
		if err != nil {
			return nil, err
		}
		for _, v := range back {
			out = append(out, v.ID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// claim is a stored break-glass grant or self-claimed relationship.
type claim struct {
	User    string    `json:"user"`
	Org     string    `json:"org"`
	Role    string    `json:"role"`
	Patient string    `json:"patient"`
	Reason  string    `json:"reason"`
	Text    string    `json:"text,omitempty"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires"`
	Kind    string    `json:"kind"` // break-glass or self-claim
}

// Key-value buckets of the access model.
const (
	bucketBreakGlass = "access-break-glass" // key user|patient
	bucketSelfClaim  = "access-self-claim"  // key user|patient
	bucketAlerts     = "access-alerts"      // key patient|time|user
)

// claims returns the caller's unexpired claims of a bucket.
func claims(ctx context.Context, st store.Store, bucket, user string) ([]claim, error) {
	kvs, err := st.ListKV(ctx, bucket, user+"|")
	if err != nil {
		return nil, err
	}
	out := make([]claim, 0, len(kvs))
	for _, kv := range kvs {
		var c claim
		if json.Unmarshal(kv.Value, &c) == nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// JSON helpers over parsed resources.

func obj(v any) fhir.Object { o, _ := v.(map[string]any); return o }
func arr(v any) []any       { a, _ := v.([]any); return a }
func str(v any, k string) string {
	s, _ := obj(v)[k].(string)
	return s
}

// refID returns the id of a literal reference to typ ("typ/id", possibly
// absolute or versioned), else "".
func refID(ref fhir.Object, typ string) string {
	r := str(ref, "reference")
	i := strings.LastIndex(r, typ+"/")
	if i < 0 || (i > 0 && r[i-1] != '/') {
		return ""
	}
	id := r[i+len(typ)+1:]
	id, _, _ = strings.Cut(id, "/")
	return id
}

func inPeriod(p fhir.Object, now time.Time) bool {
	if s := str(p, "start"); s != "" {
		if t, err := parseDate(s); err == nil && now.Before(t) {
			return false
		}
	}
	if e := str(p, "end"); e != "" {
		if t, err := parseDate(e); err == nil && !now.Before(t) {
			return false
		}
	}
	return true
}

func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fhir.Invalid("", "bad date %q", s)
}

func appendUnique(l []string, s string) []string {
	if s == "" || slices.Contains(l, s) {
		return l
	}
	return append(l, s)
}
