package access

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Sensitivity labels the policy speaks of (meta.security). Confidentiality
// codes are HL7 v3 Confidentiality, the others v3 ActCode (docs/DATA.md).
const (
	ConfidentialitySystem = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	ActCodeSystem         = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
)

// AllLabels are every label the policy can allow; a label a role or an
// agreement does not allow is withheld.
var AllLabels = []string{"R", "V", "PSY", "SEX", "STD", "HIV", "ETH", "SDV"}

// Role is what a person working in one role may do.
type Role struct {
	Name       string
	Read       []string // categories
	Write      []string // categories
	Labels     []string // labels the role may see
	BreakGlass bool
	SelfClaim  bool
}

// Share is one information sharing agreement: organisations of the From
// types share Categories (carrying Labels) with organisations of the To
// types for Purpose.
type Share struct {
	Name       string
	From, To   []string // organisation types
	Categories []string
	Purpose    string
	Labels     []string
}

// Policy is the parsed policy text.
type Policy struct {
	Categories map[string][]string // category -> resource types
	Roles      map[string]*Role
	Shares     []*Share
	Proxy      map[string][]string // proxy level -> categories
	// ConsentBy are the organisation types whose staff may write a
	// person's Consent on their behalf (the person always may).
	ConsentBy []string

	RelationshipGrace  time.Duration
	BreakGlassDuration time.Duration
	SelfClaimDuration  time.Duration

	// Rules names every rule line ("role clinician", "share gp-to-care",
	// "proxy full", "setting relationship-grace"), in file order: the
	// policy tests check each has an allow and a deny case.
	Rules []string
}

// ParsePolicy reads the policy text (see policy/sharedcare.policy). An error
// names the line.
func ParsePolicy(text string) (*Policy, error) {
	p := &Policy{Categories: map[string][]string{}, Roles: map[string]*Role{}, Proxy: map[string][]string{}}
	for n, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if err := p.parseLine(f); err != nil {
			return nil, fmt.Errorf("policy line %d: %w", n+1, err)
		}
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return p, nil
}

func list(s string) []string {
	if s == "none" {
		return []string{}
	}
	return strings.Split(s, ",")
}

func (p *Policy) parseLine(f []string) error {
	switch f[0] {
	case "category":
		if len(f) < 3 {
			return fmt.Errorf("category needs a name and at least one resource type")
		}
		if _, dup := p.Categories[f[1]]; dup {
			return fmt.Errorf("category %q defined twice", f[1])
		}
		p.Categories[f[1]] = f[2:]
	case "role":
		if len(f) < 2 {
			return fmt.Errorf("role needs a name")
		}
		r := &Role{Name: f[1]}
		rest, err := keyed(f[2:], map[string]*[]string{"read": &r.Read, "write": &r.Write, "labels": &r.Labels},
			map[string]*bool{"break-glass": &r.BreakGlass, "self-claim": &r.SelfClaim})
		if err != nil {
			return err
		}
		if len(rest) > 0 {
			return fmt.Errorf("unexpected %q", rest[0])
		}
		if _, dup := p.Roles[r.Name]; dup {
			return fmt.Errorf("role %q defined twice", r.Name)
		}
		p.Roles[r.Name] = r
		p.Rules = append(p.Rules, "role "+r.Name)
	case "share":
		if len(f) < 2 {
			return fmt.Errorf("share needs a name")
		}
		s := &Share{Name: f[1]}
		var purpose []string
		rest, err := keyed(f[2:], map[string]*[]string{"from": &s.From, "to": &s.To, "categories": &s.Categories, "purpose": &purpose, "labels": &s.Labels}, nil)
		if err != nil {
			return err
		}
		if len(rest) > 0 {
			return fmt.Errorf("unexpected %q", rest[0])
		}
		if len(purpose) != 1 || len(s.From) == 0 || len(s.To) == 0 || len(s.Categories) == 0 {
			return fmt.Errorf("share %q needs from, to, categories and one purpose", s.Name)
		}
		s.Purpose = purpose[0]
		p.Shares = append(p.Shares, s)
		p.Rules = append(p.Rules, "share "+s.Name)
	case "consent":
		if len(f) != 4 || f[2] != "by" {
			return fmt.Errorf("consent needs a name, then by and organisation types")
		}
		p.ConsentBy = append(p.ConsentBy, list(f[3])...)
		p.Rules = append(p.Rules, "consent "+f[1])
	case "proxy":
		if len(f) != 3 {
			return fmt.Errorf("proxy needs a level and its categories")
		}
		p.Proxy[f[1]] = list(f[2])
		p.Rules = append(p.Rules, "proxy "+f[1])
	case "setting":
		if len(f) != 3 {
			return fmt.Errorf("setting needs a name and a value")
		}
		d, err := time.ParseDuration(f[2])
		if err != nil || d <= 0 {
			return fmt.Errorf("setting %s: %q is not a positive duration", f[1], f[2])
		}
		switch f[1] {
		case "relationship-grace":
			p.RelationshipGrace = d
		case "break-glass-duration":
			p.BreakGlassDuration = d
		case "self-claim-duration":
			p.SelfClaimDuration = d
		default:
			return fmt.Errorf("unknown setting %q", f[1])
		}
		p.Rules = append(p.Rules, "setting "+f[1])
	default:
		return fmt.Errorf("unknown rule kind %q", f[0])
	}
	return nil
}

