// Package oru maps an AI analysis to the HL7 version 2 ORU^R01 a RIS takes: the result of
// the order the study was done for, with one group of OBX segments per finding, the model
// that produced it, the priority the result rules chose, and a note that the content is
// AI-generated and unverified.
//
// [Map] is a pure function of the [mappings.Analysis] and a site [Profile]: no I/O, no
// clock, no randomness. The message time, observation times and the control ID (MSH-10)
// derive from the analysis (its CreatedAt, ID and Revision), so a redelivery of the same
// revision is the same bytes and the receiver can discard it as a duplicate, while a
// correction or a withdrawal is a new message referencing the same order.
//
// Every value goes through engine/hl7v2's Set, which escapes delimiters and line breaks, so
// text from a plugin (a finding's display name, a summary) cannot add fields or segments.
// The produced message is parsed back strictly before it is returned.
//
// Profiles say what differs between receivers: the HL7 version (2.5.1 or 2.3), where the
// priority goes (TQ1-9, OBR-27.6 or OBR-5), the application and facility names, the
// character set. docs/mapping-oru.md lists every field.
package oru
