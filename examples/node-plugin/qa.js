// The "model" of the demonstration plugin: slice-thickness quality assurance from DICOM
// metadata. It reads no pixels. A CT series reconstructed with slices thicker than the
// threshold is flagged, as a reading room's QA list would; everything else about the study is
// ignored. Demonstration only, not for clinical use.

export const PROTOCOL = "osprey.ai/v1";

// A local code system, documented in README.md: neither SNOMED CT, LOINC, RadLex nor DICOM
// has a concept for "this series is thicker than our protocol wants", so the plugin does not
// pretend one of them does.
export const CODE_SYSTEM = "urn:osprey:demo:slice-qa";
export const THICK_SLICES = {
  system: CODE_SYSTEM,
  code: "thick-slices",
  display: "CT slice thickness above threshold (demonstration)",
};

// DICOM JSON (PS3.18 F.2) attribute tags the decision reads.
const TAG = {
  modality: "00080060",
  sopInstanceUID: "00080018",
  seriesInstanceUID: "0020000E",
  seriesDescription: "0008103E",
  instanceNumber: "00200013",
  sliceThickness: "00180050",
};

// first returns the first value of attribute tag in a DICOM JSON dataset, or undefined.
function first(ds, tag) {
  const v = ds?.[tag]?.Value;
  return Array.isArray(v) && v.length > 0 ? v[0] : undefined;
}

// number reads a DS or IS value: DICOM JSON carries them as numbers, some servers as strings.
function number(v) {
  if (typeof v === "number") return Number.isFinite(v) ? v : undefined;
  if (typeof v === "string" && v.trim() !== "") {
    const n = Number(v.trim());
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

// seriesOf groups the instances of a study's metadata by series, keeping only the instances
// the job lists (a result may reference nothing else).
function seriesOf(job, instances) {
  const inJob = new Map(); // sop uid -> series uid, as the job has them
  for (const s of job.study.series) {
    for (const i of s.instances) inJob.set(i.sop_instance_uid, s.series_instance_uid);
  }
  const series = new Map();
  for (const ds of instances) {
    const sop = first(ds, TAG.sopInstanceUID);
    const uid = first(ds, TAG.seriesInstanceUID);
    if (!sop || !uid || inJob.get(sop) !== uid) continue;
    if (!series.has(uid)) {
      series.set(uid, { uid, modality: first(ds, TAG.modality), description: first(ds, TAG.seriesDescription), instances: [] });
    }
    series.get(uid).instances.push({
      sop,
      number: number(first(ds, TAG.instanceNumber)) ?? Number.MAX_SAFE_INTEGER,
      thickness: number(first(ds, TAG.sliceThickness)),
    });
  }
  return [...series.values()];
}

// decide turns the study's metadata into the result members that depend on it: status,
// findings, summary (protocol, job_id, plugin, model and timings are the caller's). It throws
// an error with code "invalid_input" when the CT series carry no slice thickness at all.
export function decide(job, instances, thresholdMM) {
  const ct = seriesOf(job, instances).filter((s) => s.modality === "CT");
  if (ct.length === 0) {
    return {
      status: "not_applicable",
      summary: "No CT series: slice-thickness QA is for CT only.",
    };
  }
  const findings = [];
  for (const s of ct) {
    const thick = s.instances.map((i) => i.thickness).filter((t) => t !== undefined);
    if (thick.length === 0) continue;
    const max = Math.max(...thick);
    s.instances.sort((a, b) => a.number - b.number);
    findings.push({
      id: `slice-qa-${findings.length + 1}`,
      code: THICK_SLICES,
      present: max > thresholdMM,
      // A rule on a header value, not a statistical model: it is certain of what it read.
      confidence: 1,
      measurements: [{ name: "slice thickness", value: max, unit: "mm" }],
      references: [{ series_instance_uid: s.uid, sop_instance_uid: s.instances[0].sop }],
    });
  }
  if (findings.length === 0) {
    const err = new Error("no CT instance has Slice Thickness (0018,0050)");
    err.code = "invalid_input";
    throw err;
  }
  const flagged = findings.filter((f) => f.present);
  const summary = flagged.length === 0
    ? `All ${findings.length} CT series have slices of at most ${thresholdMM} mm.`
    : `${flagged.length} of ${findings.length} CT series have slices thicker than ${thresholdMM} mm` +
      ` (${flagged.map((f) => `${f.measurements[0].value} mm`).join(", ")}).`;
  return { status: "completed", findings, summary };
}