// keyed reads "key value" pairs and bare flags.
func keyed(f []string, vals map[string]*[]string, flags map[string]*bool) ([]string, error) {
	for len(f) > 0 {
		if v, ok := vals[f[0]]; ok {
			if len(f) < 2 {
				return nil, fmt.Errorf("%s needs a value", f[0])
			}
			*v = list(f[1])
			f = f[2:]
			continue
		}
		if b, ok := flags[f[0]]; ok {
			*b = true
			f = f[1:]
			continue
		}
		return f, nil
	}
	return nil, nil
}

// check refuses names that refer to nothing, so a typo cannot silently
// narrow or widen access.
func (p *Policy) check() error {
	cats := func(what string, cs []string) error {
		for _, c := range cs {
			if _, ok := p.Categories[c]; !ok {
				return fmt.Errorf("%s: unknown category %q", what, c)
			}
		}
		return nil
	}
	labels := func(what string, ls []string) error {
		for _, l := range ls {
			if !slices.Contains(AllLabels, l) {
				return fmt.Errorf("%s: unknown label %q", what, l)
			}
		}
		return nil
	}
	for _, r := range p.Roles {
		if err := cats("role "+r.Name, r.Read); err != nil {
			return err
		}
		if err := cats("role "+r.Name, r.Write); err != nil {
			return err
		}
		if err := labels("role "+r.Name, r.Labels); err != nil {
			return err
		}
	}
	for _, s := range p.Shares {
		if err := cats("share "+s.Name, s.Categories); err != nil {
			return err
		}
		if err := labels("share "+s.Name, s.Labels); err != nil {
			return err
		}
		if slices.Contains(s.Labels, "V") {
			return fmt.Errorf("share %s: V-labelled records never leave their organisation", s.Name)
		}
	}
	for lvl, cs := range p.Proxy {
		if err := cats("proxy "+lvl, cs); err != nil {
			return err
		}
	}
	for _, must := range []string{"patient", "system"} {
		if p.Roles[must] == nil {
			return fmt.Errorf("the policy needs a role %q", must)
		}
	}
	if p.RelationshipGrace == 0 || p.BreakGlassDuration == 0 || p.SelfClaimDuration == 0 {
		return fmt.Errorf("settings relationship-grace, break-glass-duration and self-claim-duration are required")
	}
	return nil
}

// types returns the resource types of the categories, sorted.
func (p *Policy) types(cats []string) []string {
	var out []string
	for _, c := range cats {
		out = append(out, p.Categories[c]...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// category returns the categories a type belongs to.
func (p *Policy) categoriesOf(typ string) []string {
	var out []string
	for c, ts := range p.Categories {
		if slices.Contains(ts, typ) {
			out = append(out, c)
		}
	}
	return out
}
