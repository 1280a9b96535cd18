// Package hl7v2 is Osprey's HL7 version 2 codec: it parses, reads, edits, encodes, splits
// and acknowledges HL7v2 messages. It is the base every HL7 channel, rule and mapping
// stands on, and depends on nothing else in Osprey.
//
// # Parsing
//
// Parse reads a message whose MSH-1 and MSH-2 declare its delimiters (four encoding
// characters, or five with the v2.7 truncation character), with segments ended by CR, LF or
// CRLF. It is lenient: what a real feed sends (blank lines, a byte order mark, trailing
// delimiters, a missing final terminator, unknown escape sequences, odd segment names,
// a charset that does not match MSH-18) is accepted and listed in Issues. It fails, with a
// *ParseError naming segment, field and byte offset, only when there is no MSH or its
// delimiters are unusable. ParseStrict turns every issue into an error. Split cuts files
// and streams (FHS/BHS batches, messages in a row) into messages.
//
// Parsing only records where the segments are. Fields are found, unescaped and converted to
// UTF-8 when read, so reading a few fields of a multi-megabyte ORU costs little. The bytes
// stay in the message's own character set (ASCII, UTF-8, ISO 8859-1 to -9 and -15, per
// MSH-18) and Encode writes them back unchanged: for well-formed input the round trip is
// byte-identical.
//
// # Paths
//
// Elements are addressed as analysts write them, 1-based: "PID-5.1" (family name),
// "PID-3[2].1" (second identifier), "OBX[3]-5" (third OBX), "PID-5.1.2" (subcomponent),
// "MSH-9.2"; "PID.5.1" works too. MSH-1 is the field separator and MSH-2 the encoding
// characters, so MSH-3 is the sending application as in the standard.
//
// Get returns a value unescaped (\F\ \S\ \T\ \R\ \E\ \P\ \Xhh\ and \.br\, which becomes
// "\n"); Raw returns it as encoded. Set escapes what it writes, so a value can never inject
// a delimiter or a segment, and creates missing fields, repetitions, components and
// segments. See the package examples and docs/hl7v2.md.
//
// # Acknowledgments
//
// NewAck builds the ACK for a message in original or enhanced mode (see EnhancedMode), with
// ERR segments in the v2.5 layout; AckBytes answers input that does not parse, salvaging
// what it can of the MSH; ReadAck reads an ACK back.
//
// A Message is safe for concurrent readers; Set and Delete need exclusive access.
package hl7v2
