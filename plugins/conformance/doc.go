// Package conformance is the room of `osprey plugin check`: a conformance run that drives a
// running AI plugin through the osprey.ai/v1 protocol with canned jobs and judges every
// answer, so a model team learns what Osprey would reject before it deploys.
//
// A run ([Run]) finds the plugin's instances through NATS micro discovery and checks what
// they announce; makes sure the jobs stream, the jobs consumer and the results stream exist
// (creating them as the engine would when they are absent, never changing them when they are
// there); starts a DICOMweb origin of its own (the same source.dicomweb the engine runs) and
// stores synthetic studies in it: a head CT with a haemorrhage, one without, a chest
// radiograph; then sends one job per study, and one whose token the origin refuses. Each
// answer must arrive before the job's deadline, pass the JSON Schema and the checks against
// the job, carry the Nats-Msg-Id and plugin-version headers, and be the only one; progress
// heartbeats, when sent, must be valid too. The [Report] holds one pass/fail row per check,
// with the violations as the detail.
//
// Canned job ids begin with [JobIDPrefix], so an engine sharing the NATS account can tell
// those results are not its own. The run reads results with an ordered consumer of its own
// and ignores every result that is not for one of its jobs. When it ends it deletes its jobs
// still queued and the buckets holding its studies.
//
// The package imports the DICOMweb source and the synthetic study generator because it plays
// the engine's part; nothing in the engine imports it.
package conformance
