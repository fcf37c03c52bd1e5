package ingest

import (
	"encoding/json"
	"os"
	"testing"
)

func TestScanBundleAgreesWithTheDecoder(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
	}{
		{"a transaction with nested arrays and brackets in strings", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"a":[1,[2,{"b":"]}["}]]}},{"x":"\"}"}]}`},
		{"entry before type, indented", "{\n  \"entry\" : [ {} , {} , {} ],\n  \"type\" : \"collection\",\n  \"resourceType\" : \"Bundle\"\n}"},
		{"an empty entry array", `{"resourceType":"Bundle","type":"batch","entry":[]}`},
		{"not a bundle", `{"resourceType":"Patient","name":[{"family":"O'Brien"}],"active":true,"n":1.5e3}`},
		{"a nested type and entry are not the bundle's", `{"meta":{"type":"x","entry":[1,2]},"resourceType":"Bundle","type":"searchset"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h bundleHead
			if err := json.Unmarshal([]byte(tc.doc), &h); err != nil {
				t.Fatal(err)
			}
			rt, typ, n, ok := scanBundle([]byte(tc.doc))
			if !ok || rt != h.ResourceType || typ != h.Type || n != len(h.Entry) {
				t.Errorf("got %q %q %d ok=%v, want %q %q %d", rt, typ, n, ok, h.ResourceType, h.Type, len(h.Entry))
			}
		})
	}
}

func TestScanBundleGivesUpOnWhatIsNotAnObject(t *testing.T) {
	for _, doc := range []string{``, `[]`, `{"resourceType":"Bundle"`, `{"entry":[{"a":"b}]}`, `{"type":"tr\u0061nsaction"}`, `{1:2}`} {
		if _, _, _, ok := scanBundle([]byte(doc)); ok {
			t.Errorf("%q: scanned as ok, want the decoder to judge it", doc)
		}
	}
}

func TestScanBundleCountsTheSharedBundles(t *testing.T) {
	files, err := Files([]string{sharedData(t, "us-core")})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var h bundleHead
		if err := json.Unmarshal(data, &h); err != nil {
			t.Fatal(err)
		}
		if rt, typ, n, ok := scanBundle(data); !ok || rt != h.ResourceType || typ != h.Type || n != len(h.Entry) {
			t.Errorf("%s: got %q %q %d ok=%v, want %q %q %d", f, rt, typ, n, ok, h.ResourceType, h.Type, len(h.Entry))
		}
	}
}
