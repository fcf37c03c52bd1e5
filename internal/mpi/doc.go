// Package mpi is the master patient index's matching engine: it decides
// whether two Patient records describe one person.
//
// It is a domain package: it reads FHIR Patients (internal/fhir objects) and
// knows nothing of HTTP or storage. The FHIR side (Person resources, the
// review queue, $match, merge) is internal/mpi/service; the offline batch
// linker is `sharedcare mpi link`.
//
// How a decision is made:
//
//   - A Patient becomes a Record: its names, birth date, sex, addresses,
//     postcodes, phones and identifiers normalised once.
//   - Blocking: a record is only compared with records that share one of
//     several keys (NHS number, phonetic name + birth year, phonetic given +
//     family name, birth date, postcode + birth year, postcode + phonetic
//     family, phone, any other identifier), so cost grows close to linearly
//     with the records.
//   - Each field is compared at a few levels of agreement (exact, close,
//     phonetic, disagree; missing takes no part). Fellegi-Sunter: the
//     record pair's score is the sum over fields of log2(m/u) for the level
//     seen, where m and u are the probabilities of that level among matches
//     and non-matches, estimated by EM from the data's own candidate pairs.
//   - Two thresholds on the score, set from the posterior probability of a
//     match (link at 0.999, review from 0.05, given the prior EM estimates):
//     link at or above Link, review between Review and Link, no link below.
//   - Batch linking clusters the automatic links strongest first and refuses
//     a join that would put two records that must not be one person into one
//     (Model.MustNotLink): transitive links cannot chain A-B-C when A and C
//     are clearly different people.
//   - The NHS number rule: two verified, equal NHS numbers link
//     deterministically unless the demographics contradict them; same number
//     with clearly different people is a conflict, sent to review and never
//     linked automatically; two different verified numbers are never linked
//     automatically.
//
// A wrong link is a clinical safety hazard (someone else's allergies), a
// missed link loses information: every rule above errs towards review.
package mpi
