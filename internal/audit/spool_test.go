package audit

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/store"
)

func spoolRows(user string, n int) []*store.AuditEntry {
	var rows []*store.AuditEntry
	for i := range n {
		rows = append(rows, &store.AuditEntry{Time: int64(1_700_000_000_000_000 + i), User: fmt.Sprintf("%s-%d", user, i),
			Role: "clinician", Org: "A81001", Client: "portal", Patients: []string{"p1", "p2"}, Action: ActionRead,
			Outcome: OutcomeSuccess, Flags: []string{"break-glass"}, Restricted: i%2 == 1, Event: []byte(`{"resourceType":"AuditEvent"}`)})
	}
	return rows
}

// TestSpoolRecordRoundTrip: a record decodes to the rows encoded, every
// field, and a record cut short or with a flipped byte is refused.
func TestSpoolRecordRoundTrip(t *testing.T) {
	rows := spoolRows("u", 3)
	rows[0].Patients, rows[0].Flags = nil, nil
	rec := encodeRecord(nil, rows)
	got, n, err := decodeRecord(rec)
	if err != nil || n != len(rec) || len(got) != 3 {
		t.Fatalf("decode: %v, %d of %d bytes, %d rows", err, n, len(rec), len(got))
	}
	for i := range rows {
		a, b := *rows[i], *got[i]
		if a.Time != b.Time || a.User != b.User || a.Role != b.Role || a.Org != b.Org || a.Client != b.Client ||
			!slices.Equal(a.Patients, b.Patients) || a.Action != b.Action || a.Outcome != b.Outcome ||
			!slices.Equal(a.Flags, b.Flags) || a.Restricted != b.Restricted || string(a.Event) != string(b.Event) {
			t.Errorf("row %d: got %+v, want %+v", i, b, a)
		}
	}
	for cut := range len(rec) {
		if _, _, err := decodeRecord(rec[:cut]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded", cut, len(rec))
		}
	}
	for i := range rec {
		bad := slices.Clone(rec)
		bad[i] ^= 0x40
		if _, _, err := decodeRecord(bad); err == nil {
			t.Fatalf("a record with byte %d flipped decoded", i)
		}
	}
}

// FuzzSpoolRecord: no input makes decodeRecord panic, and whatever it
// accepts encodes back to the same bytes.
func FuzzSpoolRecord(f *testing.F) {
	f.Add(encodeRecord(nil, spoolRows("u", 2)))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if again := encodeRecord(nil, rows); string(again) != string(b[:n]) {
			t.Fatalf("decoded and encoded again: %x, was %x", again, b[:n])
		}
	})
}

// TestSpoolRecovers: records written survive a reopen from any position
// on; a record torn by a crash (written in part) is cut off and the next
// write follows the last whole one; moved segments are deleted; damage
// before the last record refuses to open; a second process cannot open
// the same spool.
func TestSpoolRecovers(t *testing.T) {
	dir := t.TempDir()
	sp, recs, err := openSpool(dir, 0)
	if err != nil || len(recs) != 0 {
		t.Fatalf("open: %v, %d records", err, len(recs))
	}
	if _, _, err := openSpool(dir, 0); err != errSpoolBusy {
		t.Errorf("a second open of a held spool: %v, want errSpoolBusy", err)
	}
	var ends []int64
	for i := range 3 {
		if err := sp.write(encodeRecord(nil, spoolRows(fmt.Sprint("r", i), i+1))); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, sp.end)
	}
	// A crash in the middle of the fourth record's write.
	torn := encodeRecord(nil, spoolRows("torn", 2))
	if _, err := sp.f.Write(torn[:len(torn)/2]); err != nil {
		t.Fatal(err)
	}
	sp.close()

	sp, recs, err = openSpool(dir, ends[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].rows[0].User != "r1-0" || len(recs[1].rows) != 3 || recs[1].end != ends[2] {
		t.Fatalf("recovered from %d: %+v", ends[0], recs)
	}
	if sp.end != ends[2] {
		t.Errorf("the torn record was not cut off: end %d, want %d", sp.end, ends[2])
	}
	if err := sp.write(encodeRecord(nil, spoolRows("after", 1))); err != nil {
		t.Fatal(err)
	}
	after := sp.end
	sp.close()
	_, recs, err = func() (*spool, []spooled, error) {
		s, r, err := openSpool(dir, ends[2])
		if s != nil {
			s.close()
		}
		return s, r, err
	}()
	if err != nil || len(recs) != 1 || recs[0].rows[0].User != "after-0" || recs[0].end != after {
		t.Fatalf("the record written after the cut: %v %+v", err, recs)
	}

	// Segments: a new one once the current passes its bound; moved ones go.
	sp, _, err = openSpool(dir, after)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.newSegment(sp.end); err != nil {
		t.Fatal(err)
	}
	if err := sp.write(encodeRecord(nil, spoolRows("second-segment", 1))); err != nil {
		t.Fatal(err)
	}
	segs, _ := sp.segments()
	if len(segs) != 2 {
		t.Fatalf("segments %v, want 2", segs)
	}
	if err := sp.trim(after - 1); err != nil {
		t.Fatal(err)
	}
	if segs, _ := sp.segments(); len(segs) != 2 {
		t.Errorf("trim before the first segment's end deleted it: %v", segs)
	}
	if err := sp.trim(after); err != nil {
		t.Fatal(err)
	}
	if segs, _ := sp.segments(); len(segs) != 1 || segs[0] != after {
		t.Errorf("segments after trimming to %d: %v", after, segs)
	}
	last := sp.end
	sp.close()

	// Damage anywhere but the end of the last segment refuses to open.
	sp, _, err = openSpool(dir, after)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.newSegment(sp.end); err != nil {
		t.Fatal(err)
	}
	sp.write(encodeRecord(nil, spoolRows("third-segment", 1)))
	sp.close()
	path := filepath.Join(dir, SpoolDir, fmt.Sprintf("%020d.spool", after))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if sp, _, err := openSpool(dir, after); err == nil {
		sp.close()
		t.Errorf("a damaged record in a segment before the last opened")
	}
	// From beyond the damage (already moved), it opens.
	sp, recs, err = openSpool(dir, last)
	if err != nil || len(recs) != 1 || recs[0].rows[0].User != "third-segment-0" {
		t.Fatalf("open past the damage: %v %+v", err, recs)
	}
	sp.close()
}

