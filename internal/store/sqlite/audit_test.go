package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/storetest"
)

// TestAuditSearchPlans: every audit search that names a person, a user, an
// organisation or asks for flagged entries reads an index from its newest
// end, never the whole log; the person's own view never sorts.
func TestAuditSearchPlans(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "sharedcare.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cases := []struct {
		name string
		q    store.AuditQuery
		want string // an access the plan must use
	}{
		{"the person's own view seeks their key", store.AuditQuery{Patient: "p1", Unrestricted: true, Limit: 100}, "SEARCH p USING PRIMARY KEY (patient=?)"},
		{"the person's view, next page", store.AuditQuery{Patient: "p1", Unrestricted: true, Before: 50, Limit: 100}, "PRIMARY KEY (patient=? AND idx<?)"},
		{"a person and a time range", store.AuditQuery{Patient: "p1", Since: 1, Until: 2, Limit: 100}, "PRIMARY KEY (patient=?)"},
		{"by user", store.AuditQuery{User: "u", Limit: 100}, "INDEX audit_by_user (who_user=?)"},
		{"by user and time", store.AuditQuery{User: "u", Since: 1, Limit: 100}, "INDEX audit_by_user (who_user=?)"},
		{"by organisation", store.AuditQuery{Org: "A81001", Before: 9, Limit: 100}, "INDEX audit_by_org (who_org=? AND idx<?)"},
		{"flagged", store.AuditQuery{Flagged: true, Limit: 100}, "INDEX audit_flagged"},
	}
	for _, tc := range cases {
		sqlText, args := auditSearchSQL(tc.q)
		rows, err := s.audit.rdb.QueryContext(ctx, "EXPLAIN QUERY PLAN "+sqlText, args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, tc.want) {
			t.Errorf("%s: plan %q does not use %q", tc.name, p, tc.want)
		}
		for _, d := range plan {
			// A scan of the flagged partial index reads flagged entries
			// only; any other scan reads the whole log.
			if (strings.HasPrefix(d, "SCAN") && d != "SCAN e USING INDEX audit_flagged") || strings.Contains(d, "TEMP B-TREE") {
				t.Errorf("%s: plan %q scans the log or sorts", tc.name, p)
			}
		}
	}
}

// TestAuditConformance holds the SQLite store to the audit log's contract.
func TestAuditConformance(t *testing.T) {
	openAt := func(t testing.TB, path string) store.Store {
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	storetest.RunAudit(t, storetest.Harness{
		Open: func(t testing.TB) store.Store { return openAt(t, filepath.Join(t.TempDir(), "sharedcare.db")) },
		Reopen: func(t testing.TB, old store.Store) store.Store {
			s := old.(*Store)
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openAt(t, s.Path())
		},
	})
}
