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
// field, at the position it was written for and no other, and a record
// cut short or with a flipped byte is refused.
func TestSpoolRecordRoundTrip(t *testing.T) {
	rows := spoolRows("u", 3)
	rows[0].Patients, rows[0].Flags = nil, nil
	rec := encodeRecord(nil, rows)
	const at = 7 << 30
	setPositions(rec, at)
	got, n, err := decodeRecord(rec, at, false)
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
	for _, other := range []int64{0, at - 1, at + 1, at + spoolSegmentMax} {
		if _, _, err := decodeRecord(rec, other, false); err != errNotHere {
			t.Errorf("the record written at %d read at %d: %v, want errNotHere", int64(at), other, err)
		}
	}
	for cut := range len(rec) {
		if _, _, err := decodeRecord(rec[:cut], at, false); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded", cut, len(rec))
		}
	}
	for i := range rec {
		bad := slices.Clone(rec)
		bad[i] ^= 0x40
		if _, _, err := decodeRecord(bad, at, false); err == nil {
			t.Fatalf("a record with byte %d flipped decoded", i)
		}
	}
}

// FuzzSpoolRecord: no input makes decodeRecord panic, in either format,
// and whatever it accepts encodes back to the same bytes.
func FuzzSpoolRecord(f *testing.F) {
	rec := encodeRecord(nil, spoolRows("u", 2))
	setPositions(rec, 4096)
	f.Add(rec, int64(4096))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0}, int64(0))
	f.Fuzz(func(t *testing.T, b []byte, at int64) {
		decodeRecord(b, at, true)
		rows, n, err := decodeRecord(b, at, false)
		if err != nil {
			return
		}
		again := encodeRecord(nil, rows)
		setPositions(again, at)
		if string(again) != string(b[:n]) {
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
	if segs, _ := sp.segments(); len(segs) != 1 || segs[0].start != after {
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
	path := filepath.Join(dir, SpoolDir, fmt.Sprintf("%020d.segment", after))
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
	segs := func() []segment {
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
	if fi, err := os.Stat(filepath.Join(dir, SpoolDir, fmt.Sprintf("%020d.segment", segs[len(segs)-1].start))); err != nil || fi.Size() != spoolSegmentMax {
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

// layoutPayload is a record's payload for rows, written out field by field
// as spool.go describes it.
func layoutPayload(rows []*store.AuditEntry) []byte {
	var payload []byte
	payload = binary.AppendUvarint(payload, uint64(len(rows)))
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
	return payload
}

// legacyRecord is a record as an earlier build wrote it (.spool
// segments): length, CRC, payload.
func legacyRecord(rows []*store.AuditEntry) []byte {
	payload := layoutPayload(rows)
	rec := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	rec = binary.LittleEndian.AppendUint32(rec, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	return append(rec, payload...)
}

// TestSpoolRecordLayout holds encodeRecord and setPositions to the layout
// that spools on disk are in (spool.go), written out here field by field:
// a node must read the spool an earlier build left, so the bytes may not
// change.
func TestSpoolRecordLayout(t *testing.T) {
	rows := spoolRows("u", 2)
	rows[1].Patients, rows[1].Flags, rows[1].User = nil, []string{"a", "b"}, ""
	payload := layoutPayload(rows)
	want := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	want = binary.LittleEndian.AppendUint32(want, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	want = binary.LittleEndian.AppendUint64(want, 1<<40+3)
	want = append(want, payload...)
	got := encodeRecord([]byte("before"), rows)
	setPositions(got[len("before"):], 1<<40+3)
	if !slices.Equal(got, append([]byte("before"), want...)) {
		t.Errorf("encodeRecord\n got %x\nwant before+%x", got, want)
	}
}

// TestSpoolReadsEarlierSegments: a spool an earlier build left (.spool
// segments, records without their position, a torn last one) opens with
// every whole record; the next write goes into a new segment where they
// end, the old one is never written to again, and trimming deletes it.
func TestSpoolReadsEarlierSegments(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, SpoolDir), 0o700); err != nil {
		t.Fatal(err)
	}
	a, b := legacyRecord(spoolRows("old-a", 1)), legacyRecord(spoolRows("old-b", 2))
	torn := legacyRecord(spoolRows("torn", 1))
	old := slices.Concat(a, b, torn[:len(torn)-5], make([]byte, 4096))
	oldPath := filepath.Join(dir, SpoolDir, fmt.Sprintf("%020d.spool", 0))
	if err := os.WriteFile(oldPath, old, 0o600); err != nil {
		t.Fatal(err)
	}
	end := int64(len(a) + len(b))
	sp, recs, err := openSpool(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].rows[0].User != "old-a-0" || recs[1].rows[1].User != "old-b-1" || recs[1].end != end {
		t.Fatalf("recovered %+v", recs)
	}
	if sp.start != end || sp.end != end {
		t.Fatalf("writing at %d in the segment from %d, want a new segment at %d", sp.end, sp.start, end)
	}
	if err := sp.write(encodeRecord(nil, spoolRows("new", 1))); err != nil {
		t.Fatal(err)
	}
	after := sp.end
	sp.close()
	if b, err := os.ReadFile(oldPath); err != nil || !slices.Equal(b, old) {
		t.Fatalf("the earlier build's segment changed: %v", err)
	}
	sp, recs, err = openSpool(dir, 0)
	if err != nil || len(recs) != 3 || recs[2].rows[0].User != "new-0" || recs[2].end != after {
		t.Fatalf("reopened: %v %+v", err, recs)
	}
	if err := sp.trim(end); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(oldPath); !os.IsNotExist(err) {
		t.Errorf("the moved earlier segment is still there: %v", err)
	}
	sp.close()
	sp, recs, err = openSpool(dir, end)
	if err != nil || len(recs) != 1 || recs[0].rows[0].User != "new-0" {
		t.Fatalf("after trimming: %v %+v", err, recs)
	}
	sp.close()
}

// TestSpoolReusesMovedSegments: once trimmed, a full-size segment is kept
// and becomes a later segment (the same file, nothing zeroed), and what
// it held before is never read as records: reopened from any point the
// log can have moved to, the spool gives back exactly the records written
// since, in order.
func TestSpoolReusesMovedSegments(t *testing.T) {
	dir := t.TempDir()
	const segMax, firstMax = 256 << 10, 64 << 10
	sp, _, err := openSpoolSized(dir, 0, segMax, firstMax)
	if err != nil {
		t.Fatal(err)
	}
	rows := spoolRows("r", 1)
	rows[0].Event = []byte(`{"resourceType":"AuditEvent","x":"` + strings.Repeat("a", 3000) + `"}`)
	type written struct {
		user string
		end  int64
	}
	var all []written
	reused, trimmed := 0, 0 // trimmed: the records of all before it are moved
	for i := 0; reused < 3; i++ {
		if i > 5000 {
			t.Fatalf("after %d records, %d segments reused", i, reused)
		}
		rows[0].User = fmt.Sprint("u", i)
		start := sp.start
		if err := sp.write(encodeRecord(nil, rows)); err != nil {
			t.Fatal(err)
		}
		all = append(all, written{rows[0].User, sp.end})
		if sp.start == start {
			continue
		}
		// A new segment: reused if its file already holds an earlier
		// segment's records (a zeroed one holds zeroes). The mover has
		// moved all but the last record.
		b, err := os.ReadFile(sp.segmentPath(segment{start: sp.start}))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) >= segMax && slices.ContainsFunc(b[segMax-1024:segMax], func(c byte) bool { return c != 0 }) {
			reused++
		}
		trimmed = len(all) - 1
		if err := sp.trim(all[trimmed-1].end); err != nil {
			t.Fatal(err)
		}
		if segs, frees, _ := sp.list(); len(frees) > spoolFreeMax || len(segs) > 2 {
			t.Fatalf("after trimming: segments %v, kept %v", segs, frees)
		}
	}
	sp.close()
	// The node reopens at the position moved, never before the trim.
	for _, k := range []int{trimmed - 1, trimmed, (trimmed + len(all)) / 2, len(all) - 1} {
		from := all[k].end
		sp, recs, err := openSpoolSized(dir, from, segMax, firstMax)
		if err != nil {
			t.Fatal(err)
		}
		want := all[k+1:]
		if len(recs) != len(want) {
			t.Fatalf("from %d: %d records, wrote %d since", from, len(recs), len(want))
		}
		for i, r := range recs {
			if r.rows[0].User != want[i].user || r.end != want[i].end {
				t.Fatalf("from %d, record %d: %s ending at %d, want %s at %d", from, i, r.rows[0].User, r.end, want[i].user, want[i].end)
			}
		}
		sp.close()
	}
}
