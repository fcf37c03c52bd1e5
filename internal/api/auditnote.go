package api

import (
	"net/http"
	"slices"
	"sync"

	"github.com/sharedcare/sharedcare/internal/access"
)

// maxAuditResources bounds the "Type/id" references one entry lists: a
// search page or $everything can disclose thousands of resources, and an
// entry is hashed into the log and read back by the person's own view.
// Past the bound the entry still names every person whose record was
// disclosed, and the query that was asked, which together say what was
// seen; the references are only the first maxAuditResources.
const maxAuditResources = 100

// auditNote is what the actions learn about an interaction while serving
// it, for its audit entry (audit.go): which operation it was, whose record
// it touched, what it disclosed or wrote and under which circumstances.
// Every request's state carries one; the actions add to it and auditRelease
// reads it once the response is complete. It is safe for concurrent use.
type auditNote struct {
	mu         sync.Mutex
	subtype    string   // e.g. "read", "search-type", "$everything", "login"
	patients   []string // Patient ids whose record the interaction concerned
	resources  []string // "Type/id" references read or written, at most maxAuditResources
	more       int      // references left out past maxAuditResources
	flags      []string // audit.Flag constants
	purpose    string   // purpose of use (v3 ActReason code)
	restricted bool     // its disclosure is itself restricted
	who        who      // who, when the action learns it (a login, a token)
	extra      []auditFacts
	err        error // what the entry would have said could not be learnt

	// The caller's circumstances (access.Decider.Circumstances), asked
	// once per request, for reads and for writes.
	circ [2]*access.Circumstances
}

// who is the acting party of an interaction the action names itself: the
// user of a login, the client and user a token was issued to.
type who struct {
	user, role, org, client string
}

// noteOf returns the audit note of r's interaction (a fresh one, not kept,
// outside ServeHTTP).
func noteOf(r *http.Request) *auditNote { return &stateOf(r).note }

func (n *auditNote) setSubtype(s string) {
	n.mu.Lock()
	n.subtype = s
	n.mu.Unlock()
}

func (n *auditNote) addPatients(ids ...string) {
	n.mu.Lock()
	for _, id := range ids {
		if id != "" && !slices.Contains(n.patients, id) {
			n.patients = append(n.patients, id)
		}
	}
	n.mu.Unlock()
}

func (n *auditNote) addResources(refs ...string) {
	n.mu.Lock()
	for _, r := range refs {
		switch {
		case slices.Contains(n.resources, r):
		case len(n.resources) >= maxAuditResources:
			n.more++
		default:
			n.resources = append(n.resources, r)
		}
	}
	n.mu.Unlock()
}

func (n *auditNote) addFlags(fs ...string) {
	n.mu.Lock()
	for _, f := range fs {
		if !slices.Contains(n.flags, f) {
			n.flags = append(n.flags, f)
		}
	}
	n.mu.Unlock()
}

func (n *auditNote) setPurpose(p string) {
	n.mu.Lock()
	n.purpose = p
	n.mu.Unlock()
}

func (n *auditNote) restrict() {
	n.mu.Lock()
	n.restricted = true
	n.mu.Unlock()
}

func (n *auditNote) setUser(u string) {
	n.mu.Lock()
	n.who.user = u
	n.mu.Unlock()
}

func (n *auditNote) setWho(w who) {
	n.mu.Lock()
	n.who = w
	n.mu.Unlock()
}

// addEntry adds an entry of its own to the interaction (one per entry of a
// batch or transaction), recorded with the interaction's own before its
// response is released. Who, when, where, the request id and the purpose
// are the interaction's and are filled in by auditRelease.
func (n *auditNote) addEntry(f auditFacts) {
	n.mu.Lock()
	n.extra = append(n.extra, f)
	n.mu.Unlock()
}

// fail marks the note incomplete: the entry cannot say what was disclosed
// under which circumstances, so the response is not released (fail
// closed, as when the entry cannot be recorded).
func (n *auditNote) fail(err error) {
	n.mu.Lock()
	if n.err == nil {
		n.err = err
	}
	n.mu.Unlock()
}

// noteView is a copy of a note, read once the response is complete.
type noteView struct {
	subtype, purpose    string
	patients, resources []string
	more                int
	flags               []string
	restricted          bool
	who                 who
	extra               []auditFacts
	err                 error
}

func (n *auditNote) view() noteView {
	n.mu.Lock()
	defer n.mu.Unlock()
	return noteView{subtype: n.subtype, purpose: n.purpose, patients: slices.Clone(n.patients),
		resources: slices.Clone(n.resources), more: n.more, flags: slices.Clone(n.flags),
		restricted: n.restricted, who: n.who, extra: slices.Clone(n.extra), err: n.err}
}
