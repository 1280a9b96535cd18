package fhir

import (
	"encoding/json"
	"fmt"
)

// MediaType is the media type of FHIR JSON, for Content-Type and Accept.
const MediaType = "application/fhir+json"

// Entry is one entry of a batch or transaction Bundle, as a sender needs it to send the
// entry's resource on its own.
type Entry struct {
	FullURL      string
	ResourceType string
	Method       string // request.method: POST, PUT, …
	URL          string // request.url, relative to the FHIR base
	IfNoneExist  string // request.ifNoneExist: the If-None-Exist header of a conditional create
	IfMatch      string // request.ifMatch
	Resource     []byte // the resource's JSON as it is in the bundle; nil for a GET or DELETE
}

// Entries validates a Bundle and returns its entries in order.
func Entries(bundle []byte) ([]Entry, error) {
	rt, err := Validate(bundle)
	if err != nil {
		return nil, err
	}
	if rt != "Bundle" {
		return nil, fmt.Errorf("fhir: expected a Bundle but found %s", rt)
	}
	var b struct {
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
			Request  struct {
				Method      string `json:"method"`
				URL         string `json:"url"`
				IfNoneExist string `json:"ifNoneExist"`
				IfMatch     string `json:"ifMatch"`
			} `json:"request"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bundle, &b); err != nil {
		return nil, fmt.Errorf("fhir: bundle entries: %w", err)
	}
	out := make([]Entry, len(b.Entry))
	for i, e := range b.Entry {
		out[i] = Entry{
			FullURL: e.FullURL, Method: e.Request.Method, URL: e.Request.URL,
			IfNoneExist: e.Request.IfNoneExist, IfMatch: e.Request.IfMatch,
		}
		if len(e.Resource) > 0 {
			out[i].Resource = []byte(e.Resource)
			if out[i].ResourceType, err = ResourceType(e.Resource); err != nil {
				return nil, fmt.Errorf("fhir: bundle entry %d: %w", i, err)
			}
		}
	}
	return out, nil
}

// EntryResponse is the outcome of one entry of a transaction or batch, from the server's
// response Bundle.
type EntryResponse struct {
	Status   string   // "201 Created", "200 OK", "412 Precondition Failed", …
	Location string   // where the resource is, "Observation/123/_history/1"
	ETag     string   // W/"1"
	Outcome  *Outcome // the entry's OperationOutcome, when the server gave one
}

// ParseBundleResponse reads a transaction-response or batch-response Bundle leniently (a
// server's answer is worth reading even when it is not perfectly conformant) and returns
// its entries' responses in order, which is the order of the request's entries.
func ParseBundleResponse(data []byte) ([]EntryResponse, error) {
	var b struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			Response struct {
				Status   string          `json:"status"`
				Location string          `json:"location"`
				ETag     string          `json:"etag"`
				Outcome  json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("fhir: bundle response: %w", err)
	}
	if b.ResourceType != "Bundle" {
		return nil, fmt.Errorf("fhir: expected a response Bundle but found resourceType %q", b.ResourceType)
	}
	if b.Type != "transaction-response" && b.Type != "batch-response" {
		return nil, fmt.Errorf("fhir: expected a transaction-response or batch-response Bundle but found type %q", b.Type)
	}
	out := make([]EntryResponse, len(b.Entry))
	for i, e := range b.Entry {
		out[i] = EntryResponse{Status: e.Response.Status, Location: e.Response.Location, ETag: e.Response.ETag}
		if len(e.Response.Outcome) > 0 && string(e.Response.Outcome) != "null" {
			o, err := ParseOperationOutcome(e.Response.Outcome)
			if err != nil {
				return nil, fmt.Errorf("fhir: bundle response entry %d: %w", i, err)
			}
			out[i].Outcome = o
		}
	}
	return out, nil
}
