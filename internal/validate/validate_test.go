package validate

import (
	"slices"
	"strings"
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// validationCase is one rule: a resource, the mode, and what must come out.
type validationCase struct {
	name    string
	body    string
	lenient bool
	kind    fhir.Kind // "" when the resource is valid
	// exprs must each be the Expression of some issue (error issues when
	// kind is set, warnings otherwise); code, when set, is the code of the
	// issue at exprs[0].
	exprs []string
	code  string
	// after, when set, is what the resource must look like after a lenient
	// validation.
	after string
}

func TestResource(t *testing.T) {
	tests := []validationCase{
		// resourceType and id
		{name: "a minimal patient is valid", body: `{"resourceType":"Patient"}`},
		{name: "a missing resourceType is rejected", body: `{"id":"a"}`, kind: fhir.EInvalid, code: CodeRequired},
		{name: "an unknown resourceType is rejected", body: `{"resourceType":"Patientt"}`, kind: fhir.EInvalid, exprs: []string{"resourceType"}},
		{name: "an abstract resourceType is rejected", body: `{"resourceType":"DomainResource"}`, kind: fhir.EInvalid, exprs: []string{"resourceType"}},
		{name: "a data type is not a resourceType", body: `{"resourceType":"HumanName"}`, kind: fhir.EInvalid, exprs: []string{"resourceType"}},
		{name: "a non-string resourceType is rejected", body: `{"resourceType":1}`, kind: fhir.EInvalid, exprs: []string{"resourceType"}},
		{name: "an id with an underscore is rejected", body: `{"resourceType":"Patient","id":"a_b"}`, kind: fhir.EInvalid, exprs: []string{"Patient.id"}, code: CodeValue},
		{name: "an id longer than 64 is rejected", body: `{"resourceType":"Patient","id":"` + strings.Repeat("a", 65) + `"}`, kind: fhir.EInvalid, exprs: []string{"Patient.id"}},
		{name: "a numeric id is rejected", body: `{"resourceType":"Patient","id":12}`, kind: fhir.EInvalid, exprs: []string{"Patient.id"}, code: CodeValue},

		// unknown elements
		{name: "an unknown element is rejected in strict mode", body: `{"resourceType":"Patient","foo":1}`, kind: fhir.EInvalid, exprs: []string{"Patient.foo"}, code: CodeStructure},
		{name: "an unknown nested element is rejected with its path", body: `{"resourceType":"Patient","name":[{"family":"A"},{"family":"B","nickname":"C"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[1].nickname"}},
		{name: "an unknown element is dropped with a warning in lenient mode", lenient: true,
			body:  `{"resourceType":"Observation","status":"final","code":{"text":"x"},"context":{"reference":"Encounter/1"}}`,
			exprs: []string{"Observation.context"}, after: `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`},
		{name: "an unknown primitive extension is dropped in lenient mode", lenient: true,
			body:  `{"resourceType":"Patient","_foo":{"id":"x"},"gender":"male"}`,
			exprs: []string{"Patient._foo"}, after: `{"resourceType":"Patient","gender":"male"}`},
		{name: "an object left empty by lenient drops is dropped too", lenient: true,
			body:  `{"resourceType":"Patient","name":[{"nickname":"x"},{"family":"A"}],"maritalStatus":{"foo":1}}`,
			exprs: []string{"Patient.name[0].nickname", "Patient.name", "Patient.maritalStatus.foo", "Patient.maritalStatus"},
			after: `{"resourceType":"Patient","name":[{"family":"A"}]}`},
		{name: "a primitive extension left empty by lenient drops becomes null", lenient: true,
			body:  `{"resourceType":"Patient","name":[{"given":["A","B"],"_given":[{"foo":1},{"id":"g"}]}],"_birthDate":{"foo":1}}`,
			exprs: []string{"Patient.name[0].given[0].foo", "Patient.birthDate.foo"},
			after: `{"resourceType":"Patient","name":[{"given":["A","B"],"_given":[null,{"id":"g"}]}]}`},
		{name: "a required element left empty by lenient drops is still missing", lenient: true,
			body: `{"resourceType":"Observation","status":"final","code":{"foo":1}}`, kind: fhir.EInvalid, exprs: []string{"Observation.code"}, code: CodeRequired},
		{name: "lenient mode still rejects other errors", lenient: true, body: `{"resourceType":"Patient","foo":1,"gender":"boy"}`, kind: fhir.EInvalid, exprs: []string{"Patient.gender"}},
		{name: "resourceType inside a data type is an unknown element", body: `{"resourceType":"Patient","name":[{"resourceType":"HumanName"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[0].resourceType"}},

		// cardinality
		{name: "a repeating element given as a single value is rejected", body: `{"resourceType":"Patient","name":{"family":"A"}}`, kind: fhir.EInvalid, exprs: []string{"Patient.name"}, code: CodeStructure},
		{name: "a single-valued element given as an array is rejected", body: `{"resourceType":"Patient","gender":["male"]}`, kind: fhir.EInvalid, exprs: []string{"Patient.gender"}, code: CodeStructure},
		{name: "a repeating primitive given as a single value is rejected", body: `{"resourceType":"Patient","name":[{"given":"A"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[0].given"}},
		{name: "an empty array is rejected", body: `{"resourceType":"Patient","name":[]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name"}},
		{name: "an empty object is rejected", body: `{"resourceType":"Patient","maritalStatus":{}}`, kind: fhir.EInvalid, exprs: []string{"Patient.maritalStatus"}},
		{name: "an empty object inside an array is rejected", body: `{"resourceType":"Patient","name":[{}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[0]"}},
		{name: "a null value is rejected", body: `{"resourceType":"Patient","gender":null}`, kind: fhir.EInvalid, exprs: []string{"Patient.gender"}},
		{name: "a null in an array is rejected", body: `{"resourceType":"Patient","name":[null]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[0]"}},
		{name: "a null in a primitive array without a companion is rejected", body: `{"resourceType":"Patient","name":[{"given":["A",null]}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[0].given[1]"}},

		// required elements
		{name: "a missing required element is rejected", body: `{"resourceType":"Observation","code":{"text":"x"}}`, kind: fhir.EInvalid, exprs: []string{"Observation.status"}, code: CodeRequired},
		{name: "a missing required element of a backbone is rejected", body: `{"resourceType":"Patient","link":[{"type":"seealso"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.link[0].other"}, code: CodeRequired},
		{name: "a missing required element of a data type is rejected", body: `{"resourceType":"Patient","extension":[{"valueString":"x"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.extension[0].url"}, code: CodeRequired},
		{name: "a required primitive given only as an extension is present", body: `{"resourceType":"Observation","_status":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]},"code":{"text":"x"}}`},
		{name: "a required choice element is satisfied by any of its types", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"component":[{"code":{"text":"c"},"valueString":"v"}]}`},
		{name: "all missing required elements are reported", body: `{"resourceType":"Observation"}`, kind: fhir.EInvalid, exprs: []string{"Observation.status", "Observation.code"}},

		// primitive kinds and formats
		{name: "a boolean given as a string is rejected", body: `{"resourceType":"Patient","active":"true"}`, kind: fhir.EInvalid, exprs: []string{"Patient.active"}, code: CodeValue},
		{name: "a decimal given as a string is rejected", body: obs(`"valueQuantity":{"value":"1.5"}`), kind: fhir.EInvalid, exprs: []string{"Observation.valueQuantity.value"}, code: CodeValue},
		{name: "a decimal keeps its precision and exponent form", body: obs(`"valueQuantity":{"value":1.50e2}`)},
		{name: "an integer with a fraction is rejected", body: obs(`"valueInteger":1.5`), kind: fhir.EInvalid, exprs: []string{"Observation.valueInteger"}},
		{name: "an integer above 2147483647 is rejected", body: obs(`"valueInteger":2147483648`), kind: fhir.EInvalid, exprs: []string{"Observation.valueInteger"}},
		{name: "an integer of -2147483648 is valid", body: obs(`"valueInteger":-2147483648`)},
		{name: "an unsignedInt of 0 is valid", body: `{"resourceType":"Patient","multipleBirthInteger":1,"photo":[{"size":0}]}`},
		{name: "a positiveInt must be more than 0", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueSampledData":{"origin":{"value":0},"period":1,"dimensions":0}}`, kind: fhir.EInvalid, exprs: []string{"Observation.valueSampledData.dimensions"}},
		{name: "an unsignedInt must not be negative", body: `{"resourceType":"Patient","photo":[{"size":-1}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.photo[0].size"}},
		{name: "an empty string is rejected", body: `{"resourceType":"Patient","name":[{"family":""}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[0].family"}, code: CodeValue},
		{name: "a string with a control character is rejected", body: `{"resourceType":"Patient","name":[{"family":"A\u0007"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[0].family"}},
		{name: "a date with an impossible day is rejected", body: `{"resourceType":"Patient","birthDate":"2023-02-30"}`, kind: fhir.EInvalid, exprs: []string{"Patient.birthDate"}, code: CodeValue},
		{name: "a dateTime without a zone is rejected", body: obs(`"effectiveDateTime":"2023-01-01T10:00:00"`), kind: fhir.EInvalid, exprs: []string{"Observation.effectiveDateTime"}},
		{name: "an instant without seconds is rejected", body: obs(`"issued":"2023-01-01T10:00Z"`), kind: fhir.EInvalid, exprs: []string{"Observation.issued"}},
		{name: "a time with a zone is rejected", body: obs(`"valueTime":"10:00:00Z"`), kind: fhir.EInvalid, exprs: []string{"Observation.valueTime"}},
		{name: "a uri with a space is rejected", body: `{"resourceType":"Patient","identifier":[{"system":"http://x y","value":"1"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.identifier[0].system"}},
		{name: "a code with a double space is rejected", body: `{"resourceType":"Patient","language":"en  GB"}`, kind: fhir.EInvalid, exprs: []string{"Patient.language"}},
		{name: "a code with a leading space is rejected", body: `{"resourceType":"Patient","name":[{"use":" official"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[0].use"}},
		{name: "invalid base64 is rejected", body: `{"resourceType":"Patient","photo":[{"data":"abc"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.photo[0].data"}},
		{name: "an oid without the urn prefix is rejected", body: `{"resourceType":"Patient","extension":[{"url":"http://x","valueOid":"1.2.3"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.extension[0].valueOid"}},
		{name: "a narrative div must be XHTML", body: `{"resourceType":"Patient","text":{"status":"generated","div":"hello"}}`, kind: fhir.EInvalid, exprs: []string{"Patient.text.div"}},
		{name: "a string given as a number is rejected", body: `{"resourceType":"Patient","name":[{"family":1}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[0].family"}},
		{name: "a data type given as a string is rejected", body: `{"resourceType":"Patient","maritalStatus":"M"}`, kind: fhir.EInvalid, exprs: []string{"Patient.maritalStatus"}},

		// required bindings
		{name: "a code outside its required binding is rejected", body: `{"resourceType":"Patient","gender":"m"}`, kind: fhir.EInvalid, exprs: []string{"Patient.gender"}, code: CodeCodeInvalid},
		{name: "a code of a required binding in a backbone is checked", body: `{"resourceType":"Observation","status":"done","code":{"text":"x"}}`, kind: fhir.EInvalid, exprs: []string{"Observation.status"}, code: CodeCodeInvalid},

		// choice types
		{name: "a typed choice element is valid", body: obs(`"valueQuantity":{"value":1,"unit":"mg"}`)},
		{name: "a bare choice name is rejected", body: obs(`"value":1`), kind: fhir.EInvalid, exprs: []string{"Observation.value"}, code: CodeStructure},
		{name: "two types of one choice are rejected", body: obs(`"valueString":"a","valueBoolean":true`), kind: fhir.EInvalid, exprs: []string{"Observation.valueString"}, code: CodeStructure},
		{name: "a choice value and another type's primitive extension are two types", body: obs(`"valueString":"a","_valueBoolean":{"id":"b"}`), kind: fhir.EInvalid, exprs: []string{"Observation.valueString"}},
		{name: "different choice elements may each be given", body: obs(`"valueString":"a","effectiveDateTime":"2023"`)},
		{name: "a choice type not allowed for the element is rejected", body: obs(`"valueUuid":"urn:uuid:c757873d-ec9a-4326-a141-556f43239520"`), kind: fhir.EInvalid, exprs: []string{"Observation.valueUuid"}},
		{name: "a choice element and its primitive extension are one value", body: obs(`"valueString":"a","_valueString":{"id":"v"}`)},

		// primitive extensions
		{name: "a primitive extension object is valid", body: `{"resourceType":"Patient","birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-01-01T10:00:00Z"}]}}`},
		{name: "a primitive extension alone is valid", body: `{"resourceType":"Patient","_birthDate":{"id":"b"}}`},
		{name: "a primitive extension must be an object", body: `{"resourceType":"Patient","_birthDate":"x"}`, kind: fhir.EInvalid, exprs: []string{"Patient._birthDate"}},
		{name: "a primitive extension with an unknown element is rejected", body: `{"resourceType":"Patient","_birthDate":{"value":"x"}}`, kind: fhir.EInvalid, exprs: []string{"Patient.birthDate.value"}},
		{name: "a primitive extension on a complex element is rejected", body: `{"resourceType":"Patient","_maritalStatus":{"id":"x"}}`, kind: fhir.EInvalid, exprs: []string{"Patient._maritalStatus"}},
		{name: "aligned primitive arrays with nulls are valid", body: `{"resourceType":"Patient","name":[{"given":["A",null],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]}]}`},
		{name: "a primitive extension array alone is valid", body: `{"resourceType":"Patient","name":[{"_given":[{"id":"g"}]}]}`},
		{name: "misaligned primitive arrays are rejected", body: `{"resourceType":"Patient","name":[{"given":["A","B"],"_given":[{"id":"g"}]}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[0]._given"}},
		{name: "a null on both sides of aligned arrays is rejected", body: `{"resourceType":"Patient","name":[{"given":["A",null],"_given":[{"id":"g"},null]}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[0].given[1]"}},
		{name: "an error inside a primitive extension array is located", body: `{"resourceType":"Patient","name":[{"given":["A","B"],"_given":[null,{"extension":[{"url":"http://x"}]}]}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.name[0].given[1].extension[0]"}},

		// extensions
		{name: "an extension with neither value nor extensions is rejected", body: `{"resourceType":"Patient","extension":[{"url":"http://x"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.extension[0]"}, code: CodeInvalid},
		{name: "an extension with both value and extensions is rejected", body: `{"resourceType":"Patient","extension":[{"url":"http://x","valueString":"a","extension":[{"url":"b","valueString":"c"}]}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.extension[0]"}},
		{name: "a nested extension is valid", body: `{"resourceType":"Patient","extension":[{"url":"http://x","extension":[{"url":"ombCategory","valueCoding":{"code":"2106-3"}}]}]}`},
		{name: "a modifier extension is checked like an extension", body: `{"resourceType":"Patient","modifierExtension":[{"url":"http://x"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.modifierExtension[0]"}},

		// contained and nested resources
		{name: "a contained resource is validated as its own type", body: `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","active":"yes"}],"managingOrganization":{"reference":"#o"}}`, kind: fhir.EInvalid, exprs: []string{"Patient.contained[0].active"}},
		{name: "a contained resource must not contain resources", body: `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","contained":[{"resourceType":"Organization","id":"p"}]}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.contained[0].contained"}},
		{name: "a contained resource must not have a versionId", body: `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","meta":{"versionId":"1"}}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.contained[0].meta.versionId"}},
		{name: "a contained resource must not have security labels", body: `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","meta":{"security":[{"code":"R"}]}}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.contained[0].meta.security"}},
		{name: "a contained resource without resourceType is rejected", body: `{"resourceType":"Patient","contained":[{"id":"o"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.contained[0]"}},
		{name: "a bundle entry resource is validated as its own type", body: `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","gender":"x"},"request":{"method":"POST","url":"Patient"}}]}`, kind: fhir.EInvalid, exprs: []string{"Bundle.entry[0].resource.gender"}},
		{name: "a parameters resource is validated as its own type", body: `{"resourceType":"Parameters","parameter":[{"name":"p","resource":{"resourceType":"Patient","foo":1}}]}`, kind: fhir.EInvalid, exprs: []string{"Parameters.parameter[0].resource.foo"}},
		{name: "a bundle inside a bundle is validated", body: `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","active":1}}]}}]}`, kind: fhir.EInvalid, exprs: []string{"Bundle.entry[0].resource.entry[0].resource.active"}},

		// references
		{name: "a relative reference is valid", body: obs(`"subject":{"reference":"Patient/123"}`)},
		{name: "a versioned reference is valid", body: obs(`"subject":{"reference":"Patient/123/_history/2"}`)},
		{name: "a urn:uuid reference is valid", body: obs(`"subject":{"reference":"urn:uuid:C757873D-ec9a-4326-a141-556f43239520"}`)},
		{name: "an absolute reference is valid", body: obs(`"subject":{"reference":"https://example.org/fhir/Patient/1"}`)},
		{name: "a conditional reference is valid", body: obs(`"subject":{"reference":"Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"}`)},
		{name: "a reference to an unknown type is rejected", body: obs(`"subject":{"reference":"Patientt/123"}`), kind: fhir.EInvalid, exprs: []string{"Observation.subject.reference"}, code: CodeInvalid},
		{name: "a reference to a type the element does not allow is rejected", body: obs(`"subject":{"reference":"Medication/1"}`), kind: fhir.EInvalid, exprs: []string{"Observation.subject.reference"}},
		{name: "a reference without an id is rejected", body: obs(`"subject":{"reference":"Patient/"}`), kind: fhir.EInvalid, exprs: []string{"Observation.subject.reference"}},
		{name: "a reference with a bad history segment is rejected", body: obs(`"subject":{"reference":"Patient/1/history/2"}`), kind: fhir.EInvalid, exprs: []string{"Observation.subject.reference"}},
		{name: "a malformed urn:uuid reference is rejected", body: obs(`"subject":{"reference":"urn:uuid:1234"}`), kind: fhir.EInvalid, exprs: []string{"Observation.subject.reference"}},
		{name: "a reference to any resource accepts any type", body: obs(`"focus":[{"reference":"Medication/1"}]`)},
		{name: "a reference type naming an unknown resource is rejected", body: obs(`"subject":{"type":"Patientt","identifier":{"value":"1"}}`), kind: fhir.EInvalid, exprs: []string{"Observation.subject.type"}, code: CodeInvalid},
		{name: "a reference type contradicting the reference is rejected", body: obs(`"subject":{"type":"Group","reference":"Patient/1"}`), kind: fhir.EInvalid, exprs: []string{"Observation.subject.type"}},
		{name: "a reference type not allowed by the element is rejected", body: obs(`"subject":{"type":"Medication","display":"x"}`), kind: fhir.EInvalid, exprs: []string{"Observation.subject.type"}},
		{name: "a reference type agreeing with the reference is valid", body: obs(`"subject":{"type":"Patient","reference":"Patient/1"}`)},
		{name: "a reference type given as a URL is not checked", body: obs(`"subject":{"type":"http://example.org/StructureDefinition/Thing","display":"x"}`)},
		{name: "targets of a reference inside an identifier's assigner are its own", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"identifier":{"value":"1","assigner":{"reference":"Organization/o"}}}}`},

		// NHS numbers
		{name: "a valid NHS number is accepted", body: nhs("9434765919")},
		{name: "an NHS number with a wrong check digit is unprocessable", body: nhs("9434765918"), kind: fhir.EUnprocessable, exprs: []string{"Patient.identifier[0].value"}, code: CodeBusinessRule},
		{name: "an NHS number with spaces is unprocessable", body: nhs("943 476 5919"), kind: fhir.EUnprocessable, exprs: []string{"Patient.identifier[0].value"}},
		{name: "an NHS number of nine digits is unprocessable", body: nhs("943476591"), kind: fhir.EUnprocessable, exprs: []string{"Patient.identifier[0].value"}},
		{name: "an NHS number in a reference identifier is checked", body: obs(`"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"1234567890"}}`), kind: fhir.EUnprocessable, exprs: []string{"Observation.subject.identifier.value"}},
		{name: "an NHS number of a related person is checked", body: `{"resourceType":"RelatedPerson","patient":{"reference":"Patient/1"},"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"0000000000"}]}`, kind: fhir.EUnprocessable, exprs: []string{"RelatedPerson.identifier[0].value"}},
		{name: "an NHS number identifier without a value is unprocessable", body: `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number"}]}`, kind: fhir.EUnprocessable, exprs: []string{"Patient.identifier[0].value"}},
		{name: "an NHS number error with a base error is invalid and reports both", body: `{"resourceType":"Patient","gender":"x","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"1"}]}`, kind: fhir.EInvalid, exprs: []string{"Patient.identifier[0].value", "Patient.gender"}},
		{name: "another system's identifier is not an NHS number", body: `{"resourceType":"Patient","identifier":[{"system":"http://example.org","value":"1"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runCase(t, tt) })
	}
}

func obs(extra string) string {
	return `{"resourceType":"Observation","status":"final","code":{"text":"x"},` + extra + `}`
}

func nhs(n string) string {
	return `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + n + `"}]}`
}

func runCase(t *testing.T, tt validationCase) {
	t.Helper()
	r, err := fhir.ParseObject([]byte(tt.body), 0)
	if err != nil {
		t.Fatalf("test body does not parse: %v", err)
	}
	warnings, err := Resource(r, Options{Lenient: tt.lenient})
	if got := fhir.KindOf(err); got != tt.kind {
		t.Fatalf("kind = %q, want %q; err = %v; warnings = %v", got, tt.kind, err, warnings)
	}
	issues := warnings
	if err != nil {
		issues = err.(*fhir.Error).Issues
	}
	for i, want := range tt.exprs {
		j := slices.IndexFunc(issues, func(is fhir.Issue) bool { return is.Expression == want })
		if j < 0 {
			t.Errorf("no issue at %q; issues: %v", want, issues)
			continue
		}
		if i == 0 && tt.code != "" && issues[j].Code != tt.code {
			t.Errorf("issue at %q has code %q, want %q (%s)", want, issues[j].Code, tt.code, issues[j].Diagnostics)
		}
		if issues[j].Diagnostics == "" {
			t.Errorf("issue at %q has no diagnostics", want)
		}
	}
	if tt.kind != "" {
		for _, is := range issues {
			if is.Severity != fhir.SeverityError {
				t.Errorf("issue %v has severity %q, want error", is, is.Severity)
			}
		}
	}
	if tt.after != "" {
		want, _ := fhir.ParseObject([]byte(tt.after), 0)
		if !fhir.Equal(r, want) {
			t.Errorf("after lenient validation got %s, want %s", fhir.Marshal(r), tt.after)
		}
	}
}

// TestGoNumbersAreNumbers covers objects built in Go (the engine stamps
// some values itself): Go ints and floats count as JSON numbers.
func TestGoNumbersAreNumbers(t *testing.T) {
	r := fhir.Object{"resourceType": "Observation", "status": "final", "code": fhir.Object{"text": "x"},
		"valueQuantity": fhir.Object{"value": 1.5}, "component": []any{
			fhir.Object{"code": fhir.Object{"text": "c"}, "valueInteger": 3},
			fhir.Object{"code": fhir.Object{"text": "d"}, "valueInteger": 2.5},
		}}
	_, err := Resource(r, Options{})
	e, ok := err.(*fhir.Error)
	if !ok || len(e.Issues) != 1 || e.Issues[0].Expression != "Observation.component[1].valueInteger" {
		t.Fatalf("err = %v, want one issue at Observation.component[1].valueInteger", err)
	}
}

func TestManyIssuesAreAllReportedUpToTheBound(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Patient","name":[`)
	for i := range 150 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"family":1}`)
	}
	b.WriteString(`]}`)
	r, _ := fhir.ParseObject([]byte(b.String()), 0)
	_, err := Resource(r, Options{})
	e, ok := err.(*fhir.Error)
	if !ok {
		t.Fatalf("err = %v, want *fhir.Error", err)
	}
	if len(e.Issues) != MaxIssues+1 {
		t.Errorf("got %d issues, want %d and a note of the rest", len(e.Issues), MaxIssues+1)
	}
	if last := e.Issues[len(e.Issues)-1]; !strings.Contains(last.Diagnostics, "stopped after 100") {
		t.Errorf("last issue = %q, want a note that validation stopped", last.Diagnostics)
	}
	for i, is := range e.Issues[:MaxIssues] {
		if is.Expression == "" || !strings.HasPrefix(is.Expression, "Patient.name[") {
			t.Errorf("issue %d at %q, want Patient.name[n].family", i, is.Expression)
		}
	}
}

func TestIssuesComeInAStableOrder(t *testing.T) {
	body := `{"resourceType":"Patient","gender":"x","active":"y","birthDate":"z","foo":1,"bar":2}`
	var first []fhir.Issue
	for i := range 20 {
		r, _ := fhir.ParseObject([]byte(body), 0)
		_, err := Resource(r, Options{})
		got := err.(*fhir.Error).Issues
		if i == 0 {
			first = got
			if len(got) != 5 {
				t.Fatalf("got %d issues, want 5: %v", len(got), got)
			}
			continue
		}
		if !slices.Equal(got, first) {
			t.Fatalf("run %d gave %v, first run %v", i, got, first)
		}
	}
}

// TestConcurrentValidation runs validations from many goroutines (the
// engine validates bundle entries and requests in parallel); run with -race
// it checks the pooled validators and the lazily compiled model are safe.
func TestConcurrentValidation(t *testing.T) {
	bodies := []struct {
		body string
		kind fhir.Kind
	}{
		{obs(`"valueQuantity":{"value":1}`), ""},
		{nhs("9434765918"), fhir.EUnprocessable},
		{`{"resourceType":"Patient","gender":"x"}`, fhir.EInvalid},
	}
	errs := make(chan string, 64)
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				c := bodies[(g+i)%len(bodies)]
				r, _ := fhir.ParseObject([]byte(c.body), 0)
				if _, err := Resource(r, Options{Lenient: i%2 == 0}); fhir.KindOf(err) != c.kind {
					select {
					case errs <- c.body + ": " + string(fhir.KindOf(err)):
					default:
					}
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
