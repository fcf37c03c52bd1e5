package access_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sharedcare/sharedcare/internal/access"
	"github.com/sharedcare/sharedcare/internal/access/accesstest"
	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/policy"
)

// ruleCase exercises one rule of the policy: caller may (or may not) read
// the resource, after the setup.
type ruleCase struct {
	rule   string
	caller string
	setup  string        // "", "break-glass dave", "self-claim dave", "break-glass bob"
	after  time.Duration // clock moved forward after the setup
	ref    string
	allow  bool
	// writeFor, when set, makes the case a create of a resource of ref's
	// type in this Patient's record instead of a read of ref.
	writeFor string
}

var ruleCases = []ruleCase{
	{"role clinician", "gp-clinician", "", 0, "Flag/alice-dv", true, ""},
	{"role clinician", "gp-clinician", "", 0, "Condition/dave-cond", false, ""},
	{"role nurse", "gp-nurse", "", 0, "Condition/alice-psy", true, ""},
	{"role nurse", "gp-nurse", "", 0, "Flag/alice-dv", false, ""},
	{"role paramedic", "paramedic", "break-glass dave", 0, "Condition/dave-cond", true, ""},
	{"role paramedic", "paramedic", "break-glass dave", 0, "Flag/dave-dv", false, ""},
	{"role social-worker", "social-worker", "", 0, "CarePlan/erin-vzn-plan", true, ""},
	{"role social-worker", "social-worker", "", 0, "MedicationRequest/erin-med", false, ""},
	{"role care-worker", "care-worker", "", 0, "MedicationRequest/erin-med", true, ""},
	{"role care-worker", "care-worker", "", 0, "Encounter/erin-vzn-enc", false, ""},
	{"role pharmacist", "pharmacist", "", 0, "MedicationRequest/alice-med", true, ""},
	{"role pharmacist", "pharmacist", "", 0, "Appointment/alice-appt", false, ""},
	{"role admin-clerk", "gp-clerk", "", 0, "Patient/alice", true, ""},
	{"role admin-clerk", "gp-clerk", "", 0, "Condition/alice-cond", false, ""},
	{"role privacy-officer", "gp-privacy", "", 0, "Consent/bob-objection", true, ""},
	{"role privacy-officer", "gp-privacy", "", 0, "Condition/bob-cond", false, ""},
	{"role system", "acute-system", "", 0, "Condition/alice-rz9-hiv", true, ""},
	{"role system", "acute-system", "", 0, "Flag/alice-dv", false, ""},
	{"role patient", "alice", "", 0, "Condition/alice-rz9-hiv", true, ""},
	{"role patient", "alice", "", 0, "Flag/alice-dv", false, ""},

	{"share gp-to-care", "acute-clinician", "", 0, "Condition/alice-psy", true, ""},
	{"share gp-to-care", "acute-clinician", "", 0, "Condition/alice-sdv", false, ""},
	{"share gp-to-homes", "care-worker", "", 0, "MedicationRequest/erin-med", true, ""},
	{"share gp-to-homes", "care-worker", "", 0, "Observation/erin-obs", false, ""},
	{"share gp-to-pharmacy", "pharmacist", "", 0, "Condition/alice-cond", true, ""},
	{"share gp-to-pharmacy", "pharmacist", "", 0, "Observation/alice-obs", false, ""},
	{"share trusts-to-care", "gp-clinician", "", 0, "Observation/alice-rz9-obs", true, ""},
	{"share trusts-to-care", "gp-clinician", "", 0, "Condition/alice-rz9-sdv", false, ""},
	{"share trusts-to-homes", "care-worker", "", 0, "MedicationRequest/erin-rz9-med", true, ""},
	{"share trusts-to-homes", "care-worker", "", 0, "Observation/erin-rz9-obs", false, ""},
	{"share mental-health", "gp-clinician", "", 0, "Condition/alice-rz8-psy", true, ""},
	{"share mental-health", "gp-clinician", "", 0, "Condition/alice-rz8-eth", false, ""},
	{"share social-to-health", "gp-clinician", "", 0, "CarePlan/erin-vzn-plan", true, ""},
	{"share social-to-health", "gp-clinician", "", 0, "Encounter/erin-vzn-enc", false, ""},
	{"share social-to-social", "social-worker", "", 0, "Patient/erin-vzn", true, ""},
	{"share social-to-social", "social-worker", "", 0, "Encounter/erin-vzn-enc", false, ""},
	{"share consent-everywhere", "acute-clinician", "", 0, "Consent/consent-rp-meds", true, ""},
	{"share consent-everywhere", "acute-clinician", "", 0, "Consent/bob-objection", false, ""},

	{"consent by-gp", "gp-clinician", "", 0, "Consent/new", true, "alice"},
	{"consent by-gp", "acute-clinician", "", 0, "Consent/new", false, "alice-rz9"},

	{"proxy appointments", "proxy-appt", "", 0, "Appointment/alice-appt", true, ""},
	{"proxy appointments", "proxy-appt", "", 0, "MedicationRequest/alice-med", false, ""},
	{"proxy medicines", "proxy-meds", "", 0, "MedicationRequest/alice-med", true, ""},
	{"proxy medicines", "proxy-meds", "", 0, "Observation/alice-obs", false, ""},
	{"proxy summary", "proxy-summary", "", 0, "Condition/alice-cond", true, ""},
	{"proxy summary", "proxy-summary", "", 0, "Observation/alice-obs", false, ""},
	{"proxy full", "proxy-full", "", 0, "Observation/alice-rz9-obs", true, ""},
	{"proxy full", "proxy-full", "", 0, "Condition/alice-psy", false, ""},

	{"setting relationship-grace", "acute-clinician", "", 0, "Observation/gina-rz9-obs", true, ""},
	{"setting relationship-grace", "acute-clinician", "", 0, "Observation/frank-rz9-obs", false, ""},
	{"setting break-glass-duration", "paramedic", "break-glass dave", 3 * time.Hour, "Condition/dave-cond", true, ""},
	{"setting break-glass-duration", "paramedic", "break-glass dave", 5 * time.Hour, "Condition/dave-cond", false, ""},
	{"setting self-claim-duration", "mh-clinician", "self-claim dave", 23 * time.Hour, "Condition/dave-cond", true, ""},
	{"setting self-claim-duration", "mh-clinician", "self-claim dave", 25 * time.Hour, "Condition/dave-cond", false, ""},
}

