package spec_test

import (
	"fmt"

	"github.com/osprey-health/osprey/engine/spec"
)

// A component declares its fields once; the same declaration parses, lints and documents.
func ExampleParseYAML() {
	fields := []spec.Field{
		spec.NewString("address", "Host and port to listen on.").WithExamples("0.0.0.0:2575"),
		spec.NewBytes("max_message_size", "Largest message accepted.").WithDefault("16MiB"),
		spec.NewDuration("idle_timeout", "Close idle connections.").WithDefault("5m"),
	}
	conf, lints := spec.ParseYAML("address: 0.0.0.0:2575\nidle_timeout: 30s\n", fields)
	fmt.Println(len(lints), conf.String("address"), conf.Bytes("max_message_size"), conf.Duration("idle_timeout"))
	fmt.Println(conf.Pos("idle_timeout"), conf.Has("max_message_size"))

	_, lints = spec.ParseYAML("adress: 0.0.0.0:2575\nidle_timeout: soon\n", fields)
	for _, l := range lints {
		fmt.Println(l)
	}
	// Output:
	// 0 0.0.0.0:2575 16777216 30s
	// 2:15 false
	// 1:1: unknown field "adress"; did you mean "address"?
	// 2:15: field "idle_timeout": expected a duration such as "500ms", "30s", "5m", "2h" or "7d", got "soon"
}
