// Package demo holds the small UK-shaped record that "sharedcare demo" loads
// into a fresh node, so that a newcomer has something to read, search and
// change within a minute of cloning the repository.
//
// The record is a transaction bundle of PUTs with fixed ids: loading it twice
// changes nothing, so the demo can be restarted on the same data folder.
package demo

import _ "embed"

// Bundle is the sample transaction bundle: a GP practice and an acute trust,
// a GP, and one patient (NHS number 999 000 0018, in the test range) with a
// condition, an allergy and two observations.
//
//go:embed sample.json
var Bundle []byte

// PatientID is the id of the sample patient.
const PatientID = "demo-patient-1"

// NHSNumber is the sample patient's NHS number.
const NHSNumber = "9990000018"
