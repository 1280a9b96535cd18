// Package sdk is the Go runtime of Osprey AI plugins: a model team describes its plugin in a
// [Plugin] (name, version, model, a Handle function) and [Run] does everything the
// osprey.ai/v1 protocol of docs/plugins.md asks of an instance.
//
// Run connects to NATS (URL, credentials file or nkey seed, TLS), announces the instance as
// a NATS micro service carrying the model metadata, binds to the plugin's durable jobs
// consumer (created by the engine), pulls jobs up to [Plugin.Concurrency] at a time, keeps
// each job alive with in-progress acknowledgements and progress heartbeats while Handle
// runs, enforces the job's deadline, checks the result against the job, publishes it with
// the de-duplication id and waits for JetStream to store it, and only then acks the job. On
// cancellation it stops pulling, lets running jobs finish for a drain timeout and naks the
// rest so another instance takes them at once.
//
// Inside Handle, [Job.DICOMweb] fetches the study over WADO-RS with the job's scoped token
// and [DecodeImage] turns a Part 10 instance into Hounsfield units or grey values.
//
// Shipped plugins register themselves with [Register] in an init function, as database/sql
// drivers do, so that a runner (osprey plugin run NAME) finds them with [Lookup].
//
// The package imports nothing of Osprey but plugins/protocol: a plugin binary does not carry
// the engine. docs/plugin-sdk.md is the guide.
package sdk
