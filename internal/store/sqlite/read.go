package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// scanVersion reads the columns of versionCols.
func scanVersion(sc scanner) (*store.Version, error) {
	v := &store.Version{}
	var lu int64
	if err := sc.Scan(&v.Type, &v.ID, &v.VersionID, &lu, &v.Deleted, &v.Seq, &v.Body); err != nil {
		return nil, err
	}
	v.LastUpdated = time.UnixMicro(lu).UTC()
	if v.Deleted {
		v.Body = nil
	}
	return v, nil
}

func readOne(row *sql.Row, typ, id string) (*store.Version, error) {
	v, err := scanVersion(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fhir.Errorf(fhir.ENotFound, "", "%s/%s is not known", typ, id)
	}
	if err != nil {
		return nil, toError(err)
	}
	return v, nil
}

// defaultCount is the page size when a query gives none (store contract).
const defaultCount = 100

// History lists versions newest first. Instance history of a resource that
// never existed is ENotFound.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) ([]*store.Version, error) {
	if s.down.Load() {
		return nil, errClosed()
	}
	if q.Type == "" && q.ID != "" {
		return nil, fhir.Internal(errors.New("sqlite: history with an id but no type"))
	}
	var rid int64
	if q.ID != "" {
		err := s.r.ridOf.QueryRowContext(ctx, q.Type, q.ID).Scan(&rid)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fhir.Errorf(fhir.ENotFound, "", "%s/%s is not known", q.Type, q.ID)
		}
		if err != nil {
			return nil, toError(err)
		}
	}
	sqlText, args := historySQL(q, rid)
	n := q.Count
	if n <= 0 {
		n = defaultCount
	}
	st, tmp, err := s.rq.get(ctx, sqlText)
	if err != nil {
		return nil, toError(err)
	}
	if tmp {
		defer st.Close()
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, toError(err)
	}
	defer rows.Close()
	out := make([]*store.Version, 0, min(n, 64))
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, toError(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, toError(err)
	}
	return out, nil
}

// historySQL selects versions for q, rid being the resource's for instance
// history; its last argument is the row limit.
func historySQL(q store.HistoryQuery, rid int64) (string, []any) {
	var sb strings.Builder
	var args []any
	sb.WriteString("SELECT " + versionCols + " FROM resource_versions v JOIN resources r ON r.rid = v.rid WHERE 1")
	if q.ID != "" {
		sb.WriteString(" AND v.rid = ?")
		args = append(args, rid)
	} else if q.Type != "" {
		sb.WriteString(" AND v.type = ?")
		args = append(args, q.Type)
	}
	if q.Before > 0 {
		sb.WriteString(" AND v.seq < ?")
		args = append(args, q.Before)
	}
	if !q.Since.IsZero() {
		// The seq bound (see migrations/0002) confines the scan to versions
		// written since; the last_updated test is the exact filter.
		since := q.Since.UnixMicro()
		sb.WriteString(" AND v.seq >= (SELECT seq FROM resource_versions WHERE lu_hw >= ? ORDER BY lu_hw, seq LIMIT 1) AND v.last_updated >= ?")
		args = append(args, since, since)
	}
	n := q.Count
	if n <= 0 {
		n = defaultCount
	}
	if q.ID != "" {
		// Within one resource, version order is seq order, and the
		// (rid, version) index yields it without a sort.
		sb.WriteString(" ORDER BY v.version DESC LIMIT ?")
	} else {
		sb.WriteString(" ORDER BY v.seq DESC LIMIT ?")
	}
	return sb.String(), append(args, n)
}
