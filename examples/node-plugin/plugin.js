// An Osprey AI plugin in JavaScript, written from docs/plugins.md alone to show that the
// osprey.ai/v1 protocol needs nothing but a NATS client and HTTP. It is a demonstration, not
// for clinical use: its "model" (qa.js) flags CT series with slices thicker than a threshold,
// from the study's DICOM metadata.
//
// Environment:
//   OSPREY_NATS_URL            NATS server(s), comma separated (default nats://127.0.0.1:4223)
//   OSPREY_NATS_CREDS          credentials file Osprey wrote for the plugin (optional on a dev server)
//   OSPREY_PLUGIN_NAME         plugin name (default slice-qa)
//   OSPREY_SLICE_THRESHOLD_MM  thicker slices than this are flagged (default 5)

import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, headers } from "nats";
import { decide, PROTOCOL } from "./qa.js";

const pkg = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));
const NAME = process.env.OSPREY_PLUGIN_NAME || "slice-qa";
const VERSION = pkg.version; // the micro service version and the Osprey-Plugin-Version header
const THRESHOLD_MM = Number(process.env.OSPREY_SLICE_THRESHOLD_MM || "5");
const MODEL = {
  name: "osprey-slice-qa-demo",
  version: pkg.version,
  manufacturer: "Osprey (demonstration, not for clinical use)",
  // A UUID-derived UID (root 2.25, PS3.5 B.2): nobody else's UID root is borrowed.
  device_uid: "2.25.7800259185338052036288982708284362280",
};

const STREAM = `OSPREY_JOBS_${NAME.toUpperCase()}`;
const CONSUMER = `plugin-${NAME}`;
const RESULTS = `osprey.results.${NAME}`;
const HEARTBEAT_MS = 5_000; // well inside the consumer's 30 s ack wait
const PULL_EXPIRES_MS = 5_000;
const BIND_RETRY_MS = 1_000;

// log writes one JSON line to stderr. Never a token, never patient data: ids and codes only.
function log(level, msg, fields = {}) {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, msg, plugin: NAME, ...fields }) + "\n");
}

if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(NAME)) {
  log("error", "invalid plugin name", { name: NAME });
  process.exit(2);
}
if (!(THRESHOLD_MM > 0)) {
  log("error", "OSPREY_SLICE_THRESHOLD_MM must be a positive number");
  process.exit(2);
}

const opts = {
  servers: (process.env.OSPREY_NATS_URL || "nats://127.0.0.1:4223").split(","),
  name: `osprey plugin ${NAME} (node)`,
  // The plugin's credentials allow subscriptions to its own inboxes only: pull responses and
  // publish acknowledgements must come there.
  inboxPrefix: `_INBOX_${NAME}`,
  maxReconnectAttempts: -1,
};
if (process.env.OSPREY_NATS_CREDS) {
  opts.authenticator = credsAuthenticator(readFileSync(process.env.OSPREY_NATS_CREDS));
}

const nc = await connect(opts);
log("info", "connected", { server: nc.getServer() });

// Discovery: a micro service named after the plugin, with the model in its metadata.
const service = await nc.services.add({
  name: NAME,
  version: VERSION,
  description: "Slice-thickness QA from DICOM metadata (demonstration, not for clinical use)",
  metadata: {
    model_name: MODEL.name,
    model_version: MODEL.version,
    manufacturer: MODEL.manufacturer,
    device_uid: MODEL.device_uid,
    modalities: "CT",
    body_parts: "",
    protocol: PROTOCOL,
  },
});
log("info", "registered", { version: VERSION, id: service.info().id });

const js = nc.jetstream();

// stopping is set by SIGTERM/SIGINT; abort cancels a WADO-RS request or a wait in progress.
let stopping = false;
const abort = new AbortController();
// current is the job being handled: its message, and whether its result is already being
// published (then shutdown lets it finish and ack rather than nak).
let current = null;

// pause waits ms, or less when shutdown begins.
async function pause(ms) {
  await new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      abort.signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    abort.signal.addEventListener("abort", done);
  });
}

// bind waits for the shared pull consumer: Osprey creates it, a plugin only binds.
async function bind() {
  while (!stopping) {
    try {
      return await js.consumers.get(STREAM, CONSUMER);
    } catch (err) {
      log("warn", "jobs consumer not there yet, retrying", { stream: STREAM, consumer: CONSUMER, err: String(err.message ?? err) });
      await pause(BIND_RETRY_MS);
    }
  }
  return null;
}

function progress(job, percent, message) {
  nc.publish(`osprey.progress.${job.job_id}`, JSON.stringify({
    protocol: PROTOCOL, job_id: job.job_id, plugin: NAME, percent, message, at: new Date().toISOString(),
  }));
}

class JobError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

