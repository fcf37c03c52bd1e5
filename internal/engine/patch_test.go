package engine

import (
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// TestJSONPatchRFC6902 applies patches to plain JSON documents (not
// resources), to check the RFC 6901/6902 rules that FHIR element names
// never exercise.
func TestJSONPatchRFC6902(t *testing.T) {
	for _, tc := range []struct {
		name, doc, patch, want string
		kind                   fhir.Kind
	}{
		{"~1 in a pointer is a slash", `{"a/b":1}`, `[{"op":"replace","path":"/a~1b","value":2}]`, `{"a/b":2}`, ""},
		{"~0 in a pointer is a tilde", `{"m~n":1}`, `[{"op":"remove","path":"/m~0n"}]`, `{}`, ""},
		{"~01 is a tilde followed by 1", `{"~1":1}`, `[{"op":"copy","from":"/~01","path":"/x"}]`, `{"~1":1,"x":1}`, ""},
		{"an empty key is a pointer to it", `{"":1}`, `[{"op":"replace","path":"/","value":3}]`, `{"":3}`, ""},
		{"test compares numbers by value", `{"n":1.0}`, `[{"op":"test","path":"/n","value":1}]`, `{"n":1.0}`, ""},
		{"test compares objects regardless of member order", `{"o":{"a":1,"b":2}}`, `[{"op":"test","path":"/o","value":{"b":2,"a":1}}]`, `{"o":{"a":1,"b":2}}`, ""},
		{"test fails on a different type", `{"n":1}`, `[{"op":"test","path":"/n","value":"1"}]`, "", fhir.EUnprocessable},
		{"add at the end index of an array appends", `{"a":[1]}`, `[{"op":"add","path":"/a/1","value":2}]`, `{"a":[1,2]}`, ""},
		{"add past the end of an array fails", `{"a":[1]}`, `[{"op":"add","path":"/a/2","value":2}]`, "", fhir.EUnprocessable},
		{"an index with a leading zero fails", `{"a":[1,2]}`, `[{"op":"remove","path":"/a/01"}]`, "", fhir.EUnprocessable},
		{"add to a missing parent fails", `{}`, `[{"op":"add","path":"/a/b","value":1}]`, "", fhir.EUnprocessable},
		{"move into its own child is invalid", `{"a":{"b":1}}`, `[{"op":"move","from":"/a","path":"/a/b/c"}]`, "", fhir.EInvalid},
		{"move removes from the source", `{"a":{"b":1},"c":{}}`, `[{"op":"move","from":"/a/b","path":"/c/d"}]`, `{"a":{},"c":{"d":1}}`, ""},
		{"operations apply in order", `{"a":[1,2,3]}`, `[{"op":"remove","path":"/a/0"},{"op":"remove","path":"/a/0"}]`, `{"a":[3]}`, ""},
		{"add without a value is invalid", `{}`, `[{"op":"add","path":"/a"}]`, "", fhir.EInvalid},
		{"replace of the whole document", `{"a":1}`, `[{"op":"replace","path":"","value":{"b":2}}]`, `{"b":2}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, err := parsePatch([]byte(tc.patch))
			var got any
			if err == nil {
				got, err = applyPatch(obj(t, tc.doc), ops)
			}
			if tc.kind != "" {
				wantKind(t, err, tc.kind)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !fhir.Equal(got, obj(t, tc.want)) {
				t.Errorf("got %s, want %s", fhir.Marshal(got), tc.want)
			}
		})
	}
}
