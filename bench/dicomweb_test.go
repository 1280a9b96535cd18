package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/dicomweb"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/engine/dicom/synth"
)

// dicomwebSlices is the size of the benchmark's series: a 200-slice head CT of 256 x 256
// 16-bit slices (128 KiB of pixels each), a thin-slice study of a realistic order.
const dicomwebSlices = 200

// startDICOMweb runs a source.dicomweb on an embedded broker with the default sync (always),
// with a quiet period long enough that completion stays out of the measurement.
func startDICOMweb(b *testing.B) *dicomweb.Source {
	b.Helper()
	br := brokertest.New(b)
	src, err := dicomweb.NewSource(dicomweb.SourceConfig{Address: "127.0.0.1:0", QuietPeriod: time.Hour},
		engine.Resources{Channel: "bench", Broker: br.Broker})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, engine.SinkFunc(func(context.Context, *engine.Message) (engine.Receipt, error) {
			return engine.Receipt{Verdict: engine.Accepted}, nil
		}))
	}()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case <-src.Ready():
	case err := <-done:
		b.Fatalf("dicomweb source: %v", err)
	}
	return src
}

func benchCT(b *testing.B, seed string) *synth.Series {
	b.Helper()
	s, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: seed}, Slices: dicomwebSlices, Size: 256})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func stow(url, contentType string, body []byte) error {
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("STOW-RS answered %d", resp.StatusCode)
	}
	return nil
}

// BenchmarkDICOMwebSTOW is STOW-RS ingest of a 200-slice CT, every instance written to the
// JetStream object store and indexed before the answer: in one request, and split over eight
// concurrent requests. Each iteration is a new study (a re-sent one would be a duplicate).
func BenchmarkDICOMwebSTOW(b *testing.B) {
	for _, requests := range []int{1, 8} {
		b.Run(fmt.Sprintf("requests=%d", requests), func(b *testing.B) {
			src := startDICOMweb(b)
			url := src.BaseURL() + "/studies"
			var elapsed time.Duration
			var bytesSent int64
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				ct := benchCT(b, fmt.Sprintf("stow-%d-%d", requests, i))
				type req struct {
					typ  string
					body []byte
				}
				reqs := make([]req, requests)
				per := (len(ct.Instances) + requests - 1) / requests
				for r := range requests {
					var parts [][]byte
					for _, in := range ct.Instances[r*per : min((r+1)*per, len(ct.Instances))] {
						parts = append(parts, in.Data)
						bytesSent += int64(len(in.Data))
					}
					reqs[r].typ, reqs[r].body = dicomweb.Multipart(parts...)
				}
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				errs := make([]error, requests)
				for r := range reqs {
					wg.Go(func() { errs[r] = stow(url, reqs[r].typ, reqs[r].body) })
				}
				wg.Wait()
				elapsed += time.Since(start)
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			secs := elapsed.Seconds()
			b.ReportMetric(float64(b.N*dicomwebSlices)/secs, "instances/s")
			b.ReportMetric(float64(bytesSent)/1e6/secs, "MB/s")
		})
	}
}

// BenchmarkDICOMwebWADOFrames is WADO-RS frame retrieval from a stored 200-slice CT, one
// frame per request, as a plugin walking a volume slice by slice does.
func BenchmarkDICOMwebWADOFrames(b *testing.B) {
	src := startDICOMweb(b)
	ct := benchCT(b, "wado-frames")
	typ, body := dicomweb.Multipart(func() [][]byte {
		var out [][]byte
		for _, in := range ct.Instances {
			out = append(out, in.Data)
		}
		return out
	}()...)
	if err := stow(src.BaseURL()+"/studies", typ, body); err != nil {
		b.Fatal(err)
	}
	c, err := dicomweb.NewClient(src.BaseURL(), dicomweb.ClientConfig{})
	if err != nil {
		b.Fatal(err)
	}
	m := ct.Manifest
	ctx := context.Background()
	var frameBytes int64
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		in := m.Series[0].Instances[i%len(m.Series[0].Instances)]
		frames, err := c.Frames(ctx, m.StudyInstanceUID, m.Series[0].SeriesInstanceUID, in.SOPInstanceUID, 1)
		if err != nil {
			b.Fatal(err)
		}
		frameBytes += int64(len(frames[0]))
	}
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/secs, "frames/s")
	b.ReportMetric(float64(frameBytes)/1e6/secs, "MB/s")
}
