package rules

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/osprey-health/osprey/engine/spec"
	"github.com/osprey-health/osprey/mappings/hl7fhir"
)

// StepToFHIR turns the HL7v2 message into a FHIR R4 transaction Bundle (mappings/hl7fhir):
// ADT^A01/A04/A08 to Patient and Encounter, ORM^O01 and OMI^O23 to ServiceRequest.
const StepToFHIR = "to_fhir"

// Converter is a step that replaces the message: after it the channel carries its output
// (another content type) instead of the HL7v2 message. It must be the last step, since the
// HL7 steps after it would edit a message that no longer leaves.
type Converter interface {
	Step
	Convert(env Env) (body []byte, contentType string, err error)
}

func toFHIRSpec() spec.Component {
	return spec.Component{
		Kind:    spec.KindTransform,
		Name:    StepToFHIR,
		Summary: "Replaces the HL7v2 message with a FHIR R4 transaction Bundle (docs/fhir.md).",
		Description: "ADT^A01, A04 and A08 become Patient and Encounter (conditional updates on their identifiers); " +
			"ORM^O01 and OMI^O23 become ServiceRequest (a conditional update on the placer number), with the " +
			"Patient created if absent. The Bundle is validated with google/fhir/go; another message type, or one " +
			"without the identifiers the resources need, fails the message at this step. It must be the last step; " +
			"the destinations then get `application/fhir+json` (pair it with the fhir destination).",
		Fields: []spec.Field{
			spec.NewMap("systems", "HL7 namespaces and coding-system names (CX-4.1, EI-2, CWE-3) to FHIR system URIs.").
				AsOptional().WithExamples(map[string]any{"MRN": "urn:oid:1.2.36.146.595.217.0.1", "RIS": "urn:oid:1.2.3.4"}),
			spec.NewString("identifier_base", "Prefix of the system of a namespace not in `systems`.").
				WithDefault("urn:osprey:id:"),
			spec.NewString("code_base", "Prefix of the system of a local coding system not in `systems`.").
				WithDefault("urn:osprey:code:"),
			spec.NewString("time_zone", "IANA zone HL7 times without an offset were taken in.").
				WithDefault("UTC").WithExamples("Europe/London"),
			ifField(),
		},
		Examples: []spec.Example{
			{
				Title:   "ADT and orders to the EHR as FHIR",
				Summary: "MRNs of the hospital's namespace get its OID; everything else an Osprey URN.",
				YAML:    "systems: {MRN: \"urn:oid:1.2.36.146.595.217.0.1\"}\ntime_zone: Europe/London\n",
			},
		},
	}
}

type toFHIRStep struct{ p hl7fhir.Profile }

func newToFHIR(conf *spec.Parsed) (Step, error) {
	loc, err := time.LoadLocation(conf.String("time_zone"))
	if err != nil {
		return nil, fmt.Errorf("time_zone: %w", err)
	}
	return &toFHIRStep{p: hl7fhir.Profile{Systems: conf.Map("systems"), IdentifierBase: conf.String("identifier_base"),
		CodeBase: conf.String("code_base"), TimeZone: loc}}, nil
}

// Apply leaves the HL7 message as it is: Convert makes the output once every step ran.
func (s *toFHIRStep) Apply(context.Context, Env) error { return nil }

func (s *toFHIRStep) Convert(env Env) ([]byte, string, error) {
	if env.Msg == nil || env.Msg.m == nil {
		return nil, "", errors.New("to_fhir: not an HL7v2 message")
	}
	b, err := hl7fhir.Map(env.Msg.m, s.p)
	if err != nil {
		return nil, "", fmt.Errorf("to_fhir: %w", err)
	}
	return b, hl7fhir.ContentType, nil
}

// IsConverter reports whether s is (or guards) a Converter.
func IsConverter(s Step) bool {
	if g, ok := s.(*guarded); ok {
		s = g.step
	}
	_, ok := s.(Converter)
	return ok
}

// Output runs s as the channel's last step: when s is a Converter (and its `if`, if any,
// holds) it returns the converted message and ok; otherwise ok is false and the HL7v2
// message leaves as it is.
func Output(s Step, env Env) (body []byte, contentType string, ok bool, err error) {
	if g, isGuard := s.(*guarded); isGuard {
		if _, isConv := g.step.(Converter); !isConv {
			return nil, "", false, nil
		}
		match, err := g.cond.Match(env)
		if err != nil || !match {
			return nil, "", false, err
		}
		s = g.step
	}
	c, isConv := s.(Converter)
	if !isConv {
		return nil, "", false, nil
	}
	body, contentType, err = c.Convert(env)
	return body, contentType, err == nil, err
}
