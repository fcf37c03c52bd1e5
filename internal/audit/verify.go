package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// verifyPage is how many entries Verify reads at a time.
const verifyPage = 1000

// Problem is one thing Verify found wrong.
type Problem struct {
	// Entry is the first entry the problem concerns, -1 when it concerns
	// no single entry.
	Entry int64
	Msg   string
}

func (p Problem) String() string {
	if p.Entry < 0 {
		return p.Msg
	}
	return fmt.Sprintf("entry %d: %s", p.Entry, p.Msg)
}

// Report is what Verify found.
type Report struct {
	Size        int64 // the log's recorded size
	Entries     int64 // entries that verified: the leaves 0..Entries-1 are sound
	Checkpoints int   // checkpoints whose signature and root verified
	// Unchecked are the stored checkpoints signed by a key Verify was not
	// given (another node's): their signatures could not be checked.
	Unchecked int
	// Uncovered is how many sound entries no verified checkpoint covers
	// yet: appended since the last checkpoint, or inserted by someone who
	// recomputed the tree (no checkpoint can tell the two apart).
	Uncovered int64
	Problems  []Problem
}

// OK reports whether nothing is wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// FirstBad is the lowest entry a problem names, -1 if none does.
func (r *Report) FirstBad() int64 {
	first := int64(-1)
	for _, p := range r.Problems {
		if p.Entry >= 0 && (first < 0 || p.Entry < first) {
			first = p.Entry
		}
	}
	return first
}

func (r *Report) add(entry int64, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Entry: entry, Msg: fmt.Sprintf(format, args...)})
}

