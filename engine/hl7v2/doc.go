// Package hl7v2 parses, edits, encodes and acknowledges HL7 version 2 messages.
package hl7v2