// TestEveryRuleHasAnAllowAndADenyCase holds the policy file and its tests
// together: a rule added without both tests fails here.
func TestEveryRuleHasAnAllowAndADenyCase(t *testing.T) {
	pol, err := access.ParsePolicy(policy.Text)
	if err != nil {
		t.Fatal(err)
	}
	for _, rule := range pol.Rules {
		var allow, deny bool
		for _, c := range ruleCases {
			if c.rule == rule {
				allow = allow || c.allow
				deny = deny || !c.allow
			}
		}
		if !allow || !deny {
			t.Errorf("rule %q: allow test %v, deny test %v; want both", rule, allow, deny)
		}
	}
	for _, c := range ruleCases {
		if !slices.Contains(pol.Rules, c.rule) {
			t.Errorf("test names rule %q, which the policy does not have", c.rule)
		}
	}
}

// TestPolicyRules runs each rule's allow and deny case on every backend.
func TestPolicyRules(t *testing.T) {
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			now := time.Now()
			eng := engine.New(st, engine.Config{BaseURL: "http://127.0.0.1/fhir"})
			accesstest.Load(t, eng, now)
			pol, err := access.ParsePolicy(policy.Text)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range ruleCases {
				name := c.rule + "/" + c.caller + "/" + c.ref
				if c.setup != "" {
					name += "/" + c.setup
				}
				t.Run(name, func(t *testing.T) {
					dec := access.New(st, pol) // a fresh decider: claims of other cases do not carry over
					clock := now
					dec.SetClock(func() time.Time { return clock })
					ctx := context.Background()
					p := accesstest.Callers[c.caller]
					caller, err := access.CallerOf(&p)
					if err != nil {
						t.Fatal(err)
					}
					if c.setup != "" {
						kind, who, _ := strings.Cut(c.setup, " ")
						// Claims are per user: a unique user per case keeps them apart.
						caller.User += "-" + strings.ReplaceAll(name, "/", "_")
						if kind == "break-glass" {
							_, err = dec.BreakGlass(ctx, caller, who, "ETREAT", "unconscious, no history available", nil)
						} else {
							_, err = dec.SelfClaim(ctx, caller, who, "TREAT", "walk-in clinic", nil)
						}
						if err != nil {
							t.Fatal(err)
						}
					}
					clock = now.Add(c.after)
					dec.SetClock(func() time.Time { return clock })
					typ, id, _ := strings.Cut(c.ref, "/")
					if c.writeFor != "" {
						err := dec.CheckWrite(ctx, caller, access.OpCreate, typ, []string{c.writeFor}, false)
						if got := err == nil; got != c.allow {
							t.Errorf("%s creates a %s for %s: allowed %v (%v), want %v", c.caller, typ, c.writeFor, got, err, c.allow)
						}
						return
					}
					f, err := dec.Filter(ctx, caller, access.OpRead)
					if err != nil {
						t.Fatal(err)
					}
					res, err := st.Search(ctx, &store.Query{Types: []string{typ}, Clauses: []store.Clause{{{Kind: store.CondID, Code: id}}}, Filter: f})
					if err != nil {
						t.Fatal(err)
					}
					if got := len(res.Versions) == 1; got != c.allow {
						t.Errorf("%s reads %s: allowed %v, want %v", c.caller, c.ref, got, c.allow)
					}
				})
			}
		})
	}
}

// TestPolicyRefusesMistakes: a typo in the policy stops the server rather
// than silently changing who sees what.
func TestPolicyRefusesMistakes(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"unknown category in a role", "category a Patient\nrole x read b\n", `unknown category "b"`},
		{"unknown label", "category a Patient\nrole x read a labels Q\n", `unknown label "Q"`},
		{"V in an agreement", "category a Patient\nshare s from x to y categories a purpose direct-care labels V\n", "never leave"},
		{"unknown rule kind", "allow everyone\n", "unknown rule kind"},
		{"bad duration", "setting relationship-grace soon\n", "not a positive duration"},
		{"missing settings", "category a Patient\nrole patient read a\nrole system read a\n", "settings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := access.ParsePolicy(tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestDocsShowThePolicy: docs/ACCESS.md quotes the policy the server
// enforces, word for word, so the page an information-governance lead
// reviews cannot drift from the rules.
func TestDocsShowThePolicy(t *testing.T) {
	doc, err := os.ReadFile("../../docs/ACCESS.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```\n"+policy.Text+"```") {
		t.Error("docs/ACCESS.md does not end with the current policy/sharedcare.policy; copy it in")
	}
}
