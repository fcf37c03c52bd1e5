// Package service runs the master patient index inside the server: it keeps
// every Patient in the store linked to a person (a golden record, stored as a
// FHIR Person whose link[] targets the Patients), keeps Patient.link in step,
// queues doubtful matches for review as FHIR Tasks, and answers
// Patient/$match, $merge and $unmerge.
//
// The matching itself (records, comparisons, the trained model, the
// in-memory blocking index) is package mpi; this package only decides what a
// match means for the stored resources and writes them through the engine,
// so that Persons, Tasks and Patient versions are validated, indexed and
// versioned like any other resource, and their history is the audit trail of
// every link decision.
//
// The engine calls AfterWrite after every committed write (engine.Config);
// a Patient whose demographics changed, or a new one, is linked there, on the
// writer's goroutine, before the write's response is sent. The service's own
// writes carry a context mark and are not looked at again, and a write that
// changes no demographics (Patient.link, active, a contact) does not re-link,
// so linking never loops.
//
// Where the issue is silent the service decides:
//   - One process runs the index for a store: the index is in memory, built
//     at start from the stored Patients and Persons; a second process writing
//     to the same PostgreSQL database would not see this one's index.
//   - The model is trained once at start (mpi.Train falls back to its default
//     model on too little data) and not retrained while serving.
//   - A manual link (an accepted review, a merge) is never undone by a later
//     demographic change; an automatic one is re-decided.
//   - Accepting a review unites the two persons (every Patient of the
//     reviewed one moves); a person left without Patients is kept, inactive,
//     with a link to the person it went into, so its history stays readable.
//   - Rejected pairs are never linked automatically and never queued again.
//   - Persons are the index's to keep, but a Person an administrator edits
//     or deletes is followed, not fought (see onPersonWritten).
//   - The Patient.link entries the index keeps carry ExtManagedLink; links a
//     sender wrote are never touched.
//   - A Task (review queue) has focus but not for, so that an identity
//     review stays out of the Patient's compartment and $everything.
package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/sharedcare/sharedcare/internal/engine"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/mpi"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Config holds the service's settings.
type Config struct {
	BaseURL string           // absolute base of the FHIR API, for fullUrl in $match results
	Log     *slog.Logger     // nil = discard
	Now     func() time.Time // nil = time.Now
	// Candidates bounds how many candidates a new Patient is compared with
	// in full; 0 = 50.
	Candidates int
}

// Service is the master patient index of one node. It is safe for concurrent
// use; link decisions are taken one at a time.
type Service struct {
	st  store.Store
	eng *engine.Engine
	cfg Config
	log *slog.Logger

	mu         sync.Mutex
	ix         *mpi.Index          // nil until Start
	personOf   map[string]string   // "Patient/1" -> Person id
	members    map[string][]string // Person id -> "Patient/.." in link order (active Persons only)
	replacedBy map[string]string   // merged-away Patient -> the Patient it was merged into
	open       map[pair]string     // open review Task id by pair
	rejected   map[pair]bool       // pairs a reviewer said are different people
	byNHS      map[string][]string // NHS number -> Patients with it, so conflicts are always seen
	stats      Stats
}

// Stats counts the linking done since Start, after writes and by CatchUp.
type Stats struct {
	Linked int           // Patients linked (or re-checked)
	Total  time.Duration // time spent linking them, writes included
	Worst  time.Duration // the longest single link decision
	Write  time.Duration // of Total, the time in the transactions that wrote Persons, Patient.link and Tasks
	Writes int           // those transactions
	Wrote  int           // resources they wrote (Persons, Patients, Tasks)
}

// Stats returns the linking counters since Start.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// pair is an unordered pair of Patient references.
type pair struct{ a, b string }

func pairOf(x, y string) pair {
	if x > y {
		x, y = y, x
	}
	return pair{x, y}
}

// New returns a service over st. It does nothing until Start; its AfterWrite
// can be handed to engine.New before that (writes before Start are linked by
// CatchUp).
func New(st store.Store, cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Candidates <= 0 {
		cfg.Candidates = 50
	}
	for len(cfg.BaseURL) > 0 && cfg.BaseURL[len(cfg.BaseURL)-1] == '/' {
		cfg.BaseURL = cfg.BaseURL[:len(cfg.BaseURL)-1]
	}
	return &Service{st: st, cfg: cfg, log: cfg.Log}
}

