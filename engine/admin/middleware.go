package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// authenticate leaves the token's name (for the request log) and role in the context.
const (
	principalKey = "admin.principal"
	roleKey      = "admin.role"
)

var (
	errNoToken      = errors.New("missing bearer token")
	errInvalidToken = errors.New("unknown token")
)

// isAPI reports whether a path is behind authentication. Health, readiness and metrics are
// not: load balancers and Prometheus scrape them without credentials.
func isAPI(path string) bool {
	return path == "/api" || strings.HasPrefix(path, "/api/")
}

// readOnly methods are open to read tokens.
func readOnly(method string) bool {
	return method == http.MethodGet || method == http.MethodHead
}

// authenticate checks the bearer token of every /api request: 401 without a known token,
// 403 when a read token asks for a write. It runs before routing is judged, so an unknown
// /api path without a token is 401, not 404, and reveals nothing about the routes.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if !isAPI(r.URL.Path) {
			return next(c)
		}
		secret, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			return &Error{Status: http.StatusUnauthorized, Message: "missing bearer token", Err: errNoToken}
		}
		cred := s.lookup(secret)
		if cred == nil {
			return &Error{Status: http.StatusUnauthorized, Message: "unknown token", Err: errInvalidToken}
		}
		c.Set(principalKey, cred.name)
		c.Set(roleKey, cred.role)
		if !readOnly(r.Method) && cred.role != RoleAdmin {
			return needsAdmin(r, cred.name, cred.role)
		}
		return next(c)
	}
}

// needsAdmin is the 403 for a token whose role is not enough for r.
func needsAdmin(r *http.Request, name, role string) *Error {
	return &Error{Status: http.StatusForbidden,
		Message: fmt.Sprintf("token %q has role %q; %s %s needs role %q", name, role, r.Method, r.URL.Path, RoleAdmin)}
}

// bearer extracts the token of an "Authorization: Bearer <token>" header; the scheme is
// case-insensitive (RFC 7235).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// lookup finds the credential for a presented secret. It compares SHA-256 digests in
// constant time and always visits every credential, so neither the length of a token nor
// its position in the list shows in the timing.
func (s *Server) lookup(secret string) *credential {
	sum := sha256.Sum256([]byte(secret))
	var found *credential
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(sum[:], s.tokens[i].sum[:]) == 1 {
			found = &s.tokens[i]
		}
	}
	return found
}

// logRequests logs one line per request: method, path (never the query string, which can
// carry patient ids), status, duration and the token's name. It turns a handler's error
// into its response first, so the status logged is the one sent. Probes and scrapes log
// at debug level so they do not drown the rest.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		r := c.Request()
		level := slog.LevelInfo
		if !isAPI(r.URL.Path) {
			level = slog.LevelDebug
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", c.Response().Status),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
		}
		if p, ok := c.Get(principalKey).(string); ok {
			attrs = append(attrs, slog.String("token", p))
		}
		s.log.LogAttrs(r.Context(), level, "admin request", attrs...)
		return nil
	}
}

// recoverPanics turns a handler's panic into a 500 and logs the stack, so one bad request
// never takes the process down.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				err = &Error{Status: http.StatusInternalServerError, Message: "internal server error",
					Err: fmt.Errorf("panic: %v\n%s", v, debug.Stack())}
			}
		}()
		return next(c)
	}
}

// secureHeaders keeps API answers, which carry PHI, out of caches and content sniffing.
func secureHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		return next(c)
	}
}
