// Package sr maps an Osprey analysis to the DICOM Structured Report a PACS shows beside the
// images: a Comprehensive 3D SR whose content is a TID 1500 Measurement Report, written the
// way IHE AI Results (AIR) asks. The algorithm is the observer (a Device, identified by the
// model version's UID); the procedure reported is the imaging procedure; every finding is one
// measurement group with its tracking identifier and UID, its finding code, the algorithm's
// name and version, its presence, its certainty, its measurements and the images and regions
// it was seen on. The report joins the source study (same Study Instance UID, patient and
// study attributes) in a series of its own, and names the order it answers.
//
// [Map] is pure: no I/O, no clock, no randomness. The SOP Instance UID derives from the
// analysis id and revision, so a redelivery is the same instance, byte for byte, and a
// correction is a new instance that names the one it replaces. docs/mapping-sr.md shows the
// tree, the codes and how to validate the output.
package sr
