package api

import (
	"net/http"
	"sync"

	"github.com/sharedcare/sharedcare/internal/audit"
)

// auditNote is what the actions learn about an interaction while serving
// it, for its audit entry (audit.go): which operation it was, whose record
// it touched, what it disclosed or wrote and under which circumstances.
// Every request's state carries one; the actions add to it and auditRelease
// reads it once the response is complete. It is safe for concurrent use.
type auditNote struct {
	mu         sync.Mutex
	subtype    string   // e.g. "read", "search-type", "$everything", "login"
	patients   []string // Patient ids whose record the interaction concerned
	resources  []string // "Type/id" references read or written
	flags      []string // audit.Flag constants
	purpose    string   // purpose of use (v3 ActReason code)
	restricted bool     // its disclosure is itself restricted
	user       string   // who, when the action learns it (a login)
	extra      []*audit.Entry
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
	n.patients = append(n.patients, ids...)
	n.mu.Unlock()
}

func (n *auditNote) addResources(refs ...string) {
	n.mu.Lock()
	n.resources = append(n.resources, refs...)
	n.mu.Unlock()
}

func (n *auditNote) addFlags(fs ...string) {
	n.mu.Lock()
	n.flags = append(n.flags, fs...)
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
	n.user = u
	n.mu.Unlock()
}

// addEntry adds an entry of its own to the interaction (one per entry of a
// batch or transaction), recorded in the same durable write as the
// interaction's own.
func (n *auditNote) addEntry(e *audit.Entry) {
	n.mu.Lock()
	n.extra = append(n.extra, e)
	n.mu.Unlock()
}
