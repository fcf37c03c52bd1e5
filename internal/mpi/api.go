package mpi

import "github.com/sharedcare/sharedcare/internal/fhir"

// This file is the contract the rest of sharedcare codes against (the FHIR
// service in internal/mpi/service, the `sharedcare mpi link` command). The
// implementation lives in the other files of the package.

// Identifier is one identifier of a Patient other than the NHS number:
// two records sharing a system with equal values agree, with different values
// disagree.
type Identifier struct {
	System string
	Value  string
}

// Record is the matching view of one Patient: its demographics normalised
// once (lower case, no accents or punctuation, digits only in phones,
// postcodes upper case without spaces), so comparing two records does no
// parsing.
type Record struct {
	Ref         string       // "Patient/123", or a file's Patient id
	Given       []string     // given names in order (first, then middle names)
	Family      string       // family name of the official (or first) name
	OtherFamily []string     // other family names: old/maiden names, other names
	BirthDate   string       // YYYY-MM-DD, or "" when absent or partial
	Sex         string       // FHIR administrative gender; "" when absent
	Postcodes   []string     // current first, then other addresses' postcodes
	Addresses   []string     // normalised first address line ("12 high street")
	Cities      []string     // normalised town or suburb
	Phones      []string     // digits only, national form (07700900123)
	NHS         string       // a valid NHS number (nhsnumber.Valid), or ""
	NHSVerified bool         // the NHS number's verification status is 01 (traced and verified)
	Identifiers []Identifier // every other identifier
	Deceased    bool         // deceasedBoolean true or a deceasedDateTime
	keys        []uint64     // blocking keys, filled by prepare
	nhsKey      uint64       // the NHS number's key (never skipped), 0 when none
	givenCode   string       // phonetic code of the first given name
	familyCode  string       // phonetic code of Family
}

// FromPatient returns the matching view of a Patient resource. It never
// fails: what cannot be read is left empty and simply does not take part in
// matching.
func FromPatient(ref string, p fhir.Object) Record { return fromPatient(ref, p) }

// Prepare computes what matching needs from the exported fields (phonetic
// codes, blocking keys). FromPatient calls it; a Record built by hand must be
// prepared before it is compared or indexed.
func (r *Record) Prepare() { r.prepare() }

// Grade is the FHIR match grade
// (http://hl7.org/fhir/StructureDefinition/match-grade).
type Grade string

// The match grades: certain is an automatic link; probable and possible lie
// between the thresholds (or are conflicts) and go to the review queue;
// certainly-not is below the review threshold.
const (
	Certain      Grade = "certain"
	Probable     Grade = "probable"
	Possible     Grade = "possible"
	CertainlyNot Grade = "certainly-not"
)

// Method says how a link decision was reached.
type Method string

// The link methods: deterministic (verified NHS numbers agree and the
// demographics do not contradict them), probabilistic (Fellegi-Sunter weight
// above the link threshold), manual (a person decided, set by the service).
const (
	Deterministic Method = "deterministic"
	Probabilistic Method = "probabilistic"
	Manual        Method = "manual"
)

// Match is the comparison of a record with another one.
type Match struct {
	Ref      string   // the other record
	Score    float64  // match weight: log2 likelihood ratio summed over fields, higher is likelier
	Prob     float64  // posterior probability of a match, 0..1, for Bundle.entry.search.score
	Grade    Grade    // what to do with it (see Grade)
	Method   Method   // Deterministic or Probabilistic (Manual is never set here)
	Reason   []string // fields that agreed, e.g. "nhs-number", "family:jw", "birthdate:exact"
	Conflict bool     // same NHS number but clearly different people: review, never auto-link
}

// Linked reports whether the match is an automatic link.
func (m Match) Linked() bool { return m.Grade == Certain }

// Review reports whether the match belongs in the review queue.
func (m Match) Review() bool { return m.Grade == Probable || m.Grade == Possible }

// Model is a trained Fellegi-Sunter model: the m and u probability of every
// comparison level, estimated by EM, and the two thresholds on Score.
type Model struct {
	Link   float64 // at or above: automatic link (Grade Certain)
	Review float64 // at or above (and below Link): review queue; below: no link
	Prior  float64 // estimated share of candidate pairs that are matches
	Pairs  int     // candidate pairs EM was trained on (0 for the default model)
	fields [numFields]field
}

// Train estimates a model from records by EM over their blocked candidate
// pairs (at most three million, compared on every core). With too few
// pairs to estimate (under 500), it returns DefaultModel(). Unprepared
// records in recs are prepared in place.
func Train(recs []Record) *Model { return train(recs) }

// DefaultModel is a model with m/u values measured on the synthetic region,
// for a node too small to train on its own data.
func DefaultModel() *Model { return defaultModel() }

// Compare compares two records and grades the result.
func (m *Model) Compare(a, b Record) Match { return m.compare(&a, &b) }

// MustNotLink reports whether two records must never be put into one person
// automatically, even through a third record they both match: different
// verified NHS numbers, the same number with contradicting demographics, or
// a score below the review threshold with two identity fields (given name,
// birth date, sex) wholly different. Linking is transitive, so before two
// persons are joined every pair across them should pass this.
func (m *Model) MustNotLink(a, b Record) bool { return m.mustNotLink(&a, &b) }

// GradeOf grades a score by the model's thresholds and posterior.
func (m *Model) GradeOf(score float64) Grade { return m.gradeOf(score) }

// Index holds records for incremental matching; it is safe for concurrent
// use. Adding or matching one record costs a few blocking look-ups and
// comparisons with the records that share a block, not a rebuild.
type Index struct{ idx index }

// NewIndex returns an empty index that scores with m.
func NewIndex(m *Model) *Index { return newIndex(m) }

// Add adds r, replacing the record with the same Ref.
func (ix *Index) Add(r Record) { ix.idx.add(r) }

// Remove removes the record with this Ref (nothing if absent).
func (ix *Index) Remove(ref string) { ix.idx.remove(ref) }

// Len is the number of records in the index.
func (ix *Index) Len() int { return ix.idx.len() }

// Model returns the model the index scores with.
func (ix *Index) Model() *Model { return ix.idx.model }

// Get returns the record with this Ref.
func (ix *Index) Get(ref string) (Record, bool) { return ix.idx.get(ref) }

// Candidates returns the records that share a block with r (r's own Ref
// excluded), compared with r and sorted best first, those graded
// CertainlyNot left out; at most limit (all when limit <= 0).
func (ix *Index) Candidates(r Record, limit int) []Match { return ix.idx.candidates(r, limit) }

// Pair is one scored pair of records: A and the Match against B (Match.Ref).
type Pair struct {
	A string
	Match
}

// Linkage is the result of linking a batch of records.
type Linkage struct {
	Person map[string]string // every record's Ref -> its person key (the smallest Ref of its cluster)
	Links  []Pair            // automatic links that built the clusters
	Review []Pair            // pairs for the review queue: between thresholds, conflicts, and links refused by clustering
}

// Link links a batch of records into persons: every blocked pair is
// compared (on every core), automatic links join clusters strongest first
// unless the join would put two records that must not be one person
// together (Model.MustNotLink), and the rest goes to review. Unprepared
// records in recs are prepared in place.
func Link(m *Model, recs []Record) Linkage { return link(m, recs) }
