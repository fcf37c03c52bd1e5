package access

import (
	"context"
	"slices"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/store"
)

// RestrictedLabel marks records whose very access is withheld from the
// person's own audit view: V (very restricted, such as a domestic abuse
// flag) never reaches the person (patientFilter), so an audit entry saying
// "your GP read your record's V-labelled flag" must not reach them either:
// the abuser may hold the person's phone.
const RestrictedLabel = "V"

// Disclosure is what an audit entry records about the circumstances under
// which one resource was shown to, or written by, a caller (issue 7): the
// ones a privacy officer reviews.
type Disclosure struct {
	BreakGlass        bool // its person's record was open to the caller by a break-glass grant
	SelfClaimed       bool // by a self-claimed relationship only (no recorded one, no break-glass)
	ObjectionOverride bool // by break-glass over the person's objection to sharing
	Labelled          bool // it carries a sensitivity label (meta.security, AllLabels)
	Restricted        bool // it carries RestrictedLabel
}

// Circumstances answers Disclosure for the resources of one request,
// from the caller's grants and claims as they were when it was decided.
type Circumstances struct {
	glass     map[string]bool // Patient ids under a break-glass grant
	claimed   map[string]bool // under a self-claim and no recorded relationship
	objection map[string]bool // break-glass people who object to sharing
}

// Circumstances returns the circumstances of the caller's interaction op
// (a SMART letter). A nil caller (the node operator) has none but labels.
// Break-glass opens records for reading only, by roles that may use it, as
// compile grants it; a self-claim widens reads and writes alike.
func (d *Decider) Circumstances(ctx context.Context, c *Caller, op rune) (*Circumstances, error) {
	cs := &Circumstances{}
	if c == nil || c.Kind != auth.KindUser {
		return cs, nil // only users break glass or claim relationships
	}
	f, now, err := d.current(ctx)
	if err != nil {
		return nil, err
	}
	uc, err := d.claimsOf(ctx, c.User, now)
	if err != nil {
		return nil, err
	}
	role := d.pol.Roles[c.Role]
	if role != nil && role.BreakGlass && !isWrite(op) && len(uc.breakGlass) > 0 {
		cs.glass = setOf(uc.breakGlass)
		cs.objection = map[string]bool{}
		for _, id := range uc.breakGlass {
			if cr := f.consents[id]; cr != nil && cr.objection {
				cs.objection[id] = true
			}
		}
	}
	if len(uc.selfClaims) > 0 {
		related, err := d.related(ctx, f, c.Org, now)
		if err != nil {
			return nil, err
		}
		cs.claimed = map[string]bool{}
		for _, id := range uc.selfClaims {
			if !slices.Contains(related, id) {
				cs.claimed[id] = true
			}
		}
	}
	return cs, nil
}

// Of is the disclosure of one resource in the given Patient compartments
// carrying the given labels.
func (cs *Circumstances) Of(patients []string, labels []store.Label) Disclosure {
	var d Disclosure
	for _, p := range patients {
		if cs == nil {
			break
		}
		switch {
		case cs.glass[p]:
			d.BreakGlass = true
			d.ObjectionOverride = d.ObjectionOverride || cs.objection[p]
		case cs.claimed[p]:
			d.SelfClaimed = true
		}
	}
	for _, l := range labels {
		if slices.Contains(AllLabels, l.Code) {
			d.Labelled = true
		}
		if l.Code == RestrictedLabel {
			d.Restricted = true
		}
	}
	return d
}
