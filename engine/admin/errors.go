package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/spec"
	"github.com/osprey-health/osprey/engine/store"
)

// Error is an error with the HTTP status and the message the API answers with. Handlers
// return it when they know better than the default mapping; any other error goes through
// StatusOf. Every error response has the body
//
//	{"error": "message", "status": 404}
//
// plus "lints" for a configuration that failed validation (422).
type Error struct {
	Status  int         // HTTP status code
	Message string      // what the client sees; for 5xx a generic text
	Lints   []spec.Lint // configuration findings, for 422
	Err     error       // the cause: logged for 5xx, never sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// errorBody is the JSON of every error response.
type errorBody struct {
	Error  string     `json:"error"`
	Status int        `json:"status"`
	Lints  []lintView `json:"lints,omitzero"`
}

// lintView is a spec.Lint with its one-line form beside the parts, so a script can print
// "text" and a UI can place the marker from file, line and col.
type lintView struct {
	File    string     `json:"file,omitempty"`
	Line    int        `json:"line"`
	Col     int        `json:"col"`
	Level   spec.Level `json:"level,omitempty"`
	Type    string     `json:"type,omitempty"`
	Message string     `json:"message"`
	Text    string     `json:"text"` // "file:line:col: message"
}

func viewLints(ls []spec.Lint) []lintView {
	if ls == nil {
		return nil
	}
	vs := make([]lintView, len(ls))
	for i, l := range ls {
		vs[i] = lintView{File: l.File, Line: l.Line, Col: l.Col, Level: l.Level, Type: l.Type, Message: l.Msg, Text: l.String()}
	}
	return vs
}

// StatusOf maps an error to the API error it is answered with:
//
//   - *Error as it is;
//   - *engine.ConfigError: 422 with its lints;
//   - engine.ErrUnknownChannel, engine.ErrNotFound, store.ErrNotFound: 404;
//   - engine.ErrBadRequest, store.ErrInvalidCursor: 400;
//   - echo's own errors (no route 404, 405, body too large 413) with their status;
//   - anything else: 500 with a generic message.
//
// For 4xx the message is the error text, which the engine and store keep free of PHI.
func StatusOf(err error) *Error {
	var (
		ae *Error
		ce *engine.ConfigError
		he *echo.HTTPError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ce):
		lints := ce.Lints
		if lints == nil {
			lints = []spec.Lint{} // a 422 always carries the list, even when the engine gave none
		}
		return &Error{Status: http.StatusUnprocessableEntity, Lints: lints, Err: err,
			Message: "invalid configuration; the running configuration is unchanged"}
	case errors.Is(err, engine.ErrUnknownChannel), errors.Is(err, engine.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Message: err.Error(), Err: err}
	case errors.Is(err, engine.ErrBadRequest):
		return &Error{Status: http.StatusBadRequest, Message: err.Error(), Err: err}
	case errors.Is(err, store.ErrInvalidCursor):
		return &Error{Status: http.StatusBadRequest, Message: "invalid cursor; pass the next of a previous page", Err: err}
	case errors.As(err, &he):
		return &Error{Status: he.Code, Message: strings.ToLower(http.StatusText(he.Code)), Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Message: "internal server error", Err: err}
}

// handleError is echo's central error handler: every error a handler or middleware returns
// ends here and leaves as one JSON shape.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		// The status line is gone; all that is left is to say so in the log.
		s.log.Warn("admin: error after response started", "method", c.Request().Method,
			"path", c.Request().URL.Path, "error", err)
		return
	}
	ae := StatusOf(err)
	msg := ae.Message
	switch {
	case ae.Status != http.StatusInternalServerError:
		// Answered as designed (a 503 from /readyz says why in its body); the request log has it.
	case errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil:
		// The client went away; nobody reads this answer and nothing failed.
		s.log.Debug("admin: request cancelled", "method", c.Request().Method, "path", c.Request().URL.Path)
	default:
		s.log.Error("admin: request failed", "method", c.Request().Method,
			"path", c.Request().URL.Path, "error", err)
	}
	if msg == "" {
		msg = strings.ToLower(http.StatusText(ae.Status))
	}
	if ae.Status == http.StatusUnauthorized {
		v := `Bearer realm="osprey"`
		if errors.Is(err, errInvalidToken) {
			v += `, error="invalid_token"`
		}
		c.Response().Header().Set("WWW-Authenticate", v)
	}
	body := errorBody{Error: msg, Status: ae.Status, Lints: viewLints(ae.Lints)}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(ae.Status)
	} else {
		err = c.JSON(ae.Status, body)
	}
	if err != nil {
		s.log.Debug("admin: write error response", "error", err)
	}
}

// badParam is a 400 that names the offending query parameter.
func badParam(name, format string, args ...any) error {
	return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("parameter %s: ", name) + fmt.Sprintf(format, args...)}
}
