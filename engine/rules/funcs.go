package rules

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/expr-lang/expr"

	"github.com/osprey-health/osprey/engine/hl7v2"
)

// functions are the helpers expressions may call in addition to expr's builtins. Each is
// declared with its Go signature so calls are type-checked at compile time.
var functions = []expr.Option{
	expr.Function("hl7date", func(args ...any) (any, error) {
		t, err := ParseHL7Time(args[0].(string))
		if err != nil {
			return nil, fmt.Errorf("hl7date: %w", err)
		}
		return t, nil
	}, new(func(string) time.Time)),
	expr.Function("age", func(args ...any) (any, error) {
		born, err := ParseHL7Time(args[0].(string))
		if err != nil {
			return nil, fmt.Errorf("age: %w", err)
		}
		return Age(born, time.Now()), nil
	}, new(func(string) int)),

	// The internal functions msg.Get, msg.Has and msg.Count compile to (see literalCheck).
	expr.Function(fnGet, func(args ...any) (any, error) {
		return args[0].(*MsgView).Get(args[1].(string)), nil
	}, new(func(*MsgView, string) string)),
	expr.Function(fnGetPath, func(args ...any) (any, error) {
		return args[0].(*MsgView).at(args[1].(hl7v2.Path)), nil
	}, new(func(*MsgView, hl7v2.Path) string)),
	expr.Function(fnHas, func(args ...any) (any, error) {
		return args[0].(*MsgView).Has(args[1].(string)), nil
	}, new(func(*MsgView, string) bool)),
	expr.Function(fnHasPath, func(args ...any) (any, error) {
		return args[0].(*MsgView).at(args[1].(hl7v2.Path)) != "", nil
	}, new(func(*MsgView, hl7v2.Path) bool)),
	expr.Function(fnCount, func(args ...any) (any, error) {
		return args[0].(*MsgView).Count(args[1].(string)), nil
	}, new(func(*MsgView, string) int)),
}

// Names of the internal functions. They start with "__" so that they cannot be mistaken
// for documented ones; calling them directly works but is not supported.
const (
	fnGet     = "__msgGet"
	fnGetPath = "__msgGetPath"
	fnHas     = "__msgHas"
	fnHasPath = "__msgHasPath"
	fnCount   = "__msgCount"
)

// ErrNoDate is returned by ParseHL7Time for an empty value, so that callers can tell a
// missing date from a malformed one.
var ErrNoDate = errors.New("empty date")

// ParseHL7Time parses an HL7 DTM (or the first component of a TS):
// YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]. A value without an offset is in the
// engine's local time zone, which is how HL7 defines it (the sender's local time) on the
// usual assumption that sender and engine share a zone.
func ParseHL7Time(s string) (time.Time, error) {
	orig := s
	if i := strings.IndexByte(s, '^'); i >= 0 {
		s = s[:i] // TS degree of precision (HL7 2.3-2.5) is advisory; the value is enough.
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, ErrNoDate
	}
	bad := func(why string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("%q is not an HL7 date/time (YYYYMMDDHHMMSS[.SSSS][+ZZZZ]): %s", orig, why)
	}

	loc := time.Local
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		off := s[i+1:]
		if len(off) != 4 || !digits(off) {
			return bad("offset must be +HHMM or -HHMM")
		}
		h, m := atoi(off[:2]), atoi(off[2:])
		if h > 14 || m > 59 {
			return bad("offset out of range")
		}
		secs := h*3600 + m*60
		if s[i] == '-' {
			secs = -secs
		}
		loc = time.FixedZone(s[i:], secs)
		s = s[:i]
	}

	var frac string
	if i := strings.IndexByte(s, '.'); i >= 0 {
		frac = s[i+1:]
		s = s[:i]
		if len(s) != 14 {
			return bad("fractional seconds need a full YYYYMMDDHHMMSS before them")
		}
		if frac == "" || len(frac) > 4 || !digits(frac) {
			return bad("fractional seconds must be 1 to 4 digits")
		}
	}
	if !digits(s) {
		return bad("unexpected character")
	}
	switch len(s) {
	case 4, 6, 8, 10, 12, 14:
	default:
		return bad("wrong number of digits")
	}

	year, month, day, hour, min, sec := atoi(s[:4]), 1, 1, 0, 0, 0
	if len(s) >= 6 {
		month = atoi(s[4:6])
	}
	if len(s) >= 8 {
		day = atoi(s[6:8])
	}
	if len(s) >= 10 {
		hour = atoi(s[8:10])
	}
	if len(s) >= 12 {
		min = atoi(s[10:12])
	}
	if len(s) >= 14 {
		sec = atoi(s[12:14])
	}
	nsec := 0
	if frac != "" {
		nsec = atoi(frac)
		for i := len(frac); i < 9; i++ {
			nsec *= 10
		}
	}
	if month < 1 || month > 12 || hour > 23 || min > 59 || sec > 59 {
		return bad("field out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, min, sec, nsec, loc)
	if t.Day() != day {
		return bad("no such day")
	}
	return t, nil
}

// Age returns the number of whole years between born and now, as a birthday is counted:
// someone born on 29 February turns a year older on 1 March in other years.
func Age(born, now time.Time) int {
	now = now.In(born.Location())
	years := now.Year() - born.Year()
	if now.Month() < born.Month() || now.Month() == born.Month() && now.Day() < born.Day() {
		years--
	}
	return years
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// atoi converts a string already checked by digits.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}
