//go:build tools

package osprey

import (
	_ "github.com/google/fhir/go/fhirversion"
	_ "github.com/google/fhir/go/jsonformat"
	_ "github.com/nats-io/jwt/v2"
	_ "github.com/nats-io/nkeys"
	_ "golang.org/x/oauth2/clientcredentials"
)
