// Package all registers every connector that ships with Osprey. Import it for its side
// effect, as cmd/osprey does; tests that want a smaller set import the connectors they need.
package all

import (
	_ "github.com/osprey-health/osprey/channels/dicomweb" // source.dicomweb, source.dicomweb_notify, source.qido_poll, destination.dicomweb
	_ "github.com/osprey-health/osprey/channels/fhir"     // source.fhir, destination.fhir
	_ "github.com/osprey-health/osprey/channels/mllp"     // source.mllp, destination.mllp
)
