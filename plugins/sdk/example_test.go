package sdk_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/osprey-health/osprey/plugins/protocol"
	"github.com/osprey-health/osprey/plugins/sdk"
)

// A whole plugin: it fetches the first instance of the study, decodes it and reports its
// mean density. It connects to $OSPREY_NATS_URL with $OSPREY_NATS_CREDS and runs until
// SIGTERM. (The example is compiled, not run: it needs osprey serve.)
func Example() {
	p := sdk.Plugin{
		Name: "mean-density", Version: "1.0.0",
		Model:      protocol.Model{Name: "mean-density", Version: "1.0.0", Manufacturer: "Example"},
		Modalities: []string{"CT"},
		Handle: func(ctx context.Context, job *sdk.Job) (protocol.Result, error) {
			s := job.Study.Series[0]
			data, err := job.DICOMweb().Instance(ctx, s.SeriesInstanceUID, s.Instances[0].SOPInstanceUID)
			if err != nil {
				return protocol.Result{}, err // failed, code fetch_failed
			}
			im, err := sdk.DecodeImage(data)
			if err != nil {
				return protocol.Result{}, err // failed, code invalid_input
			}
			var sum float64
			for _, v := range im.Pixels {
				sum += float64(v)
			}
			return protocol.Result{Summary: fmt.Sprintf("mean %.0f HU", sum/float64(len(im.Pixels)))}, nil
		},
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := sdk.Run(ctx, p); err != nil {
		panic(err)
	}
}
