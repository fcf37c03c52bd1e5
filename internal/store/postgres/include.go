package postgres

import (
	"context"

	"github.com/sharedcare/sharedcare/internal/store"
)

// defaultMaxIncluded is the cap on Result.Included when a query sets none
// (store contract).
const defaultMaxIncluded = 1000

// maxIncludeRounds bounds :iterate (as in the SQLite store): after this many
// rounds over newly included resources the includes stop and
// IncludedTruncated is set, so a long reference chain cannot turn one page
// into a walk of the store.
const maxIncludeRounds = 8

// includes fills res.Included with the resources that q.Include and
// q.RevInclude select from the page's matches, each once, none a match,
// every one visible through q.Filter.
//
// Round 0 applies every include to the matches; each later round applies
// the :iterate ones to what the previous round added, until nothing new is
// found, MaxIncluded is reached or maxIncludeRounds have run.
func includes(ctx context.Context, qr querier, q *store.Query, matches []int64, res *store.Result) error {
	limit := q.MaxIncluded
	if limit <= 0 {
		limit = defaultMaxIncluded
	}
	seen := make(map[int64]bool, len(matches))
	for _, rid := range matches {
		seen[rid] = true
	}
	var added []int64
	sources := matches
	for round := 0; len(sources) > 0; round++ {
		if round == maxIncludeRounds {
			res.IncludedTruncated = true
			break
		}
		var next []int64
		run := func(inc store.Include, rev bool) error {
			if round > 0 && !inc.Iterate {
				return nil
			}
			if len(added) >= limit {
				return nil
			}
			b, err := includeSQL(inc, rev, sources, q.Filter, limit-len(added)+1+len(seen))
			if err != nil {
				return err
			}
			rows, err := qr.Query(ctx, b.sb.String(), b.args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var rid int64
				if err := rows.Scan(&rid); err != nil {
					return err
				}
				if seen[rid] {
					continue
				}
				if len(added) == limit {
					res.IncludedTruncated = true
					return nil
				}
				seen[rid] = true
				added = append(added, rid)
				next = append(next, rid)
			}
			return rows.Err()
		}
		for _, inc := range q.Include {
			if err := run(inc, false); err != nil {
				return err
			}
		}
		for _, inc := range q.RevInclude {
			if err := run(inc, true); err != nil {
				return err
			}
		}
		sources = next
	}
	if len(added) == 0 {
		return nil
	}
	rows, err := qr.Query(ctx, "SELECT "+versionColumns+" FROM resources r JOIN resource_versions v ON v.seq = r.seq"+
		" WHERE r.rid = ANY($1::bigint[]) ORDER BY r.type, r.id", added)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return err
		}
		res.Included = append(res.Included, v)
	}
	return rows.Err()
}

// includeSQL selects (at most limit) rids of the resources inc selects from
// sources: their reference targets (_include), or the resources referring
// to them (_revinclude). Targets and referrers must be current and visible.
func includeSQL(inc store.Include, rev bool, sources []int64, f *store.Filter, limit int) (*sqlBuilder, error) {
	b := &sqlBuilder{filter: f}
	anyType := func(t string) bool { return t == "" || t == "*" }
	if !rev {
		b.w("SELECT DISTINCT t.rid FROM unnest(?::bigint[]) j(rid) JOIN resources s ON s.rid = j.rid"+
			" JOIN idx_reference x ON x.rid = s.rid AND x.ref_id <> ''"+
			" JOIN resources t ON t.type = x.ref_type AND t.id = x.ref_id WHERE NOT t.deleted", sources)
		if !anyType(inc.SourceType) {
			b.w(" AND s.type = ?", clean(inc.SourceType))
		}
		if inc.Param != "*" {
			b.w(" AND x.param = ?", clean(inc.Param))
		}
		if !anyType(inc.TargetType) {
			b.w(" AND x.ref_type = ?", clean(inc.TargetType))
		}
		if err := b.filterTest("t"); err != nil {
			return nil, err
		}
	} else {
		if inc.Param == "*" || inc.Param == "" {
			// Every reference parameter of the source type: the engine
			// knows them (the R4 model); the store would have to scan.
			return nil, notSupported("_revinclude with a wildcard parameter")
		}
		b.w("SELECT DISTINCT s.rid FROM unnest(?::bigint[]) j(rid) JOIN resources t ON t.rid = j.rid"+
			" JOIN idx_reference x ON x.param = ? AND "+refTarget("x", "t")+
			" JOIN resources s ON s.rid = x.rid WHERE NOT s.deleted", sources, clean(inc.Param))
		if !anyType(inc.SourceType) {
			b.w(" AND x.type = ?", clean(inc.SourceType))
		}
		if !anyType(inc.TargetType) {
			b.w(" AND t.type = ?", clean(inc.TargetType))
		}
		if err := b.filterTest("s"); err != nil {
			return nil, err
		}
	}
	b.w(" LIMIT ?", limit)
	return b, nil
}
