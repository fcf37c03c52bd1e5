package audit

// Packed events. Most of an AuditEvent's bytes are the same in every event
// the API writes: code systems, element names, the fixed codings of the
// interaction, the source and the entities' roles. Stored whole, they were
// two thirds of the audit file: 1,447 bytes of an entry's 2,329 on SQLite,
// and every one of them is written three times (spool, WAL, file) and
// flushed. So the API writes its events packed: JSON in which each of the
// fragments below is one byte, a control byte that JSON text never holds
// raw (the API's encoder escapes every control character in a string, and
// tab, newline and carriage return, which may stand between tokens, are
// not used). The log stores and spools an event as it is given, packed or
// not, and unpacks it wherever the event is read or hashed: an entry's
// leaf, what Search and Entries return, and verification all see the JSON.
// Packing changes what is stored, never what an entry is.
//
// The table is part of the stored format: a fragment is never changed or
// removed, and new ones take unused bytes.
const (
	PackType          = "\x01" // the resourceType and the type coding (rest)
	PackSubtype       = "\x02" // subtype, up to its code
	PackAction        = "\x03"
	PackPeriod        = "\x04" // period, up to its start
	PackEnd           = "\x05"
	PackRecorded      = "\x06" // the period's end, and recorded
	PackOutcome       = "\x07"
	PackOutcomeDesc   = "\x08"
	PackPurpose       = "\x0b" // purposeOfEvent, up to its code
	PackAgents        = "\x0c"
	PackUser          = "\x0e" // the requesting user agent, up to its identifier's value
	PackRole          = "\x0f"
	PackLocation      = "\x10" // the agent's ODS location, up to its value
	PackAnonymous     = "\x11" // the anonymous requestor agent, whole
	PackClientAfter   = "\x12" // a client agent after the user
	PackClientFirst   = "\x13" // a client agent that requests
	PackWho           = "\x14" // who's identifier, up to its value
	PackApplication   = "\x15" // the end of a client agent: its type, Application
	PackSource        = "\x16" // the end of the agents; source, up to its observer's display
	PackSourceType    = "\x17" // the end of source: its type
	PackEntities      = "\x18"
	PackWhat          = "\x19" // an entity, up to its reference
	PackPatientRole   = "\x1a" // the end of a patient entity: role Patient
	PackResourceRole  = "\x1b" // the end of a resource entity: role Domain Resource
	PackQuery         = "\x1c" // a query entity, up to its base64
	PackWhatID        = "\x1d" // an entity, up to its identifier's value
	PackRequestIDType = "\x1e" // the end of a request id entity: its type
)

// fragments is what each packed byte stands for.
var fragments = [0x20]string{
	0x01: `"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"RESTful Operation"}`,
	0x02: `,"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":`,
	0x03: `,"action":`,
	0x04: `,"period":{"start":`,
	0x05: `,"end":`,
	0x06: `},"recorded":`,
	0x07: `,"outcome":`,
	0x08: `,"outcomeDesc":`,
	0x0b: `,"purposeOfEvent":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":`,
	0x0c: `,"agent":[`,
	0x0e: `{"requestor":true,"who":{"identifier":{"value":`,
	0x0f: `,"role":[{"text":`,
	0x10: `,"location":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":`,
	0x11: `{"requestor":true,"who":{"display":"anonymous"}}`,
	0x12: `,{"requestor":false`,
	0x13: `{"requestor":true`,
	0x14: `,"who":{"identifier":{"value":`,
	0x15: `}},"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110150","display":"Application"}]}}`,
	0x16: `],"source":{"observer":{"display":`,
	0x17: `},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4"}]}`,
	0x18: `,"entity":[`,
	0x19: `{"what":{"reference":`,
	0x1a: `},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1","display":"Patient"}}`,
	0x1b: `},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"4","display":"Domain Resource"}}`,
	0x1c: `{"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"24","display":"Query"},"query":"`,
	0x1d: `{"what":{"identifier":{"value":`,
	0x1e: `}},"type":{"system":"https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType","code":"XrequestId"}}`,
}

// unpackedLen is the length of ev unpacked.
func unpackedLen(ev []byte) int {
	n := len(ev)
	for _, c := range ev {
		if c < 0x20 && fragments[c] != "" {
			n += len(fragments[c]) - 1
		}
	}
	return n
}

// appendUnpacked appends ev unpacked to dst. Bytes that stand for no
// fragment (tab, newline, carriage return, or none of the table's) are
// kept as they are.
func appendUnpacked(dst, ev []byte) []byte {
	for len(ev) > 0 {
		i := 0
		for i < len(ev) && (ev[i] >= 0x20 || fragments[ev[i]] == "") {
			i++
		}
		dst = append(dst, ev[:i]...)
		if i == len(ev) {
			break
		}
		dst = append(dst, fragments[ev[i]]...)
		ev = ev[i+1:]
	}
	return dst
}

// UnpackEvent returns the AuditEvent JSON of an event as stored, packed or
// not: ev itself when nothing in it is packed.
func UnpackEvent(ev []byte) []byte {
	n := unpackedLen(ev) // longer than ev exactly when something is packed
	if n == len(ev) {
		return ev
	}
	return appendUnpacked(make([]byte, 0, n), ev)
}
