package sqlite_test

import (
	"crypto/sha256"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// BenchmarkAuditEntryFloor measures what storing an audit entry costs at
// the least, as a floor under issue 7's cost target: plain tables, none of
// the log's checks, in the cheapest shape this driver offers (transactions
// of 500 entries, inserts of 50 rows, the audit file's 4 KiB pages, WAL,
// synchronous=FULL). The variants grow from the events of a transaction in
// one row (no row an entry: what writing the bytes costs) through a row an
// entry (a 1.4 KB AuditEvent, about a read's), its two tree hashes and the
// person's key to the user, organisation and time indexes the issue's
// searches need. Each reports the process's CPU µs an entry; leaf-hash
// times SHA-256 of one event, the leaf hash every entry needs.
func BenchmarkAuditEntryFloor(b *testing.B) {
	event := []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz", 56)[:1431])
	variants := []struct {
		name   string
		schema []string
		hashes bool
		person bool
		block  bool // the transaction's events in one row, no row an entry
	}{
		{"block", nil, false, false, true},
		{"entry", nil, false, false, false},
		{"entry+hashes", nil, true, false, false},
		{"entry+hashes+person", nil, true, true, false},
		{"entry+hashes+person+user+org+time", []string{
			`CREATE INDEX by_user ON e (who_user, idx)`, `CREATE INDEX by_org ON e (who_org, idx)`, `CREATE INDEX by_time ON e (time, idx)`,
		}, true, true, false},
	}
	const perTx, perStmt = 500, 50
	rowsSQL := func(prefix string, cols int) string {
		one := "(?" + strings.Repeat(", ?", cols-1) + ")"
		return prefix + strings.TrimSuffix(strings.Repeat(one+", ", perStmt), ", ")
	}
	insE := rowsSQL("INSERT INTO e VALUES ", 6)
	insH := rowsSQL("INSERT INTO h VALUES ", 2)
	insP := rowsSQL("INSERT INTO p VALUES ", 2)
	block := make([]byte, 0, perTx*len(event))
	for range perTx {
		block = append(block, event...)
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			db, err := sql.Open("sqlite", filepath.Join(b.TempDir(), "floor.db")+
				"?_pragma=page_size(4096)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=wal_autocheckpoint(0)")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			schema := append([]string{
				`CREATE TABLE e (idx INTEGER PRIMARY KEY, time INTEGER NOT NULL, who_user TEXT NOT NULL, who_org TEXT NOT NULL, patients TEXT NOT NULL, event BLOB NOT NULL)`,
				`CREATE TABLE h (id INTEGER PRIMARY KEY, hash BLOB NOT NULL)`,
				`CREATE TABLE p (patient TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (patient, idx)) WITHOUT ROWID`,
			}, v.schema...)
			for _, q := range schema {
				if _, err := db.Exec(q); err != nil {
					b.Fatal(err)
				}
			}
			total := (b.N + perTx - 1) / perTx * perTx
			hash := sha256.Sum256(event)
			b.ResetTimer()
			c0 := cpuTime()
			hid := 0
			for first := 0; first < total; first += perTx {
				tx, err := db.Begin()
				if err != nil {
					b.Fatal(err)
				}
				if v.block {
					if _, err := tx.Exec(`INSERT INTO e VALUES (?, 0, '', '', '', ?)`, first, block); err != nil {
						b.Fatal(err)
					}
				}
				for s := first; !v.block && s < first+perTx; s += perStmt {
					var ea, ha, pa []any
					for i := s; i < s+perStmt; i++ {
						// 2,000 persons in a scattered order, 50 users.
						patient := fmt.Sprintf("patient-%05d", i*7919%2000)
						ea = append(ea, i, int64(1e15)+int64(i), fmt.Sprintf("user-%d", i%50), "A81001", patient, event)
						pa = append(pa, patient, i)
						ha = append(ha, hid, hash[:], hid+1, hash[:])
						hid += 2
					}
					if _, err := tx.Exec(insE, ea...); err != nil {
						b.Fatal(err)
					}
					if v.hashes {
						for _, part := range [][]any{ha[:2*perStmt], ha[2*perStmt:]} {
							if _, err := tx.Exec(insH, part...); err != nil {
								b.Fatal(err)
							}
						}
					}
					if v.person {
						if _, err := tx.Exec(insP, pa...); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-c0)/float64(total)/1e3, "cpu-µs/entry")
		})
	}
	b.Run("leaf-hash", func(b *testing.B) {
		for b.Loop() {
			sha256.Sum256(event)
		}
	})
}
