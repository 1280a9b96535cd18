// Package dicomweb is Osprey's DICOMweb room: the connectors that bring imaging studies into
// a channel and send DICOM objects out.
//
//   - source.dicomweb is a DICOMweb origin server. It receives instances by STOW-RS, keeps
//     them in a JetStream object store, serves them back by WADO-RS and QIDO-RS (to AI
//     plugins, with study-scoped tokens, see MintToken) and hands the channel one study
//     message once a study has been quiet for a while.
//   - source.dicomweb_notify takes "study stable" webhooks from a PACS (Orthanc's
//     OnStableStudy, see examples/studies/orthanc-notify.lua) and reads the study's metadata
//     from the PACS by WADO-RS.
//   - source.qido_poll finds new studies on a PACS that cannot call out, by QIDO-RS.
//   - destination.dicomweb stores instances (structured reports) in a PACS by STOW-RS.
//
// Every source hands the engine the same message: content type engine.ContentStudy, the body
// the JSON of a dicom.StudySummary whose Retrieve names the DICOMweb root the study can be
// fetched from.
package dicomweb
