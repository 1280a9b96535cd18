package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/dicom/synth"
)

func runDicomSynth(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runCLI(context.Background(), &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut}, append([]string{"dicom", "synth"}, args...))
	return code, out.String(), errOut.String()
}

func readManifest(t *testing.T, dir string) synth.Manifest {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, synth.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m synth.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("manifest: %v\n%s", err, raw)
	}
	return m
}

func TestDicomSynthCT(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := runDicomSynth(t, "--out", dir, "--bleed", "--slices", "8", "--size", "64",
		"--seed", "cli", "--accession", "ACC77", "--patient-id", "PID9")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	m := readManifest(t, dir)
	if m.AccessionNumber != "ACC77" || m.Patient.ID != "PID9" || m.Seed != "cli" || !m.Synthetic {
		t.Errorf("manifest accession %q patient %q seed %q synthetic %v", m.AccessionNumber, m.Patient.ID, m.Seed, m.Synthetic)
	}
	s := m.Series[0]
	if len(s.Instances) != 8 || s.Rows != 64 {
		t.Fatalf("%d instances of %d rows, want 8 of 64", len(s.Instances), s.Rows)
	}
	for _, in := range s.Instances {
		data, err := os.ReadFile(filepath.Join(dir, in.File))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < 132 || string(data[128:132]) != "DICM" {
			t.Errorf("%s is not a Part 10 file", in.File)
		}
	}
	if s.Instances[0].File != "s002/i0001.dcm" {
		t.Errorf("first file %s, want s002/i0001.dcm", s.Instances[0].File)
	}
	if s.Bleed == nil || s.Bleed.Voxels == 0 || s.Bleed.VolumeML <= 0 {
		t.Fatalf("manifest bleed %+v, want a measured bleed", s.Bleed)
	}
	if !strings.Contains(stdout, "wrote 8 synthetic CT") || !strings.Contains(stdout, "mL") {
		t.Errorf("stdout does not report the files and the bleed volume:\n%s", stdout)
	}

	// The same seed writes the same bytes.
	again := t.TempDir()
	if code, _, stderr := runDicomSynth(t, "--out", again, "--bleed", "--slices", "8", "--size", "64",
		"--seed", "cli", "--accession", "ACC77", "--patient-id", "PID9"); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
	for _, in := range s.Instances {
		a, _ := os.ReadFile(filepath.Join(dir, in.File))
		b, _ := os.ReadFile(filepath.Join(again, in.File))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs with one seed", in.File)
		}
	}
}

func TestDicomSynthXR(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := runDicomSynth(t, "--out", dir, "--xr", "--size", "100", "--seed", "cli-xr")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	m := readManifest(t, dir)
	if m.Modality != "DX" || len(m.Series) != 1 || len(m.Series[0].Instances) != 1 || m.Series[0].Columns != 100 {
		t.Fatalf("manifest %+v, want one 100-column DX instance", m)
	}
	if _, err := os.Stat(filepath.Join(dir, m.Series[0].Instances[0].File)); err != nil {
		t.Error(err)
	}
}

func TestDicomSynthUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"no out", []string{"--slices", "2"}, 2, "usage: osprey dicom synth"},
		{"stray argument", []string{"--out", "x", "extra"}, 2, "usage: osprey dicom synth"},
		{"bleed on an x-ray", []string{"--out", "x", "--xr", "--bleed"}, 2, "apply to the CT"},
		{"bleed option without bleed", []string{"--out", "x", "--bleed-side", "right"}, 2, "needs --bleed"},
		{"bad bleed side", []string{"--out", "OUT", "--bleed", "--bleed-side", "up", "--size", "32"}, 1, "bleed side"},
		{"unknown flag", []string{"--out", "x", "--frobnicate"}, 1, "flag provided but not defined: -frobnicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := make([]string, len(tt.args))
			dir := t.TempDir()
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "OUT", dir)
			}
			code, _, stderr := runDicomSynth(t, args...)
			if code != tt.code || !strings.Contains(stderr, tt.inStderr) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tt.code, tt.inStderr)
			}
		})
	}
}
