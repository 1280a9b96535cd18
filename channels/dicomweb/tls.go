package dicomweb

import "github.com/osprey-health/osprey/channels/internal/tlsconf"

// ServerTLS configures TLS for a listening source from PEM files. ClientCAFile, when set,
// makes the server verify client certificates against these CAs and refuse clients without
// one.
type ServerTLS = tlsconf.Server

// ClientTLS configures TLS for connections to a PACS.
type ClientTLS = tlsconf.Client
