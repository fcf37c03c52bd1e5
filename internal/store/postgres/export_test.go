package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sharedcare/sharedcare/internal/store"
)

// PageSQL is the SQL and arguments of the first page of q, for plan tests.
func PageSQL(q *store.Query) (string, []any, error) {
	cur, err := decodeCursor(q.Cursor, q.Sort)
	if err != nil {
		return "", nil, err
	}
	var b sqlBuilder
	if err := b.wherePage(q); err != nil {
		return "", nil, err
	}
	n := q.Count
	if n <= 0 {
		n = defaultCount
	}
	s, err := b.page(q.Sort, cur, n+1)
	return s, b.args, err
}

// IncludeSQL is the SQL and arguments of one include step, for plan tests.
func IncludeSQL(inc store.Include, rev bool, rids []int64, f *store.Filter) (string, []any, error) {
	b, err := includeSQL(inc, rev, rids, f, 1001)
	if err != nil {
		return "", nil, err
	}
	return b.sb.String(), b.args, nil
}

// Explain returns the plan of sqlText. With noSeqScan, sequential scans are
// priced out (enable_seqscan = off), so a Seq Scan left in the plan means
// no index can serve that step at all.
func (s *Store) Explain(ctx context.Context, sqlText string, args []any, noSeqScan bool) (string, error) {
	var plan []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if noSeqScan {
			if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
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

// LastAnalyzed reports when the store's resources table was last analyzed
// by hand (zero time when never), for the Analyze test.
func (s *Store) LastAnalyzed(ctx context.Context) (at *time.Time, err error) {
	err = s.pool.QueryRow(ctx, "SELECT last_analyze FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = 'resources'").Scan(&at)
	return at, err
}

// ExecForTest runs sqlText on the store's pool, for tests that put the
// tables in a state no write through the store makes (rows written before
// a migration, say).
func (s *Store) ExecForTest(ctx context.Context, sqlText string) error {
	_, err := s.pool.Exec(ctx, sqlText)
	return err
}

// SettingForTest is the current value of a run-time setting on one of the
// store's connections.
func (s *Store) SettingForTest(ctx context.Context, name string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v)
	return v, err
}

// SourceLabelsForTest is every "_source" URI row's labels (migration
// 0010), one line a row in rid order: the rid, then the keys sorted, or
// "NULL".
func (s *Store) SourceLabelsForTest(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT rid, labels FROM idx_uri WHERE param = '_source' ORDER BY rid")
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		var rid int64
		var labels []string
		if err := rows.Scan(&rid, &labels); err != nil {
			return nil, err
		}
		line := fmt.Sprint(rid, " NULL")
		if labels != nil {
			slices.Sort(labels)
			line = fmt.Sprintf("%d %q", rid, labels)
		}
		out = append(out, line)
	}
	return out, rows.Err()
}
