package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
)

// AuditSearchSQL is the statement SearchAudit runs, for the plan test.
var AuditSearchSQL = auditSearchSQL

// ExplainOrdered returns the plan of sqlText with sequential scans, bitmap
// scans and sorts priced out: a Seq Scan or a Sort left in the plan means
// no index can give the rows in the order asked (on a small test table the
// planner would otherwise rightly prefer them).
func (s *Store) ExplainOrdered(ctx context.Context, sqlText string, args []any) (string, error) {
	var plan []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, set := range []string{"enable_seqscan", "enable_bitmapscan", "enable_sort"} {
			if _, err := tx.Exec(ctx, "SET LOCAL "+set+" = off"); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, "EXPLAIN "+sqlText, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return err
			}
			plan = append(plan, line)
		}
		return rows.Err()
	})
	return strings.Join(plan, "\n"), err
}