// metadata reads the study's DICOM JSON by WADO-RS with the job's token, giving up at the
// deadline.
async function metadata(job) {
  const url = `${job.dicomweb.base_url.replace(/\/+$/, "")}/studies/${job.study.study_instance_uid}/metadata`;
  const left = Math.max(1, Date.parse(job.deadline) - Date.now());
  let res;
  try {
    res = await fetch(url, {
      headers: { Authorization: `Bearer ${job.dicomweb.token}`, Accept: "application/dicom+json" },
      signal: AbortSignal.any([abort.signal, AbortSignal.timeout(left)]),
    });
  } catch (err) {
    if (stopping) throw err;
    if (err.name === "TimeoutError") throw new JobError("timeout", "WADO-RS metadata: no answer before the deadline");
    throw new JobError("fetch_failed", `WADO-RS metadata: ${err.cause?.message ?? err.message}`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new JobError("fetch_failed", `WADO-RS metadata returned HTTP ${res.status}`);
  }
  const body = await res.json().catch(() => null);
  if (!Array.isArray(body)) throw new JobError("fetch_failed", "WADO-RS metadata is not a DICOM JSON array");
  return body;
}

// analyse runs the job and returns the result members that depend on it.
async function analyse(job) {
  if (Date.parse(job.deadline) <= Date.now()) {
    return { status: "failed", error: { code: "timeout", message: "the deadline passed before the job started" } };
  }
  const started = new Date();
  progress(job, 0, "fetching study metadata");
  const t0 = performance.now();
  let instances;
  try {
    instances = await metadata(job);
  } catch (err) {
    if (stopping) throw err;
    return { status: "failed", error: { code: err.code ?? "internal", message: err.message } };
  }
  const fetchMS = Math.round(performance.now() - t0);
  progress(job, 50, `read metadata of ${instances.length} instances`);
  const t1 = performance.now();
  let decided;
  try {
    decided = decide(job, instances, THRESHOLD_MM);
  } catch (err) {
    return { status: "failed", error: { code: err.code ?? "internal", message: err.message } };
  }
  return {
    ...decided,
    model: MODEL,
    timings: {
      started_at: started.toISOString(),
      finished_at: new Date().toISOString(),
      fetch_ms: fetchMS,
      inference_ms: Math.round(performance.now() - t1),
    },
  };
}

// publish stores the result in OSPREY_RESULTS and resolves once JetStream acknowledged it.
async function publish(job, result) {
  const h = headers();
  h.set("Osprey-Plugin-Version", VERSION);
  const body = JSON.stringify({ protocol: PROTOCOL, job_id: job.job_id, plugin: NAME, ...result });
  await js.publish(RESULTS, body, { msgID: `${job.job_id}:${job.attempt}`, headers: h });
}

async function handle(m) {
  let job;
  try {
    job = m.json();
  } catch {
    log("warn", "job is not JSON, terminating it", { seq: m.seq });
    m.term();
    return;
  }
  if (typeof job?.job_id !== "string" || !job.study || !job.dicomweb || job.protocol !== PROTOCOL) {
    // A failed result when the job id can be read, so that Osprey learns why; then +TERM.
    if (typeof job?.job_id === "string" && /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/.test(job.job_id)) {
      await publish({ job_id: job.job_id, attempt: job.attempt ?? 1 }, {
        status: "failed", error: { code: "invalid_input", message: `cannot read a ${PROTOCOL} job` },
      }).catch((err) => log("error", "publish failed", { job_id: job.job_id, err: err.message }));
    }
    m.term();
    return;
  }
  current = { m, publishing: false, done: null };
  log("info", "job", { job_id: job.job_id, attempt: job.attempt, modality: job.study.modality });
  m.working();
  const beat = setInterval(() => {
    m.working(); // resets the ack wait
    progress(job, 50, "working");
  }, HEARTBEAT_MS);
  try {
    const result = await analyse(job);
    if (stopping) return; // shutdown nak'ed the job already: another instance takes it
    current.publishing = true;
    try {
      await publish(job, result);
    } catch (err) {
      log("error", "result not stored, the job goes back to the queue", { job_id: job.job_id, err: err.message });
      m.nak();
      return;
    }
    m.ack(); // only after the publish acknowledgement
    log("info", "result", { job_id: job.job_id, status: result.status, findings: result.findings?.length ?? 0 });
  } catch (err) {
    if (!stopping) {
      log("error", "job failed unexpectedly, nak", { job_id: job.job_id, err: String(err?.message ?? err) });
      m.nak();
    }
  } finally {
    clearInterval(beat);
    current = null;
  }
}

async function loop() {
  let consumer = await bind();
  while (!stopping && consumer) {
    let m;
    try {
      m = await consumer.next({ expires: PULL_EXPIRES_MS });
    } catch (err) {
      if (stopping) break;
      log("warn", "pull failed, binding again", { err: String(err.message ?? err) });
      await pause(BIND_RETRY_MS);
      consumer = await bind();
      continue;
    }
    if (!m) continue; // no job before expires: pull again
    if (stopping) { m.nak(); break; }
    const done = handle(m);
    if (current) current.done = done;
    await done;
  }
}

let loopDone;

async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log("info", "stopping", { signal });
  const inFlight = current;
  if (inFlight && !inFlight.publishing) {
    inFlight.m.nak(); // another instance takes it now instead of after the ack wait
    log("info", "job handed back", { seq: inFlight.m.seq });
  }
  abort.abort();
  if (inFlight?.publishing) await inFlight.done?.catch(() => {}); // it acks once stored
  await service.stop().catch(() => {});
  await nc.drain().catch(() => {}); // ends a pull in progress, so the loop returns
  await loopDone?.catch(() => {});
  process.exit(0);
}

process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

loopDone = loop();
await loopDone.catch((err) => {
  log("error", "plugin stopped", { err: String(err?.message ?? err) });
  process.exitCode = 1;
});
if (!stopping) await nc.drain().catch(() => {});
