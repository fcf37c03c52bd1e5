package validate

import (
	"testing"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

func TestPrimitiveFormats(t *testing.T) {
	tests := []struct {
		name  string
		check func(string) bool
		in    string
		want  bool
	}{
		{"a date may be a year", validDate, "2023", true},
		{"a date may be a year and month", validDate, "2023-07", true},
		{"a date may be a full date", validDate, "2023-07-14", true},
		{"a date accepts 29 February in a leap year", validDate, "2024-02-29", true},
		{"a date accepts 29 February in a 400-year leap year", validDate, "2000-02-29", true},
		{"a date rejects 29 February in a common year", validDate, "2023-02-29", false},
		{"a date rejects 29 February in a century year", validDate, "1900-02-29", false},
		{"a date rejects 31 April", validDate, "2023-04-31", false},
		{"a date rejects month 13", validDate, "2023-13-01", false},
		{"a date rejects month 00", validDate, "2023-00", false},
		{"a date rejects day 00", validDate, "2023-01-00", false},
		{"a date rejects year 0000", validDate, "0000", false},
		{"a date rejects a time", validDate, "2023-07-14T10:00:00Z", false},
		{"a date rejects single-digit months", validDate, "2023-7-14", false},
		{"a date rejects a trailing dash", validDate, "2023-", false},
		{"a date rejects two-digit years", validDate, "23", false},
		{"a date rejects surrounding space", validDate, " 2023", false},

		{"a dateTime may be a year", validDateTime, "2023", true},
		{"a dateTime may be a full date", validDateTime, "2023-07-14", true},
		{"a dateTime with time and Z is valid", validDateTime, "2023-07-14T10:20:30Z", true},
		{"a dateTime with fractional seconds and offset is valid", validDateTime, "2023-07-14T10:20:30.123+01:00", true},
		{"a dateTime accepts a leap second", validDateTime, "2016-12-31T23:59:60Z", true},
		{"a dateTime accepts offset +14:00", validDateTime, "2023-07-14T10:20:30+14:00", true},
		{"a dateTime rejects offset +14:30", validDateTime, "2023-07-14T10:20:30+14:30", false},
		{"a dateTime with a time needs a zone", validDateTime, "2023-07-14T10:20:30", false},
		{"a dateTime with a time needs seconds", validDateTime, "2023-07-14T10:20Z", false},
		{"a dateTime rejects hour 24", validDateTime, "2023-07-14T24:00:00Z", false},
		{"a dateTime rejects a time on a partial date", validDateTime, "2023-07T10:20:30Z", false},
		{"a dateTime rejects an empty fraction", validDateTime, "2023-07-14T10:20:30.Z", false},
		{"a dateTime rejects a space separator", validDateTime, "2023-07-14 10:20:30Z", false},
		{"a dateTime rejects an offset without colon", validDateTime, "2023-07-14T10:20:30+0100", false},

		{"an instant needs a full date and time", validInstant, "2023-07-14T10:20:30.000Z", true},
		{"an instant rejects a date alone", validInstant, "2023-07-14", false},
		{"an instant rejects a missing zone", validInstant, "2023-07-14T10:20:30", false},

		{"a time is hh:mm:ss", validTime, "10:20:30", true},
		{"a time may have a fraction", validTime, "10:20:30.5", true},
		{"a time has no zone", validTime, "10:20:30Z", false},
		{"a time needs seconds", validTime, "10:20", false},
		{"a time rejects minute 60", validTime, "10:60:00", false},

		{"an id of letters, digits, dash and dot is valid", validID, "a-B.9", true},
		{"an id of 64 characters is valid", validID, "0123456789012345678901234567890123456789012345678901234567890123", true},
		{"an id of 65 characters is invalid", validID, "01234567890123456789012345678901234567890123456789012345678901234", false},
		{"an id with an underscore is invalid", validID, "a_b", false},
		{"an empty id is invalid", validID, "", false},
		{"an id with a slash is invalid", validID, "a/b", false},

		{"a code may contain single spaces", validCode, "a b c", true},
		{"a code rejects a leading space", validCode, " ab", false},
		{"a code rejects a trailing space", validCode, "ab ", false},
		{"a code rejects a double space", validCode, "a  b", false},
		{"a code rejects a tab next to a space", validCode, "a \tb", false},

		{"a uri may be a URN", validURI, "urn:ietf:rfc:3986", true},
		{"a uri rejects a space", validURI, "http://example.org/a b", false},
		{"a uri rejects a newline", validURI, "http://example.org/\n", false},

		{"an oid is urn:oid: and dotted numbers", validOID, "urn:oid:2.16.840.1.113883", true},
		{"an oid must start with 0, 1 or 2", validOID, "urn:oid:3.1", false},
		{"an oid has no leading zeros", validOID, "urn:oid:1.02", false},
		{"an oid needs at least two arcs", validOID, "urn:oid:1", false},
		{"an oid has no empty arc", validOID, "urn:oid:1..2", false},
		{"an oid needs the urn prefix", validOID, "1.2.3", false},

		{"a uuid is urn:uuid: and lower-case hex", validUUID, "urn:uuid:c757873d-ec9a-4326-a141-556f43239520", true},
		{"a uuid rejects upper-case hex", validUUID, "urn:uuid:C757873D-EC9A-4326-A141-556F43239520", false},
		{"a uuid rejects a missing dash", validUUID, "urn:uuid:c757873dec9a-4326-a141-556f43239520", false},

		{"base64 in groups of four is valid", validBase64, "aGVsbG8gd29ybGQ=", true},
		{"base64 with slash and plus is valid", validBase64, "ab/+", true},
		{"base64 with line breaks is valid", validBase64, "aGVs\nbG8=", true},
		{"base64 of a wrong length is invalid", validBase64, "abc", false},
		{"base64 with padding in the middle is invalid", validBase64, "ab==cd==", false},
		{"base64 with three pad characters is invalid", validBase64, "a===", false},
		{"base64 with a foreign character is invalid", validBase64, "ab*d", false},
		{"empty base64 is invalid", validBase64, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.check(tt.in); got != tt.want {
				t.Errorf("check(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// TestValidIDMatchesFhirValidID keeps the hand-written id check equal to the
// regex the rest of the system uses.
func TestValidIDMatchesFhirValidID(t *testing.T) {
	for _, s := range []string{"", "a", "A-1.b", "a_b", "a b", "é", "0123456789012345678901234567890123456789012345678901234567890123",
		"01234567890123456789012345678901234567890123456789012345678901234", "a/b", "..", "-"} {
		if got, want := validID(s), fhir.ValidID(s); got != want {
			t.Errorf("validID(%q) = %v, fhir.ValidID = %v", s, got, want)
		}
	}
}

func TestValidString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"text with tabs and newlines is valid", "a\tb\r\nc", true},
		{"whitespace-only text is accepted (the specification only says SHOULD)", "   ", true},
		{"an empty string is invalid", "", false},
		{"a NUL character is invalid", "a\x00b", false},
		{"an escape character is invalid", "a\x1bb", false},
		{"DEL is invalid", "a\x7fb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := validString(tt.in); got != tt.want {
				t.Errorf("validString(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
