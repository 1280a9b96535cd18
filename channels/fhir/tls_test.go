package fhir_test

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/fhir"
	"github.com/osprey-health/osprey/channels/internal/tlsconf/tlsconftest"
)

func TestDestinationTLS(t *testing.T) {
	pki := tlsconftest.New(t, "osprey")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.Server}, ClientCAs: pki.Pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	tests := []struct {
		name string
		tls  *fhir.ClientTLS
		ok   bool
	}{
		{"private CA and client certificate", &fhir.ClientTLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, true},
		{"system roots do not know the CA", nil, false},
		{"no client certificate", &fhir.ClientTLS{CAFile: pki.CAFile}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDest(t, fhir.DestinationConfig{URL: srv.URL, TLS: tc.tls, Timeout: 10 * time.Second})
			_, err := d.Send(t.Context(), fhirMessage(patientJSON, nil))
			if tc.ok && err != nil {
				t.Fatalf("Send: %v", err)
			}
			if !tc.ok {
				var re *fhir.RetryError
				if !errors.As(err, &re) {
					t.Fatalf("err = %v, want a retryable TLS failure", err)
				}
			}
		})
	}
}

func TestSourceTLS(t *testing.T) {
	pki := tlsconftest.New(t, "ehr")
	sk := &sink{}
	base := runSource(t, fhir.SourceConfig{TLS: &fhir.ServerTLS{CertFile: pki.ServerCert, KeyFile: pki.ServerKey}}, sk)
	base = strings.Replace(base, "http://", "https://", 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}}}
	resp, err := client.Post(base+"/Patient", "application/fhir+json", strings.NewReader(patientJSON))
	if err != nil {
		t.Fatalf("POST over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || len(sk.messages()) != 1 {
		t.Fatalf("status %d, %d messages", resp.StatusCode, len(sk.messages()))
	}
	if _, err := http.Post(strings.Replace(base, "https://", "http://", 1)+"/Patient", "application/fhir+json", strings.NewReader(patientJSON)); err == nil {
		// A plain-HTTP request to a TLS listener gets a 400 from net/http, never a message.
		if len(sk.messages()) != 1 {
			t.Error("a plain HTTP request reached the sink")
		}
	}
}
