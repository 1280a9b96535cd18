package admin

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// maxLimit is the largest page the store serves.
const maxLimit = 1000

// params reads a request's query strictly: a parameter the route does not know, or one
// given twice, is a 400. An analyst who types patient= instead of patient_id= must not get
// every message back as if the filter had matched.
type params struct {
	v url.Values
}

func queryParams(c echo.Context, allowed ...string) (params, error) {
	v, err := url.ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return params{}, &Error{Status: http.StatusBadRequest, Message: "malformed query string"}
	}
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	sort.Strings(names) // report the same parameter first every time
	for _, name := range names {
		known := false
		for _, a := range allowed {
			if name == a {
				known = true
				break
			}
		}
		if !known {
			return params{}, badParam(name, "unknown parameter; this route takes %s", strings.Join(allowed, ", "))
		}
		if len(v[name]) > 1 {
			return params{}, badParam(name, "given %d times; give it once", len(v[name]))
		}
	}
	return params{v: v}, nil
}

// str returns a parameter with surrounding blanks removed; absent is "".
func (p params) str(name string) string { return strings.TrimSpace(p.v.Get(name)) }

// limit returns the page size: 0 (the store's default) when absent, else 1..maxLimit.
func (p params) limit() (int, error) {
	s := p.str("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		return 0, badParam("limit", "%q is not a whole number from 1 to %d", s, maxLimit)
	}
	return n, nil
}

// time returns an RFC 3339 timestamp; absent is the zero time.
func (p params) time(name string) (time.Time, error) {
	s := p.str(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badParam(name, "%q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", s)
	}
	return t, nil
}

// pathParam returns a path parameter, unescaped (echo matches on the raw path when the
// request has escapes in it).
func pathParam(c echo.Context, name string) (string, error) {
	v, err := url.PathUnescape(c.Param(name))
	if err != nil || v == "" {
		return "", &Error{Status: http.StatusBadRequest, Message: "malformed " + name + " in path"}
	}
	return v, nil
}
