package fhirpath

import "strconv"

// dedup collects distinct values by FHIRPath equality. Small collections
// are compared pairwise; past a few dozen items primitives are keyed in a
// map, so that union, distinct and repeat stay linear on large inputs
// (repeat($this + 1) would otherwise be quadratic up to its limit).
type dedup struct {
	items []Value
	keys  map[string]struct{}
	other []Value // values without a key (objects, quantities), compared pairwise
}

const dedupLinear = 32

// add appends v unless an equal value is present, and reports whether it
// did.
func (d *dedup) add(v Value) bool {
	if d.keys == nil && len(d.items) < dedupLinear {
		if containsValue(d.items, v) {
			return false
		}
		d.items = append(d.items, v)
		return true
	}
	if d.keys == nil {
		d.keys = make(map[string]struct{}, 2*len(d.items))
		for _, w := range d.items {
			d.index(w)
		}
	}
	if k, ok := dedupKey(v); ok {
		if _, dup := d.keys[k]; dup {
			return false
		}
		d.keys[k] = struct{}{}
	} else {
		if containsValue(d.other, v) {
			return false
		}
		d.other = append(d.other, v)
	}
	d.items = append(d.items, v)
	return true
}

func (d *dedup) index(v Value) {
	if k, ok := dedupKey(v); ok {
		d.keys[k] = struct{}{}
	} else {
		d.other = append(d.other, v)
	}
}

// dedupKey is a string equal for two primitives exactly when = says they
// are equal; ok is false for values = compares otherwise.
func dedupKey(v Value) (string, bool) {
	p, ok := prim(v)
	if !ok {
		return "", false
	}
	switch x := p.(type) {
	case bool:
		return strconv.FormatBool(x), true
	case string:
		return "s" + x, true
	case int64:
		return "n" + strconv.FormatFloat(float64(x), 'g', -1, 64), true
	case decimal:
		return "n" + strconv.FormatFloat(decimal{x.f, 8}.round().f, 'g', -1, 64), true
	case dateTime:
		// Different precisions are never equal, and the text keeps them
		// apart; zones are normalised first.
		return "d" + x.utc().String(), true
	}
	return "", false
}
