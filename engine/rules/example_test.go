package rules_test

import (
	"context"
	"fmt"

	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/spec"
)

const order = "MSH|^~\\&|RIS|HOSP|OSPREY|AI|20240101120500||ORM^O01|MSG00002|P|2.3\r" +
	"PID|1||67890^^^HOSP^MR||ROE^RICHARD||20150301|M\r" +
	"OBR|1|ACC456||CTHEAD^CT HEAD^L\r"

func ExampleCompileFilter() {
	f, err := rules.CompileFilter(`msg.Type == "ORM" && msg.Get("OBR-4.1") startsWith "CT"`)
	if err != nil {
		panic(err)
	}
	m, _ := hl7v2.Parse([]byte(order))
	ok, err := f.Match(rules.NewEnv(m, "orders", nil))
	fmt.Println(ok, err)

	// A typo is a compile error, with its position inside the expression.
	_, err = rules.CompileFilter(`msg.Type == "ORM" && msg.Typ == "O01"`)
	fmt.Println(err)
	// Output:
	// true <nil>
	// line 1, column 26: type msg has no field Typ (did you mean Type?)
}

func ExampleNewStep() {
	var set spec.Component
	for _, c := range rules.Steps() {
		if c.Name == rules.StepSet {
			set = c
		}
	}
	conf, lints := spec.ParseYAML("path: MSH-5\nvalue: RIS|PACS", set.Fields)
	if len(lints) > 0 {
		panic(lints)
	}
	step, err := rules.NewStep(rules.StepSet, conf, "")
	if err != nil {
		panic(err)
	}
	m, _ := hl7v2.Parse([]byte(order))
	if err := step.Apply(context.Background(), rules.NewEnv(m, "orders", nil)); err != nil {
		panic(err)
	}
	fmt.Println(m.Get("MSH-5"), "|", m.Raw("MSH-5"), "|", m.Get("MSH-6"))
	// Output:
	// RIS|PACS | RIS\F\PACS | AI
}
