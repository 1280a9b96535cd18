package bench

import (
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/rules"
)

var rulesORM = []byte(strings.Join([]string{
	`MSH|^~\&|RIS|HOSP|OSPREY|AI|20240101120500||ORM^O01|MSG00002|P|2.3`,
	`PID|1||67890^^^HOSP^MR||ROE^RICHARD||20150301|M`,
	`PV1|1|E|ED^^^HOSP`,
	`ORC|NW|ACC456`,
	`OBR|1|ACC456||CTHEAD^CT HEAD WITHOUT CONTRAST^L|||20240101120000`,
}, "\r") + "\r")

// BenchmarkRulesFilter measures filter evaluation: "match" on an environment built once
// (the cost of the expression itself), "env+match" building the environment per message as
// the channel runtime does, and "go" the same test written by hand in Go, as the floor.
func BenchmarkRulesFilter(b *testing.B) {
	m, err := hl7v2.Parse(rulesORM)
	if err != nil {
		b.Fatal(err)
	}
	filters := map[string]string{
		"simple":  `msg.Type == "ORM"`,
		"typical": `msg.Type == "ORM" && msg.Get("OBR-4.1") startsWith "CT" && msg.Get("PV1-2") == "E"`,
		"regex":   `msg.Type in ["ORM", "OMI"] && msg.Get("OBR-4.2") matches "(?i)head|brain"`,
		"date":    `hl7date(msg.Get("OBR-7")) > hl7date("20231231")`,
	}
	for name, src := range filters {
		f, err := rules.CompileFilter(src)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/match", func(b *testing.B) {
			env := rules.NewEnv(m, "orders", nil)
			b.ReportAllocs()
			for b.Loop() {
				if ok, err := f.Match(env); err != nil || !ok {
					b.Fatalf("Match = %v, %v", ok, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
		})
		b.Run(name+"/env+match", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, err := f.Match(rules.NewEnv(m, "orders", nil)); err != nil || !ok {
					b.Fatalf("Match = %v, %v", ok, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
		})
	}
	b.Run("typical/go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !(m.Type() == "ORM" && strings.HasPrefix(m.Get("OBR-4.1"), "CT") && m.Get("PV1-2") == "E") {
				b.Fatal("no match")
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
	})
}

// BenchmarkRulesCompile measures compiling a typical filter, the load-time cost per rule.
func BenchmarkRulesCompile(b *testing.B) {
	src := `msg.Type == "ORM" && msg.Get("OBR-4.1") startsWith "CT" && msg.Get("PV1-2") == "E"`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rules.CompileFilter(src); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "compiles/s")
}
