// Package ich is a DEMONSTRATION intracranial haemorrhage detector. IT IS NOT FOR CLINICAL
// USE: it is not a medical device, it has not been validated on patients, and its output must
// never inform the care of a person. It exists to show model teams the shape of a real Osprey
// AI plugin and to give the plugin layer something meaningful to route, time and reconcile.
//
// The detector works on a non-contrast axial head CT series. [VolumeFromDICOM] decodes the
// Part 10 instances (uncompressed transfer syntaxes only, through the plugin SDK's
// sdk.DecodeImage) into a [Volume] of Hounsfield units sorted along the slice normal. [Detect] then masks the intracranial cavity slice by slice
// (bone above 300 HU bounds it; a flood fill from the image border marks what lies outside;
// the cavity is eroded away from the inner table), keeps voxels between 50 and 90 HU inside
// it, groups them into 3D connected components (6-connectivity: faces only) and reports every
// component of at least half a millilitre with its volume, slice range, side, centroid,
// density and a heuristic confidence.
//
// Sides are the patient's, in DICOM patient coordinates (LPS: +x is the patient's left). For
// the standard axial orientation (ImageOrientationPatient 1\0\0\0\1\0) image columns increase
// towards the patient's left, so a finding right of the brain's midline on screen is on the
// patient's left. Other orientations are handled through the direction cosines.
//
// [Plugin] wraps the detector as the Osprey AI plugin "ich" (registered with sdk.Register, run
// by sdk.Run or the osprey-ich command): it picks the head CT series of a job's study,
// fetches it over WADO-RS, detects, and answers with SNOMED-coded findings (1386000
// Intracranial hemorrhage), each with side, slice range, volume and the instances it was
// seen on, or one ruled-out finding. The package imports the SDK and the protocol, nothing of
// the engine; see docs/plugin-ich.md for the algorithm and its limits.
package ich
