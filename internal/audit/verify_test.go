package audit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sharedcare/sharedcare/internal/audit"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// execer is the test-only raw SQL door both stores have.
type execer interface {
	ExecAuditForTest(ctx context.Context, sql string, args ...any) error
}

// exec runs raw SQL against the store, as an attacker with database access.
func exec(t *testing.T, st store.Store, sql string, args ...any) {
	t.Helper()
	if err := st.(execer).ExecAuditForTest(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// tamperLog records 12 entries with a checkpoint after 8 and another after
// 12, and returns the checkpoint of 12 as an outside party would keep it.
func tamperLog(t *testing.T, b backend.Named) (*audit.Log, store.Store, *audit.Checkpoint) {
	t.Helper()
	l, st, _ := openLog(t, b)
	ctx := context.Background()
	for i := range 12 {
		e := entry(fmt.Sprintf("u%d", i%3), "A81001", []string{fmt.Sprintf("p%d", i%4), "p9"})
		e.Restricted = i == 7
		record(t, l, e)
		if i == 7 {
			if _, err := l.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	kept, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return l, st, kept
}

func verify(t *testing.T, l *audit.Log, st store.Store, kept ...*audit.Checkpoint) *audit.Report {
	t.Helper()
	var trusted [][]byte
	for _, c := range kept {
		trusted = append(trusted, c.Note)
	}
	r, err := audit.Verify(context.Background(), st.(store.AuditStore), note.VerifierList(l.Verifier()), trusted)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return r
}

// rewriteHashes recomputes every stored hash from the entries as they now
// are: what an attacker who knows the tree's construction does after
// changing an entry, so that the stored hashes agree with it again.
func rewriteHashes(t *testing.T, st store.Store) {
	t.Helper()
	rows, err := st.(store.AuditStore).AuditEntries(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var hashes []tlog.Hash
	r := tlog.HashReaderFunc(func(ids []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ids))
		for i, id := range ids {
			out[i] = hashes[id]
		}
		return out, nil
	})
	for _, row := range rows {
		e := &audit.Entry{Index: row.Index, Time: time.UnixMicro(row.Time), User: row.User, Role: row.Role, Org: row.Org,
			Client: row.Client, Patients: row.Patients, Action: row.Action, Outcome: row.Outcome, Flags: row.Flags,
			Restricted: row.Restricted, Event: row.Event}
		hs, err := tlog.StoredHashes(row.Index, audit.LeafData(e), r)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	for id, h := range hashes {
		exec(t, st, `UPDATE audit_hashes SET hash = $1 WHERE id = $2`, h[:], id)
	}
}

// TestVerifyCatchesTampering changes audit rows with raw SQL in every way
// the issue lists (and a few more), on every store, and checks that verify
// fails naming the first bad entry; the untouched log verifies clean.
func TestVerifyCatchesTampering(t *testing.T) {
	// Positional parameters are written $1, $2: SQLite accepts them too.
	shift := func(t *testing.T, st store.Store) {
		// Insert an entry at 5: move 5.. up by one, then write the new row.
		exec(t, st, `UPDATE audit_entries SET idx = idx + 1000 WHERE idx >= 5`)
		exec(t, st, `UPDATE audit_entries SET idx = idx - 999 WHERE idx >= 1000`)
		exec(t, st, `INSERT INTO audit_entries (idx, time, who_user, who_role, who_org, who_client, patients, action, outcome, flags, restricted, event)
			SELECT 5, time, 'intruder', who_role, who_org, who_client, '', action, outcome, flags, restricted, event FROM audit_entries WHERE idx = 4`)
		exec(t, st, `UPDATE audit_head SET size = size + 1`)
	}
	cases := []struct {
		name      string
		tamper    func(t *testing.T, st store.Store)
		useKept   bool  // verify with the checkpoint kept outside
		wantFirst int64 // the entry named first; -1 for a problem naming none
		wantMsg   string
	}{
		{"an entry's user altered", func(t *testing.T, st store.Store) {
			exec(t, st, `UPDATE audit_entries SET who_user = 'someone-else' WHERE idx = 5`)
		}, false, 5, "altered"},
		{"an entry's AuditEvent altered", func(t *testing.T, st store.Store) {
			exec(t, st, `UPDATE audit_entries SET event = $1 WHERE idx = 6`, []byte(`{"resourceType":"AuditEvent"}`))
		}, false, 6, "altered"},
		{"an entry's time altered", func(t *testing.T, st store.Store) {
			exec(t, st, `UPDATE audit_entries SET time = time + 1 WHERE idx = 0`)
		}, false, 0, "altered"},
		{"an entry marked restricted, hiding it from the person", func(t *testing.T, st store.Store) {
			exec(t, st, `UPDATE audit_entries SET restricted = NOT restricted WHERE idx = 4`)
			exec(t, st, `UPDATE audit_patients SET restricted = NOT restricted WHERE idx = 4`)
		}, false, 4, "altered"},
		{"a person-view index row deleted, the entry untouched", func(t *testing.T, st store.Store) {
			exec(t, st, `DELETE FROM audit_patients WHERE idx = 3 AND patient = 'p3'`)
		}, false, 3, "person-view index"},
		{"a person-view index row marked restricted, the entry untouched", func(t *testing.T, st store.Store) {
			exec(t, st, `UPDATE audit_patients SET restricted = NOT restricted WHERE idx = 2 AND patient = 'p9'`)
		}, false, 2, "person-view index"},
		{"an entry deleted from the middle", func(t *testing.T, st store.Store) {
			exec(t, st, `DELETE FROM audit_entries WHERE idx = 5`)
		}, false, 5, "missing"},
		{"the last entry deleted and the size lowered", func(t *testing.T, st store.Store) {
			exec(t, st, `DELETE FROM audit_entries WHERE idx = 11`)
			exec(t, st, `DELETE FROM audit_patients WHERE idx = 11`)
			exec(t, st, `UPDATE audit_head SET size = 11`)
		}, false, 11, "rolled back"},
		{"an entry appended without its hashes", func(t *testing.T, st store.Store) {
			exec(t, st, `INSERT INTO audit_entries (idx, time, who_user, who_role, who_org, who_client, patients, action, outcome, flags, restricted, event)
				SELECT 12, time, who_user, who_role, who_org, who_client, patients, action, outcome, flags, restricted, event FROM audit_entries WHERE idx = 3`)
		}, false, 12, "inserted"},
		{"an entry appended and the size raised, without hashes", func(t *testing.T, st store.Store) {
			exec(t, st, `INSERT INTO audit_entries (idx, time, who_user, who_role, who_org, who_client, patients, action, outcome, flags, restricted, event)
				SELECT 12, time, who_user, who_role, who_org, who_client, '', action, outcome, flags, restricted, event FROM audit_entries WHERE idx = 3`)
			exec(t, st, `UPDATE audit_head SET size = 13`)
		}, false, 12, "no stored tree hash"},
		{"an entry inserted in the middle, the rest renumbered", shift, false, 5, "altered"},
		{"two entries swapped (reordered)", func(t *testing.T, st store.Store) {
			exec(t, st, `UPDATE audit_entries SET idx = -1 WHERE idx = 3`)
			exec(t, st, `UPDATE audit_entries SET idx = 3 WHERE idx = 6`)
			exec(t, st, `UPDATE audit_entries SET idx = 6 WHERE idx = -1`)
		}, false, 3, ""},
		{"an entry altered and every stored hash recomputed to match", func(t *testing.T, st store.Store) {
			exec(t, st, `UPDATE audit_entries SET who_user = 'someone-else' WHERE idx = 2`)
			rewriteHashes(t, st)
		}, false, -1, "another root"},
		{"the store rolled back behind the kept checkpoint, its own checkpoints too", func(t *testing.T, st store.Store) {
			exec(t, st, `DELETE FROM audit_entries WHERE idx >= 8`)
			exec(t, st, `DELETE FROM audit_patients WHERE idx >= 8`)
			exec(t, st, `DELETE FROM audit_hashes WHERE id >= $1`, tlog.StoredHashCount(8))
			exec(t, st, `DELETE FROM audit_checkpoints WHERE size > 8`)
			exec(t, st, `UPDATE audit_head SET size = 8`)
		}, true, 8, "rolled back"},
		{"a stored checkpoint's size changed", func(t *testing.T, st store.Store) {
			exec(t, st, `UPDATE audit_checkpoints SET size = 7 WHERE size = 8`)
		}, false, -1, "differ from its signed note"},
		{"a stored checkpoint's signed text changed", func(t *testing.T, st store.Store) {
			exec(t, st, `UPDATE audit_checkpoints SET note = $1 WHERE size = 8`, []byte("sharedcare-audit-x\n8\nAAAA\n\n— sharedcare-audit-x AAAA\n"))
		}, false, -1, "stored checkpoint of 8"},
	}
	for _, b := range backend.ForTests(t) {
		t.Run(b.Name, func(t *testing.T) {
			t.Run("an untouched log verifies clean", func(t *testing.T) {
				l, st, kept := tamperLog(t, b)
				r := verify(t, l, st, kept)
				if !r.OK() {
					t.Fatalf("problems in an untouched log: %v", r.Problems)
				}
				if r.Entries != 12 || r.Checkpoints != 2 || r.Uncovered != 0 {
					t.Errorf("report %+v, want 12 entries, 2 checkpoints, none uncovered", r)
				}
			})
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					l, st, kept := tamperLog(t, b)
					tc.tamper(t, st)
					var r *audit.Report
					if tc.useKept {
						if r0 := verify(t, l, st); !r0.OK() {
							t.Logf("caught even without the kept checkpoint: %v", r0.Problems)
						}
						r = verify(t, l, st, kept)
					} else {
						r = verify(t, l, st)
					}
					if r.OK() {
						t.Fatalf("verify found nothing wrong")
					}
					if got := r.FirstBad(); got != tc.wantFirst {
						t.Errorf("first bad entry %d, want %d (problems: %v)", got, tc.wantFirst, r.Problems)
					}
					if !strings.Contains(fmt.Sprint(r.Problems), tc.wantMsg) {
						t.Errorf("problems %v do not say %q", r.Problems, tc.wantMsg)
					}
				})
			}
		})
	}
}