// Open builds the engine with the service's hook and starts the service: the
// wiring of `sharedcare serve` in one call. Patients not yet linked (written
// by an offline import, or before a crash) are linked by CatchUp, which the
// caller runs, usually in the background.
func Open(ctx context.Context, st store.Store, ecfg engine.Config, cfg Config) (*engine.Engine, *Service, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = ecfg.BaseURL
	}
	s := New(st, cfg)
	ecfg.AfterWrite = s.AfterWrite
	ecfg.Operations = Operations()
	eng := engine.New(st, ecfg)
	if err := s.Start(ctx, eng); err != nil {
		return nil, nil, err
	}
	return eng, s, nil
}

// Start loads the index: every current Patient (the model is trained on
// them), every active Person's links, merges, and the open and rejected
// reviews. eng must be an engine whose Config.AfterWrite is s.AfterWrite.
func (s *Service) Start(ctx context.Context, eng *engine.Engine) error {
	start := time.Now()
	personOf := map[string]string{}
	members := map[string][]string{}
	err := s.scan(ctx, "Person", func(v *store.Version, r fhir.Object) error {
		if active, ok := r["active"].(bool); ok && !active {
			return nil
		}
		for _, l := range objects(r["link"]) {
			ref := reference(l["target"])
			if !isPatientRef(ref) {
				continue
			}
			if _, dup := personOf[ref]; dup {
				// Two active Persons claim one Patient: only a crash between
				// writes of one transaction could do that, and transactions
				// are atomic, so this is a repair of hand-edited data.
				s.log.Warn("mpi: a Patient is linked from two Persons; the first is kept", "patient", ref, "person", v.ID)
				continue
			}
			personOf[ref] = v.ID
			members[v.ID] = append(members[v.ID], ref)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var recs []mpi.Record
	replacedBy := map[string]string{}
	err = s.scan(ctx, "Patient", func(v *store.Version, r fhir.Object) error {
		ref := "Patient/" + v.ID
		recs = append(recs, mpi.FromPatient(ref, r))
		for _, l := range objects(r["link"]) {
			if t, _ := l["type"].(string); t == "replaced-by" && managedLink(l) {
				if o := reference(l["other"]); isPatientRef(o) {
					replacedBy[ref] = o
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	model := mpi.Train(recs)
	ix := mpi.NewIndex(model)
	byNHS := map[string][]string{}
	for _, r := range recs {
		ix.Add(r)
		if r.NHS != "" {
			byNHS[r.NHS] = append(byNHS[r.NHS], r.Ref)
		}
	}
	open, rejected, err := s.loadReviews(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.eng, s.ix, s.byNHS = eng, ix, byNHS
	s.personOf, s.members, s.replacedBy = personOf, members, replacedBy
	s.open, s.rejected = open, rejected
	s.mu.Unlock()
	s.log.Info("mpi: index loaded", "patients", len(recs), "persons", len(members),
		"model_pairs", model.Pairs, "link_threshold", model.Link, "review_threshold", model.Review,
		"open_reviews", len(open), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// CatchUp links every indexed Patient that has no person yet, one at a time
// (other writes interleave), and returns how many it linked.
func (s *Service) CatchUp(ctx context.Context) (int, error) {
	s.mu.Lock()
	started := s.ix != nil
	s.mu.Unlock()
	if !started {
		return 0, errNotStarted()
	}
	// The scan holds no lock: on a large store it takes seconds, and
	// writes must go on being linked meanwhile.
	var ids []string
	err := s.scan(ctx, "Patient", func(v *store.Version, _ fhir.Object) error {
		ids = append(ids, v.ID)
		return nil
	})
	if err != nil {
		return 0, err
	}
	ictx := internal(ctx) // each decision finishes; the loop stops when ctx ends
	n := 0
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		s.mu.Lock()
		_, linked := s.personOf["Patient/"+id]
		var err error
		if !linked {
			var v *store.Version
			v, err = s.st.Read(ictx, "Patient", id)
			if err == nil && !v.Deleted {
				start := time.Now()
				err = s.onPatient(ictx, v)
				s.count(time.Since(start))
				n++
			}
		}
		s.mu.Unlock()
		if err != nil {
			return n, err
		}
	}
	if n > 0 {
		s.log.Info("mpi: linked patients that had no person", "count", n)
	}
	return n, nil
}

// Model returns the model the index scores with (nil before Start).
func (s *Service) Model() *mpi.Model {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ix == nil {
		return nil
	}
	return s.ix.Model()
}

// PersonOf returns the id of the Person a Patient ("Patient/1") is linked
// to, and whether it is linked.
func (s *Service) PersonOf(ref string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.personOf[ref]
	return p, ok
}

type internalKey struct{}

// internal marks a context as the service's own: its writes are not linked
// again. It drops the caller's cancellation, because a decision half taken
// when a client hangs up would be worse than finishing it. It keeps the
// caller's principal; when issue 6 filters writes by principal, the index's
// own writes must carry the node's system principal instead (here).
func internal(ctx context.Context) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), internalKey{}, true)
}

func isInternal(ctx context.Context) bool { return ctx.Value(internalKey{}) != nil }

// AfterWrite is the engine hook (engine.Config.AfterWrite): every Patient
// written is linked, every Patient deleted leaves its person. Failures are
// logged, never returned: the write is already durable, and CatchUp at the
// next start links whatever was missed.
func (s *Service) AfterWrite(ctx context.Context, written []*store.Version) {
	if isInternal(ctx) {
		return
	}
	// The last version of each resource written in the transaction counts.
	var vs []*store.Version
	seen := map[string]int{}
	for _, v := range written {
		switch v.Type {
		case "Patient", "Person", "Task":
		default:
			continue
		}
		k := v.Type + "/" + v.ID
		if i, ok := seen[k]; ok {
			vs[i] = v
			continue
		}
		seen[k] = len(vs)
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return
	}
	ctx = internal(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ix == nil {
		return
	}
	// Persons and Tasks first: a client's edit of them is followed before
	// any Patient of the same transaction is linked.
	for _, v := range vs {
		switch v.Type {
		case "Person":
			if err := s.onPersonWritten(ctx, v); err != nil {
				s.log.Error("mpi: following an edited Person failed", "person", v.ID, "error", err)
			}
		case "Task":
			s.onTaskWritten(v)
		}
	}
	for _, v := range vs {
		if v.Type != "Patient" {
			continue
		}
		start := time.Now()
		var err error
		if v.Deleted {
			err = s.onDeleted(ctx, "Patient/"+v.ID)
		} else {
			err = s.onPatient(ctx, v)
		}
		if err != nil {
			s.log.Error("mpi: linking failed; the patient is linked at the next start", "patient", v.ID, "error", err)
		}
		s.count(time.Since(start))
	}
}

// count adds one linked Patient to the stats.
func (s *Service) count(took time.Duration) {
	s.stats.Linked++
	s.stats.Total += took
	s.stats.Worst = max(s.stats.Worst, took)
}

// onPersonWritten follows a Person written by a client rather than by the
// index: Persons are the index's to keep, but an administrator who edits or
// deletes one is followed, not fought. The Patients its links now name
// belong to it; those it no longer names are linked afresh (a deleted or
// inactive Person names none).
func (s *Service) onPersonWritten(ctx context.Context, v *store.Version) error {
	pid := v.ID
	var now []string
	if !v.Deleted {
		r, err := fhir.ParseObject(v.Body, 0)
		if err != nil {
			return fhir.Internal(err)
		}
		if active, ok := r["active"].(bool); !ok || active {
			for _, l := range objects(r["link"]) {
				if ref := reference(l["target"]); isPatientRef(ref) && !slices.Contains(now, ref) {
					now = append(now, ref)
				}
			}
		}
	}
	var left []string
	for _, m := range s.members[pid] {
		if !slices.Contains(now, m) {
			left = append(left, m)
			if s.personOf[m] == pid {
				delete(s.personOf, m)
			}
		}
	}
	var losers []string // Persons the edit took a Patient from
	for _, m := range now {
		if other := s.personOf[m]; other != "" && other != pid {
			s.members[other] = slices.DeleteFunc(s.members[other], func(x string) bool { return x == m })
			if len(s.members[other]) == 0 {
				delete(s.members, other)
			}
			losers = append(losers, other)
		}
		s.personOf[m] = pid
	}
	if len(now) == 0 {
		delete(s.members, pid)
	} else {
		s.members[pid] = now
	}
	// The Persons that lost a Patient no longer link it (retired into the
	// edited one when left empty), and every Patient concerned gets its
	// Patient.link in step; the edited Person itself is left as written.
	err := s.retry(ctx, func(c *change) error {
		for _, o := range losers {
			c.members[o] = slices.Clone(s.members[o])
			if len(c.members[o]) == 0 {
				c.retired[o] = pid
			}
			for _, m := range s.members[o] {
				c.touch(m)
			}
		}
		for _, m := range now {
			c.touch(m)
		}
		for _, m := range left {
			c.touch(m)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range left {
		typ, id := splitRef(m)
		pv, err := s.st.Read(ctx, typ, id)
		if fhir.IsKind(err, fhir.ENotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if pv.Deleted {
			continue
		}
		if err := s.onPatient(ctx, pv); err != nil {
			return err
		}
	}
	return nil
}

// onTaskWritten follows a review Task a client closed itself (cancelled,
// say): the pair may be queued again.
func (s *Service) onTaskWritten(v *store.Version) {
	if v.Deleted {
		for p, id := range s.open {
			if id == v.ID {
				delete(s.open, p)
			}
		}
		return
	}
	t, err := fhir.ParseObject(v.Body, 0)
	if err != nil {
		return
	}
	r, ok := reviewOf(t)
	if !ok {
		return
	}
	p := pairOf(r.patient, r.candidate)
	switch {
	case r.status == "requested":
		s.open[p] = v.ID
	case s.open[p] == v.ID:
		delete(s.open, p)
	}
	if r.business == "rejected" {
		s.rejected[p] = true
	}
}

// onPatient links a written Patient: a new one or one whose demographics
// changed is placed; any other write only has its Patient.link restored
// (a client that PUTs a Patient without the links it was given drops them).
func (s *Service) onPatient(ctx context.Context, v *store.Version) error {
	r, err := fhir.ParseObject(v.Body, 0)
	if err != nil {
		return fhir.Internal(err)
	}
	ref := "Patient/" + v.ID
	rec := mpi.FromPatient(ref, r)
	old, had := s.ix.Get(ref)
	_, linked := s.personOf[ref]
	if had && linked && sameDemographics(old, rec) {
		return s.retry(ctx, func(c *change) error {
			c.touch(ref)
			return nil
		})
	}
	s.indexAdd(rec)
	return s.retry(ctx, func(c *change) error { return s.place(ctx, c, rec) })
}

// sameDemographics reports whether two matching views are equal: the
// Patient changed nothing the index looks at.
func sameDemographics(a, b mpi.Record) bool { return reflect.DeepEqual(a, b) }

// onDeleted takes a deleted Patient out of the index and its person.
func (s *Service) onDeleted(ctx context.Context, ref string) error {
	s.indexRemove(ref)
	if _, ok := s.personOf[ref]; !ok {
		return nil
	}
	return s.retry(ctx, func(c *change) error {
		c.detach(ref)
		for src, dst := range s.replacedBy {
			if src == ref || dst == ref {
				c.setReplacedBy(src, "")
				c.touch(src)
			}
		}
		return nil
	})
}

// scan calls fn for every current resource of typ, in pages.
func (s *Service) scan(ctx context.Context, typ string, fn func(*store.Version, fhir.Object) error) error {
	q := &store.Query{Types: []string{typ}, Count: 1000}
	for {
		res, err := s.st.Search(ctx, q)
		if err != nil {
			return err
		}
		for _, v := range res.Versions {
			r, err := fhir.ParseObject(v.Body, 0)
			if err != nil {
				return fhir.Internal(err)
			}
			if err := fn(v, r); err != nil {
				return err
			}
		}
		if res.Next == "" {
			return nil
		}
		q.Cursor = res.Next
	}
}

// newID returns a random UUID (version 4) as a FHIR id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Operations are the operations the index serves, for the node's
// CapabilityStatement (engine.Config.Operations). $match is FHIR R4's own;
// the others are the index's, named in the project's namespace.
func Operations() map[string][]engine.Operation {
	const ours = "https://fhir.sharedcare.dev/OperationDefinition/"
	return map[string][]engine.Operation{
		"Patient": {
			{Name: "match", Definition: "http://hl7.org/fhir/OperationDefinition/Patient-match"},
			{Name: "merge", Definition: ours + "Patient-merge"},
			{Name: "unmerge", Definition: ours + "Patient-unmerge"},
		},
		"Task": {
			{Name: "accept", Definition: ours + "Task-accept"},
			{Name: "reject", Definition: ours + "Task-reject"},
		},
	}
}
