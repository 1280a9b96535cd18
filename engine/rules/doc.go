// Package rules is the expression layer of a channel: filters that decide whether a message
// enters, keys that group messages for ordering, and transform steps that edit HL7v2
// messages on the way through.
//
// Expressions are written in expr-lang (https://expr-lang.org) and are compiled once, when
// the configuration is loaded, against the typed environment [Env]. A misspelt field
// (msg.Typ), a comparison of a string with a number, an expression of the wrong result type
// or a malformed HL7 path literal (msg.Get("PID-3,1")) is therefore a load error with the
// line and column inside the expression ([ExprError]), never a surprise on the first message
// at three in the morning.
//
// The environment has the HL7v2 message (msg), and for a study message the study (study,
// a [StudyView]) and the order it joined (order, an [OrderView]); a name that does not apply
// to a message holds zero values, so one expression runs on any channel.
//
// Evaluation is safe for concurrent use: a compiled [Filter], [Key] or [Step] holds no
// per-message state. Steps mutate the message they are given in place.
package rules
