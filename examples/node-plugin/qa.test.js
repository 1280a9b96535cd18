// Tests of the slice-thickness rule, on DICOM JSON as WADO-RS metadata returns it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decide, THICK_SLICES } from "./qa.js";

// instance is the DICOM JSON of one instance.
function instance({ series, sop, modality = "CT", number = 1, thickness }) {
  const ds = {
    "00080018": { vr: "UI", Value: [sop] },
    "00080060": { vr: "CS", Value: [modality] },
    "0020000E": { vr: "UI", Value: [series] },
    "00200013": { vr: "IS", Value: [number] },
  };
  if (thickness !== undefined) ds["00180050"] = { vr: "DS", Value: [thickness] };
  return ds;
}

// jobFor lists the instances in a job, as Osprey does.
function jobFor(instances) {
  const series = new Map();
  for (const ds of instances) {
    const uid = ds["0020000E"].Value[0];
    if (!series.has(uid)) series.set(uid, { series_instance_uid: uid, instances: [] });
    series.get(uid).instances.push({ sop_instance_uid: ds["00080018"].Value[0] });
  }
  return { study: { study_instance_uid: "1.2.3", series: [...series.values()] } };
}

test("a CT series thicker than the threshold is a present finding", () => {
  const md = [
    instance({ series: "1.2.3.1", sop: "1.2.3.1.2", number: 2, thickness: 7.5 }),
    instance({ series: "1.2.3.1", sop: "1.2.3.1.1", number: 1, thickness: "7.5" }),
  ];
  const r = decide(jobFor(md), md, 5);
  assert.equal(r.status, "completed");
  assert.equal(r.findings.length, 1);
  const f = r.findings[0];
  assert.deepEqual(f.code, THICK_SLICES);
  assert.equal(f.present, true);
  assert.equal(f.measurements[0].value, 7.5);
  assert.equal(f.measurements[0].unit, "mm");
  // The reference is the series' first instance by instance number.
  assert.deepEqual(f.references, [{ series_instance_uid: "1.2.3.1", sop_instance_uid: "1.2.3.1.1" }]);
  assert.match(r.summary, /thicker than 5 mm/);
});

test("a CT series at the threshold is looked at and ruled out", () => {
  const md = [instance({ series: "1.2.3.1", sop: "1.2.3.1.1", thickness: 5 })];
  const r = decide(jobFor(md), md, 5);
  assert.equal(r.status, "completed");
  assert.equal(r.findings[0].present, false);
});

test("one finding per CT series; other modalities are ignored", () => {
  const md = [
    instance({ series: "1.2.3.1", sop: "1.2.3.1.1", thickness: 1.25 }),
    instance({ series: "1.2.3.2", sop: "1.2.3.2.1", thickness: 10 }),
    instance({ series: "1.2.3.3", sop: "1.2.3.3.1", modality: "SR" }),
  ];
  const r = decide(jobFor(md), md, 5);
  assert.deepEqual(r.findings.map((f) => [f.id, f.present]), [["slice-qa-1", false], ["slice-qa-2", true]]);
});

test("a study without CT is not applicable", () => {
  const md = [instance({ series: "1.2.3.1", sop: "1.2.3.1.1", modality: "DX" })];
  const r = decide(jobFor(md), md, 5);
  assert.equal(r.status, "not_applicable");
  assert.equal(r.findings, undefined);
});

test("instances the job does not list are never referenced", () => {
  const listed = [instance({ series: "1.2.3.1", sop: "1.2.3.1.1", thickness: 3 })];
  const extra = instance({ series: "1.2.3.9", sop: "1.2.3.9.1", thickness: 8 });
  const r = decide(jobFor(listed), [...listed, extra], 5);
  assert.equal(r.findings.length, 1);
  assert.equal(r.findings[0].references[0].series_instance_uid, "1.2.3.1");
});

test("CT without slice thickness is invalid input", () => {
  const md = [instance({ series: "1.2.3.1", sop: "1.2.3.1.1" })];
  assert.throws(() => decide(jobFor(md), md, 5), (err) => err.code === "invalid_input");
});
