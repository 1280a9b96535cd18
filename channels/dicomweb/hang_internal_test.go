package dicomweb

import (
	"math/rand"
	"runtime"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/dicom/synth"
)

func TestHangProbe(t *testing.T) {
	s, _ := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "fuzz"}, Slices: 1, Size: 16})
	good := s.Instances[0].Data
	r := rand.New(rand.NewSource(1))
	_ = r
	for i := 132; i < 400; i++ {
		d := append([]byte(nil), good...)
		copy(d[i:], []byte{0xff, 0xff, 0xff, 0xff})
		start := time.Now()
		done := make(chan struct{})
		go func() { validate(d, ""); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			buf := make([]byte, 1<<16); n := runtime.Stack(buf, true); t.Fatalf("mutation %d hangs\n%s", i, buf[:n])
		}
		if el := time.Since(start); el > 20*time.Millisecond {
			t.Logf("mutation %d took %v", i, el)
		}
	}
}
