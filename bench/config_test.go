package bench

import (
	"fmt"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/config"

	_ "github.com/osprey-health/osprey/channels/mllp"
)

// BenchmarkConfigLoad measures loading (parse, substitute, lint, compile every expression,
// build every step) of a configuration with many channels, which bounds how long
// `osprey validate` and a reload take on a large site.
func BenchmarkConfigLoad(b *testing.B) {
	for _, n := range []int{10, 200} {
		b.Run(fmt.Sprintf("osprey/channels=%d", n), func(b *testing.B) {
			var src strings.Builder
			src.WriteString("server:\n  retention: 30d\nchannels:\n")
			for i := range n {
				fmt.Fprintf(&src, `  - name: ch-%d
    source:
      mllp: {address: "0.0.0.0:%d"}
    filter: msg.Type == "ADT" && msg.Event in ["A01", "A04", "A08"]
    transform:
      - set: {path: MSH-5, value: PACS}
      - copy: {from: PID-3.1, to: PID-2.1}
    destinations:
      - name: ris
        mllp: {address: "${RIS_ADDR:-ris.example:2575}"}
        filter: msg.Get("PV1-2") != "P"
    ordered_by: msg.Get("PID-3.1")
`, i, 2575+i)
			}
			files := []config.File{{Name: "bench.yaml", Data: []byte(src.String())}}
			b.SetBytes(int64(src.Len()))
			b.ResetTimer()
			for b.Loop() {
				c, lints := config.LoadFiles(files, engine.Global)
				if c == nil {
					b.Fatal(lints)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "channels/s")
		})
	}
}