// TestSpoolRotatesIntoZeroedSegments: past the first segment's bound the
// committer moves to a segment zeroed ahead of time; a reopened spool finds
// every record, in order, and the end of the records before the zeroes,
// and the next write goes there.
func TestSpoolRotatesIntoZeroedSegments(t *testing.T) {
	dir := t.TempDir()
	sp, _, err := openSpool(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	big := spoolRows("big", 1)
	big[0].Event = []byte(`{"resourceType":"AuditEvent","x":"` + strings.Repeat("a", 10_000) + `"}`)
	var ends []int64
	zeroed := false
	for i := 0; !zeroed || i < 300; i++ {
		big[0].User = fmt.Sprint("u", i)
		if err := sp.write(encodeRecord(nil, big)); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, sp.end)
		zeroed = sp.limit == spoolSegmentMax
		if i > 10_000 {
			t.Fatal("no zeroed segment was ever begun")
		}
	}
	sp.close()
	segs := func() []int64 {
		s := &spool{dir: filepath.Join(dir, SpoolDir)}
		out, err := s.segments()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}()
	// The first, perhaps more unzeroed ones begun while the zeroing ran,
	// then a zeroed one.
	if len(segs) < 2 {
		t.Fatalf("segments %v, want the first and a zeroed one", segs)
	}
	if fi, err := os.Stat(filepath.Join(dir, SpoolDir, fmt.Sprintf("%020d.spool", segs[len(segs)-1]))); err != nil || fi.Size() != spoolSegmentMax {
		t.Fatalf("the second segment: %v, want %d bytes", err, spoolSegmentMax)
	}
	sp, recs, err := openSpool(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(ends) {
		t.Fatalf("recovered %d records, wrote %d", len(recs), len(ends))
	}
	for i, r := range recs {
		if r.end != ends[i] || r.rows[0].User != fmt.Sprint("u", i) {
			t.Fatalf("record %d: end %d user %s, want %d u%d", i, r.end, r.rows[0].User, ends[i], i)
		}
	}
	if sp.end != ends[len(ends)-1] {
		t.Fatalf("reopened at %d, the records end at %d", sp.end, ends[len(ends)-1])
	}
	if err := sp.write(encodeRecord(nil, spoolRows("after", 1))); err != nil {
		t.Fatal(err)
	}
	sp.close()
	sp, recs, err = openSpool(dir, ends[len(ends)-1])
	if err != nil || len(recs) != 1 || recs[0].rows[0].User != "after-0" {
		t.Fatalf("after reopening: %v %+v", err, recs)
	}
	sp.close()
}

// TestSpoolRecordLayout holds encodeRecord to the layout that spools on
// disk are in (spool.go), written out here field by field: a node must
// read the spool an earlier build left, so the bytes may not change.
func TestSpoolRecordLayout(t *testing.T) {
	rows := spoolRows("u", 2)
	rows[1].Patients, rows[1].Flags, rows[1].User = nil, []string{"a", "b"}, ""
	var payload []byte
	payload = binary.AppendUvarint(payload, 2)
	for _, r := range rows {
		payload = binary.AppendVarint(payload, r.Time)
		for _, f := range []string{r.User, r.Role, r.Org, r.Client, strings.Join(r.Patients, " "), r.Action, r.Outcome, strings.Join(r.Flags, " ")} {
			payload = binary.AppendUvarint(payload, uint64(len(f)))
			payload = append(payload, f...)
		}
		payload = append(payload, map[bool]byte{false: 0, true: 1}[r.Restricted])
		payload = binary.AppendUvarint(payload, uint64(len(r.Event)))
		payload = append(payload, r.Event...)
	}
	want := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	want = binary.LittleEndian.AppendUint32(want, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	want = append(want, payload...)
	got := encodeRecord([]byte("before"), rows)
	if !slices.Equal(got, append([]byte("before"), want...)) {
		t.Errorf("encodeRecord\n got %x\nwant before+%x", got, want)
	}
}
