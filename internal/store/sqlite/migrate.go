package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// migrations are the schema changes, applied in order of their numeric
// prefix. A file, once released, is never edited: a change is a new file.
//
// The runner is deliberately tiny (a schema_version table holding the
// highest applied number, each file applied in its own transaction with the
// version bump) rather than a migration library: no module beyond the driver
// is needed, and the PostgreSQL store uses the same convention.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migration is one numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, f := range files {
		base := strings.TrimPrefix(f, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n <= 0 {
			return nil, fmt.Errorf("sqlite: migration %s: name must start with a positive number and _", base)
		}
		b, err := migrations.ReadFile(f)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: n, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := range ms {
		if ms[i].version != i+1 {
			return nil, fmt.Errorf("sqlite: migration %s: expected number %d", ms[i].name, i+1)
		}
	}
	return ms, nil
}

// migrate brings the database on conn up to the newest embedded schema. It
// refuses a database whose schema is newer than this binary knows, rather
// than writing to tables it does not understand.
func migrate(ctx context.Context, conn *sql.Conn) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	// BEGIN IMMEDIATE takes the write lock first, so two processes opening
	// a new file at once apply each migration exactly once.
	for {
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		done, err := migrateStep(ctx, conn, ms)
		if err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK")
			return err
		}
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK")
			return fmt.Errorf("sqlite: migrate: commit: %w", err)
		}
		if done {
			return nil
		}
	}
}

// migrateStep applies the next pending migration inside the caller's
// transaction, reporting done when there was none.
func migrateStep(ctx context.Context, conn *sql.Conn, ms []migration) (done bool, err error) {
	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"); err != nil {
		return false, fmt.Errorf("sqlite: migrate: %w", err)
	}
	var cur int
	if err := conn.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&cur); err != nil {
		return false, fmt.Errorf("sqlite: migrate: %w", err)
	}
	if cur > len(ms) {
		return false, fmt.Errorf("sqlite: database schema version %d is newer than this program's %d", cur, len(ms))
	}
	if cur == len(ms) {
		return true, nil
	}
	m := ms[cur]
	if _, err := conn.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("sqlite: migration %s: %w", m.name, err)
	}
	if _, err := conn.ExecContext(ctx, "DELETE FROM schema_version"); err != nil {
		return false, fmt.Errorf("sqlite: migrate: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO schema_version (version) VALUES (?)", m.version); err != nil {
		return false, fmt.Errorf("sqlite: migrate: %w", err)
	}
	return false, nil
}
