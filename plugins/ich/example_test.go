package ich_test

import (
	"fmt"

	"github.com/osprey-health/osprey/engine/dicom/synth"
	"github.com/osprey-health/osprey/plugins/ich"
)

// A synthetic head CT with a 12 mm bleed in the patient's left hemisphere. NOT FOR CLINICAL
// USE: the detector is a demonstration.
func ExampleDetect() {
	s, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "example"}, Bleed: &synth.Bleed{Side: "left"}})
	if err != nil {
		panic(err)
	}
	var instances [][]byte
	for _, in := range s.Instances {
		instances = append(instances, in.Data)
	}
	v, err := ich.VolumeFromDICOM(instances)
	if err != nil {
		panic(err)
	}
	r := ich.Detect(v, ich.Options{})
	fmt.Println(r.Present, len(r.Findings), r.Findings[0].Side)
	fmt.Println(r.Summary)
	// Output:
	// true 1 left
	// NOT FOR CLINICAL USE: demonstration detector. 1 hyperdense intracranial region suggestive of haemorrhage: 8.8 mL, patient's left, instances 14 to 18, mean 65 HU, confidence 0.99.
}
