// Package fhir maps an Osprey analysis to the FHIR R4 resources an EHR takes: an
// Observation per finding, a DiagnosticReport over them, a Device for each model, the
// ImagingStudy they derive from and, when the profile says so, a Communication that alerts
// a care team. Resources are built with the google/fhir/go R4 protos and validated with its
// validator (through engine/fhir) before their JSON is returned.
//
// The usual output is one transaction Bundle ([Mapper.Map]): every create is conditional
// (ifNoneExist on a business identifier), so an EHR that gets the same bundle twice keeps one
// copy. Endpoints that take one resource at a time get the same resources as a list
// ([Mapper.Resources]), in dependency order, each with the method, URL and If-None-Exist
// query to send it with.
//
// The mapping is pure: identifiers and bundle-local fullUrls derive from the analysis id and
// revision only, and every time in the output comes from the analysis, so a redelivery is
// byte-identical. docs/mapping-fhir.md lists the source of every element.
package fhir
