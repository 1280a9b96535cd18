// Package synth generates synthetic DICOM test data: a head CT series with an optional
// intracranial bleed of known volume, and a chest radiograph. The images are mathematical
// phantoms, not patients, and every dataset says so in PatientComments and ImageComments. They
// exist so that tests, demos and AI plugin authors have realistic, valid, reproducible studies
// without touching clinical data. They are not fit for any clinical purpose.
//
// Every identifier (UIDs, patient ID, accession number, dates) derives from a seed: the same
// options give byte-identical files. An empty seed is replaced by a random one, which the
// [Manifest] records so the study can be regenerated.
//
// The datasets are written by package dicom (engine/dicom) as Part 10 files in Explicit VR
// Little Endian and are checked in the tests with dciodvfy, dcentvfy and dcmdump from
// dicom3tools and DCMTK.
package synth
