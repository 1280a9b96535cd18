package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestDecodeIntegralFloats: JSON Schema counts 12.0 as an integer (Python's json writes
// floats so), so decoding must accept it where Go has an int.
func TestDecodeIntegralFloats(t *testing.T) {
	data := mutate(t, sampleResult(), func(m map[string]any) {
		obj(m, "findings/0/references/1")["frames"] = []any{json.Number("12.0"), json.Number("1.3e1")}
		obj(m, "findings/0/regions/1")["frame"] = json.Number("12.0")
		obj(m, "timings")["fetch_ms"] = json.Number("2100.0")
	})
	r, err := DecodeResult(data)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got := r.Findings[0].References[1].Frames; len(got) != 2 || got[0] != 12 || got[1] != 13 {
		t.Errorf("frames = %v, want [12 13]", got)
	}
	if r.Findings[0].Regions[1].Frame != 12 || r.Timings.FetchMS != 2100 {
		t.Errorf("frame %d fetch_ms %d", r.Findings[0].Regions[1].Frame, r.Timings.FetchMS)
	}
	// A fraction is still no integer.
	bad := mutate(t, sampleResult(), func(m map[string]any) {
		obj(m, "findings/0/references/1")["frames"] = []any{json.Number("12.5")}
	})
	if err := ValidateResult(bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "/findings/0/references/1/frames/0") {
		t.Errorf("frame 12.5: %v", err)
	}
}

// FuzzDecodeResult: any input gives a result or an error, never a panic, and an input the
// decoder accepts re-encodes to a valid result.
func FuzzDecodeResult(f *testing.F) {
	for _, v := range []any{sampleResult(), Result{Protocol: Version, JobID: "j", Plugin: "p", Status: StatusFailed, Error: &Error{Code: "x", Message: "y"}}} {
		data, _ := json.Marshal(v)
		f.Add(data)
	}
	f.Add([]byte(`{"protocol":"osprey.ai/v1","job_id":"j","plugin":"p","status":"not_applicable","findings":[{"id":"a","code":{"system":"s","code":"c"},"present":true,"confidence":1e0}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeResult(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !strings.HasPrefix(err.Error(), "protocol: decode result: ") {
				t.Fatalf("unexpected error shape: %v", err)
			}
			return
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateResult(again); err != nil {
			t.Fatalf("accepted %s but its re-encoding %s is invalid: %v", data, again, err)
		}
	})
}
