// Package policy holds sharedcare's access policy as text: sharedcare.policy
// is the one readable place where roles, data categories, information
// sharing agreements, proxy levels and time limits are written down for an
// information-governance lead to review. Package access parses and enforces
// it; docs/ACCESS.md explains it in plain words.
package policy

import _ "embed"

// Text is the policy the server enforces unless configured otherwise.
//
//go:embed sharedcare.policy
var Text string
