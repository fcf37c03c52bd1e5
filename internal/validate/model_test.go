package validate

import (
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir/r4"
)

// TestModelCoversEveryResourceType checks the compiled model: every concrete
// resource type has a node, every field of every reachable node knows how to
// check its values, and no object has more choice groups than the walk
// tracks (object keeps them in a fixed array).
func TestModelCoversEveryResourceType(t *testing.T) {
	m := getModel()
	seen := map[*node]bool{}
	var walk func(n *node)
	walk = func(n *node) {
		if seen[n] {
			return
		}
		seen[n] = true
		if len(n.choices) > 8 {
			t.Errorf("%s has %d choice elements; object tracks at most 8", n.name, len(n.choices))
		}
		for name, f := range n.fields {
			switch {
			case f.bare:
			case f.kind == kPrimitive && f.prim == 0:
				t.Errorf("%s.%s: primitive without a check", n.name, name)
			case f.kind == kComplex && f.node == nil:
				t.Errorf("%s.%s: complex type %q without a node", n.name, name, f.typ)
			case f.kind == 0:
				t.Errorf("%s.%s: type %q is not known to the validator", n.name, name, f.typ)
			case f.kind == kComplex:
				walk(f.node)
			}
		}
	}
	for _, rt := range r4.ResourceTypes() {
		n := m.types[rt]
		if n == nil {
			t.Errorf("no node for %s", rt)
			continue
		}
		walk(n)
	}
	if len(seen) < 500 {
		t.Errorf("only %d nodes reachable; the model looks truncated", len(seen))
	}
	t.Logf("%d object shapes compiled", len(seen))
}
