// Package hl7fhir maps HL7v2 messages to FHIR R4: ADT^A01, A04 and A08 to a Patient and an
// Encounter, ORM^O01 and OMI^O23 to a Patient, an Encounter and one ServiceRequest per
// order, each as a transaction Bundle that destination.fhir can send as it is.
//
// The mappings are pure: no I/O, no clock, no randomness. The same message and Profile
// always give the same bytes, so a redelivered message is the same transaction: entries are
// conditional (Patient, Encounter and ServiceRequest are updated by identifier, and the
// fullUrl of each entry is a name-based UUID of that identifier), and the server finds the
// resources the first delivery created instead of creating them twice.
//
// Every Bundle returned has been validated against the R4 definitions with engine/fhir.
package hl7fhir
