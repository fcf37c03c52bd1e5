package fhir

import (
	"encoding/json"
	"testing"
)

// FuzzParse checks the decoder on arbitrary bytes: it must not panic, it may
// only fail with an EInvalid *Error, and whatever it accepts must survive an
// encode/decode round trip unchanged (Parse(Marshal(v)) is Equal to v), which
// is what storing a resource and reading it back relies on.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Patient","id":"a","name":[{"given":["A","B"]}],"active":true,"x":null}`,
		`{"a":1.50,"b":-0,"c":1e-7,"d":"\u00e9\ud83d\ude00\n\t\"\\/","e":[[],{}]}`,
		`[1,2,3]`, `"s"`, `true`, `null`, `{"a":{"a":{"a":{}}}}`,
		`{"a":1,"a":2}`, "{\"a\":\"\xff\"}", `{"a":"\ud800"}`, `01`, `{"a":1}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data, 0)
		if err != nil {
			if !IsKind(err, EInvalid) {
				t.Fatalf("Parse failed with %v (kind %q), want EInvalid", err, KindOf(err))
			}
			return
		}
		out := Marshal(v)
		if !json.Valid(out) {
			t.Fatalf("Marshal gave invalid JSON %q for %q", out, data)
		}
		w, err := Parse(out, 0)
		if err != nil {
			t.Fatalf("Parse(Marshal(v)) failed: %v\ninput  %q\nencoded %q", err, data, out)
		}
		if !Equal(v, w) {
			t.Fatalf("round trip changed the value\ninput   %q\nencoded %q", data, out)
		}
		if ind := MarshalIndent(v); !Equal(mustParse(t, ind), v) {
			t.Fatalf("MarshalIndent round trip changed the value: %q", ind)
		}
	})
}

func mustParse(t *testing.T, b []byte) any {
	t.Helper()
	v, err := Parse(b, 0)
	if err != nil {
		t.Fatalf("Parse(%q): %v", b, err)
	}
	return v
}
