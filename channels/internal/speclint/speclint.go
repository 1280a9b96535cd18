// Package speclint holds the value checks (spec.Field lints) that more than one connector's
// spec uses, so that the same setting is refused with the same words in every channel file.
// A check returns nil for a value of another type: the spec parser reports wrong types.
package speclint

import (
	"errors"
	"net/url"
	"strings"
	"time"
)

// PositiveDuration refuses a duration of 0 or less.
func PositiveDuration(v any) error {
	if d, ok := v.(time.Duration); ok && d <= 0 {
		return errors.New("must be longer than 0")
	}
	return nil
}

// NonNegativeDuration refuses a negative duration.
func NonNegativeDuration(v any) error {
	if d, ok := v.(time.Duration); ok && d < 0 {
		return errors.New("must not be negative")
	}
	return nil
}

// PositiveSize refuses a size (spec.Bytes) under one byte.
func PositiveSize(v any) error {
	if n, ok := v.(int64); ok && n < 1 {
		return errors.New("must be at least 1 byte")
	}
	return nil
}

// HTTPURL refuses a string that is not an absolute http:// or https:// URL. An empty value
// and one still holding a ${...} reference pass: the first is the field's absence, the
// second is checked once expanded.
func HTTPURL(v any) error {
	s, _ := v.(string)
	if s == "" || strings.Contains(s, "${") {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http:// or https:// URL")
	}
	return nil
}

// BasePath refuses a URL path that does not start with "/".
func BasePath(v any) error {
	if s, _ := v.(string); !strings.HasPrefix(s, "/") {
		return errors.New(`must start with "/"`)
	}
	return nil
}