// Verify checks the log in st from its rows alone: it recomputes every
// leaf hash from the stored entry and the whole tree from the leaves,
// compares them with the stored hashes, checks every stored checkpoint's
// signature (with verifiers) and root, and checks that each checkpoint in
// trusted (kept outside the store: by an outside party, or the node's own
// checkpoint file) is a tree the log still extends. An error is returned
// only when the store cannot be read; what is wrong with the log is in the
// Report.
//
// It holds the recomputed hashes in memory: about 64 bytes per entry.
func Verify(ctx context.Context, st store.AuditStore, verifiers note.Verifiers, trusted [][]byte) (*Report, error) {
	r := &Report{}
	size, err := st.AuditSize(ctx)
	if err != nil {
		return nil, err
	}
	r.Size = size
	var hashes []tlog.Hash // recomputed stored hashes, by id
	mem := tlog.HashReaderFunc(func(ids []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ids))
		for i, id := range ids {
			if id < 0 || id >= int64(len(hashes)) {
				return nil, fmt.Errorf("hash %d not computed", id)
			}
			out[i] = hashes[id]
		}
		return out, nil
	})

	// The entries, in index order: each must be the next leaf, hash to the
	// stored leaf hash, and bring the stored interior hashes with it.
	good := int64(0)
	broken := false
	for from := int64(0); !broken; {
		rows, err := st.AuditEntries(ctx, from, verifyPage)
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			break
		}
		from = rows[len(rows)-1].Index + 1
		// The page's stored hashes in one read; an entry whose hashes are
		// not all there is read alone below, to name what is missing.
		page := map[int64][]byte{}
		if last := min(rows[len(rows)-1].Index, size-1); last >= good {
			lo, hi := tlog.StoredHashIndex(0, good), tlog.StoredHashCount(last+1)
			ids := make([]int64, 0, hi-lo)
			for id := lo; id < hi; id++ {
				ids = append(ids, id)
			}
			got, err := st.AuditHashes(ctx, ids)
			switch {
			case err == nil:
				for k, id := range ids {
					page[id] = got[k]
				}
			case !fhir.IsKind(err, fhir.ENotFound):
				return nil, err
			}
		}
		storedHashes := func(ids []int64) ([][]byte, error) {
			out := make([][]byte, len(ids))
			for k, id := range ids {
				if out[k] = page[id]; out[k] == nil {
					return st.AuditHashes(ctx, ids)
				}
			}
			return out, nil
		}
		var leaf []byte
		for _, row := range rows {
			i := good
			switch {
			case row.Index > i && i < size:
				r.add(i, "missing: the next stored entry is %d (entries were deleted)", row.Index)
			case row.Index > i || i >= size:
				r.add(max(row.Index, i), "not part of the log: it lies beyond the log's recorded size %d (a row was inserted)", size)
			}
			if row.Index != i || i >= size {
				broken = true
				break
			}
			start := tlog.StoredHashIndex(0, i)
			leaf = appendRowLeaf(leaf[:0], row)
			hs, err := tlog.StoredHashes(i, leaf, mem)
			if err != nil {
				return nil, err
			}
			ids := make([]int64, len(hs))
			for k := range hs {
				ids[k] = start + int64(k)
			}
			stored, err := storedHashes(ids)
			if fhir.IsKind(err, fhir.ENotFound) {
				r.add(i, "has no stored tree hash (a row was inserted, or the hashes deleted)")
				broken = true
				break
			}
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(stored[0], hs[0][:]) {
				r.add(i, "altered: its contents no longer hash to the leaf hash stored when it was recorded (changed, or moved from another position)")
				broken = true
				break
			}
			if want := indexRows(row); fmt.Sprint(want) != fmt.Sprint(row.Indexed) {
				r.add(i, "its person-view index rows %v differ from the entry's persons %v (an access hidden from or added to a person's view)", row.Indexed, want)
				broken = true
				break
			}
			for k := 1; k < len(hs); k++ {
				if !bytes.Equal(stored[k], hs[k][:]) {
					r.add(i, "the stored tree hash %d above it differs from the one its entries give", ids[k])
					broken = true
					break
				}
			}
			if broken {
				break
			}
			hashes = append(hashes, hs...)
			good++
		}
	}
	if !broken && good < size {
		r.add(good, "missing: the log's recorded size is %d but only %d entries are stored (entries were deleted)", size, good)
	}
	r.Entries = good

	// check compares a checkpoint with the recomputed tree.
	covered := int64(0)
	check := func(what string, c *Checkpoint) {
		if c.Size > good {
			if good == size {
				r.add(good, "%s of %d entries signed %s, but the log now holds %d: the store was rolled back behind it", what, c.Size, when(c.Time), size)
			} else {
				r.add(good, "%s of %d entries signed %s covers entries that no longer verify", what, c.Size, when(c.Time))
			}
			return
		}
		root, err := tlog.TreeHash(c.Size, mem)
		if err != nil {
			r.add(-1, "%s of %d entries: %v", what, c.Size, err)
			return
		}
		if root != c.Root {
			r.add(-1, "%s of %d entries: the tree of the stored entries has another root (entries before %d were altered and their hashes recomputed)", what, c.Size, c.Size)
			return
		}
		// Prove, as an outside party would, that the current tree extends it.
		if good > c.Size {
			cur, err := tlog.TreeHash(good, mem)
			if err == nil {
				var p tlog.TreeProof
				p, err = tlog.ProveTree(good, c.Size, mem)
				if err == nil {
					err = tlog.CheckTree(p, good, cur, c.Size, c.Root)
				}
			}
			if err != nil {
				r.add(-1, "%s of %d entries: not consistent with the current tree: %v", what, c.Size, err)
				return
			}
		}
		covered = max(covered, c.Size)
	}

	stored, err := st.AuditCheckpoints(ctx, false)
	if err != nil {
		return nil, err
	}
	for _, sc := range stored {
		c, err := ParseCheckpoint(sc.Note, verifiers)
		var unknown *note.UnknownVerifierError
		switch {
		case errors.As(err, &unknown):
			r.Unchecked++
			continue
		case err != nil:
			r.add(-1, "stored checkpoint of %d entries: %v", sc.Size, err)
			continue
		case c.Size != sc.Size || !bytes.Equal(c.Root[:], sc.Root):
			r.add(-1, "stored checkpoint of %d entries: its columns differ from its signed note", sc.Size)
			continue
		}
		c.Time = time.UnixMicro(sc.Time).UTC()
		before := len(r.Problems)
		check("checkpoint", c)
		if len(r.Problems) == before {
			r.Checkpoints++
		}
	}
	seen := map[string]bool{}
	for _, msg := range trusted {
		if seen[string(msg)] {
			continue // the node's own file and an outside party's copy of it
		}
		seen[string(msg)] = true
		c, err := ParseCheckpoint(msg, verifiers)
		if err != nil {
			r.add(-1, "kept checkpoint: %v", err)
			continue
		}
		check("kept checkpoint", c)
	}
	r.Uncovered = good - covered
	return r, nil
}

func when(t time.Time) string {
	if t.IsZero() {
		return "earlier"
	}
	return "at " + t.UTC().Format(time.RFC3339)
}

// indexRows are the person-view index rows an entry should have.
func indexRows(row *store.AuditEntry) []store.AuditIndexRow {
	seen := map[string]bool{}
	var out []store.AuditIndexRow
	for _, p := range row.Patients {
		if !seen[p] {
			seen[p] = true
			out = append(out, store.AuditIndexRow{Patient: p, Restricted: row.Restricted})
		}
	}
	slices.SortFunc(out, func(a, b store.AuditIndexRow) int { return strings.Compare(a.Patient, b.Patient) })
	return out
}
