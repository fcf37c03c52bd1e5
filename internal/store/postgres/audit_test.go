package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/internal/store/postgres"
	"github.com/sharedcare/sharedcare/internal/store/storetest"
)

// TestAuditSearchPlans: with sequential scans, bitmap scans and sorts
// priced out, every audit search that names a person, a user, an
// organisation or asks for flagged entries is served by an index of the
// log, newest first (a Seq Scan or a Sort left in the plan means no index
// serves it).
func TestAuditSearchPlans(t *testing.T) {
	st := backend.OpenPostgresForTest(t).(*postgres.Store)
	ctx := context.Background()
	cases := []struct {
		name string
		q    store.AuditQuery
		want string
	}{
		{"the person's own view", store.AuditQuery{Patient: "p1", Unrestricted: true, Limit: 100}, "audit_patients_pkey"},
		{"the person's view, next page", store.AuditQuery{Patient: "p1", Unrestricted: true, Before: 50, Limit: 100}, "audit_patients_pkey"},
		{"by user and time", store.AuditQuery{User: "u", Since: 1, Limit: 100}, "audit_by_user"},
		{"by organisation", store.AuditQuery{Org: "A81001", Before: 9, Limit: 100}, "audit_by_org"},
		{"flagged", store.AuditQuery{Flagged: true, Limit: 100}, "audit_flagged"},
	}
	for _, tc := range cases {
		sqlText, args := postgres.AuditSearchSQL(tc.q)
		plan, err := st.ExplainOrdered(ctx, sqlText, args)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, sqlText)
		}
		if !strings.Contains(plan, tc.want) || strings.Contains(plan, "Seq Scan on audit") || strings.Contains(plan, "Sort") {
			t.Errorf("%s: plan does not read %s newest first without a scan or sort:\n%s", tc.name, tc.want, plan)
		}
	}
}

// TestAuditConformance holds the PostgreSQL store to the audit log's
// contract.
func TestAuditConformance(t *testing.T) {
	storetest.RunAudit(t, storetest.Harness{
		Open:   backend.OpenPostgresForTest,
		Reopen: backend.ReopenForTest,
	})
}
