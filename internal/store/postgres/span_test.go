package postgres_test

import (
	"context"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store/backend"
	"github.com/sharedcare/sharedcare/internal/store/postgres"
	"github.com/sharedcare/sharedcare/internal/store/storetest"
)

// TestDateSpanUnknownIsKept: a token row's date span is NULL where
// migration 0008 did not reach it (rows written before it, of resources
// without dates); such a span is unknown, and a search by a code and a
// date must still find exactly what each prefix admits (the conformance
// suite checks the spans as written).
func TestDateSpanUnknownIsKept(t *testing.T) {
	st := backend.OpenPostgresForTest(t).(*postgres.Store)
	storetest.PutDateSpanFixture(t, st)
	if err := st.ExecForTest(context.Background(), "UPDATE idx_token SET date_lo = NULL, date_hi = NULL"); err != nil {
		t.Fatal(err)
	}
	storetest.CheckDateSpanFixture(t, st)
}
