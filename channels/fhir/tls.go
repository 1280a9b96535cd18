package fhir

import "github.com/osprey-health/osprey/channels/internal/tlsconf"

// ServerTLS configures HTTPS for the Source from PEM files. ClientCAFile, when set, makes
// the server verify client certificates against these CAs and refuse clients without one.
type ServerTLS = tlsconf.Server

// ClientTLS configures TLS for connections to a FHIR server and its token endpoint.
type ClientTLS = tlsconf.Client
