package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/osprey-health/osprey/engine/dicom/synth"
)

func init() {
	register(&command{
		name:    "dicom synth",
		summary: "write a synthetic head CT (optionally with a bleed) or chest X-ray as DICOM files, for testing",
		usage:   "--out DIR [--bleed] [--slices N] [--size 256] [--seed S] [--xr] [--accession A] [--patient-id P]",
		run: func(_ context.Context, env *cliEnv, c *command, args []string) error {
			fs := newFlags(env, c)
			out := fs.String("out", "", "folder to write the instances and manifest.json to (required)")
			seed := fs.String("seed", "", "derive every UID and identifier from this seed; empty: random, recorded in the manifest")
			accession := fs.String("accession", "", "AccessionNumber (default derived from the seed)")
			patientID := fs.String("patient-id", "", "PatientID (default derived from the seed)")
			xr := fs.Bool("xr", false, "write a PA chest radiograph (DX) instead of the head CT")
			size := fs.Int("size", 0, "CT rows and columns (default 256), or X-ray columns (default 1000)")
			slices := fs.Int("slices", 0, "number of CT slices (default 32)")
			thickness := fs.Float64("thickness", 0, "CT slice thickness in mm (default 5 mm, thinner above 32 slices to cover 160 mm)")
			bleed := fs.Bool("bleed", false, "add an intraparenchymal haemorrhage to the CT")
			side := fs.String("bleed-side", "left", "the patient's side of the bleed: left or right")
			radius := fs.Float64("bleed-radius", synth.DefaultBleedRadiusMM, "bleed semi-axis in mm (the front-back one is 1.2 times this)")
			density := fs.Float64("bleed-hu", synth.DefaultBleedHU, "bleed density in HU, 50 to 90")
			contrast := fs.String("contrast", "", "ContrastBolusAgent for a contrast-enhanced CT (default: no contrast)")
			signed := fs.Bool("signed", false, "store CT pixels as signed 16-bit")
			noise := fs.Float64("noise", 0, "standard deviation of Gaussian noise (CT: HU, X-ray: stored values)")
			if err := fs.Parse(args); err != nil {
				return err
			}
			if *out == "" || fs.NArg() > 0 {
				return errUsage
			}
			var bleedFlag string
			fs.Visit(func(f *flag.Flag) {
				if strings.HasPrefix(f.Name, "bleed-") {
					bleedFlag = f.Name
				}
			})
			if bleedFlag != "" && !*bleed {
				return &exitError{code: 2, msg: "osprey dicom synth: --" + bleedFlag + " needs --bleed"}
			}
			study := synth.StudyOptions{Seed: *seed, AccessionNumber: *accession, Patient: synth.Patient{ID: *patientID}}

			var (
				series *synth.Series
				err    error
			)
			if *xr {
				if *bleed || *slices != 0 || *thickness != 0 || *contrast != "" || *signed {
					return &exitError{code: 2, msg: "osprey dicom synth: --bleed, --slices, --thickness, --contrast and --signed apply to the CT, not to --xr"}
				}
				series, err = synth.ChestXR(synth.XROptions{StudyOptions: study, Columns: *size, Noise: *noise})
			} else {
				opts := synth.CTOptions{
					StudyOptions:     study,
					Slices:           *slices,
					Size:             *size,
					SliceThicknessMM: *thickness,
					Contrast:         *contrast,
					Signed:           *signed,
					NoiseHU:          *noise,
				}
				if *bleed {
					opts.Bleed = &synth.Bleed{Side: *side, RadiusMM: *radius, HU: *density}
				}
				series, err = synth.HeadCT(opts)
			}
			if err != nil {
				return err
			}
			if err := series.WriteDir(*out); err != nil {
				return err
			}
			m := series.Manifest
			fmt.Fprintf(env.stdout, "wrote %d synthetic %s instance(s) of %q to %s (accession %s, patient %s, seed %s)\n",
				len(series.Instances), m.Modality, m.StudyDescription, *out, m.AccessionNumber, m.Patient.ID, m.Seed)
			for _, s := range m.Series {
				if b := s.Bleed; b != nil {
					fmt.Fprintf(env.stdout, "bleed: %s, %d voxels, %.2f mL, centre at instance %d\n", b.Side, b.Voxels, b.VolumeML, b.CenterInstance)
				}
			}
			fmt.Fprintf(env.stdout, "manifest: %s\n", filepath.Join(*out, synth.ManifestFile))
			return nil
		},
	})
}
