package engine

import "strings"

// Stream and subject names. A channel named "adt-in" gets:
//
//	stream OSPREY_IN_ADT-IN   subject osprey.in.adt-in                 (inbound, one record per group commit)
//	stream OSPREY_OUT_ADT-IN  subjects osprey.out.adt-in.<destination>  (one durable consumer per destination)
//
// Channel and destination names are validated by config to [a-z0-9][a-z0-9_-]*, which is safe
// in both subjects and stream names.
func inStream(channel string) string  { return "OSPREY_IN_" + strings.ToUpper(channel) }
func outStream(channel string) string { return "OSPREY_OUT_" + strings.ToUpper(channel) }
func inSubject(channel string) string { return "osprey.in." + channel }
func outSubject(channel, dest string) string {
	return "osprey.out." + channel + "." + dest
}
func outSubjects(channel string) string { return "osprey.out." + channel + ".*" }

// Entry header keys in committed records. Short, because they repeat in every entry.
const (
	hdrReceived    = "t"  // RFC 3339 nano arrival time
	hdrContentType = "ct" // content type
	hdrVerdict     = "v"  // "" accepted, "rejected", "duplicate"
	hdrReason      = "r"  // why rejected, or the id of the original for a duplicate
	hdrReprocessOf = "rp" // id of the message this one reprocesses
	hdrMetaPrefix  = "m." // source facts (remote_addr...)
	hdrKey         = "k"  // ordering key on destination records
	hdrRequeue     = "rq" // set on a requeued dead letter: its attempt count continues, its retry budget restarts
)
