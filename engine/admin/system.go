package admin

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyTimeout bounds a readiness check, so a hung dependency answers 503 before the
// prober gives up on its own.
const readyTimeout = 5 * time.Second

type statusResult struct {
	Status string `json:"status"`
}

// healthz answers 200 as long as the process serves HTTP: liveness, nothing more. A
// failing dependency is readiness, and restarting the process would not fix it.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, statusResult{Status: "ok"})
}

// readyz answers 200 when the engine can do its work, else 503 with the reason.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	if err := s.eng.Ready(ctx); err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "not ready: " + err.Error(), Err: err}
	}
	return c.JSON(http.StatusOK, statusResult{Status: "ready"})
}

func (s *Server) metricsHandler() echo.HandlerFunc {
	h := promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError, // a broken collector must not hide the rest
	})
	return echo.WrapHandler(h)
}

// versionResult is the answer of GET /api/v1/version.
type versionResult struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

func (s *Server) getVersion(c echo.Context) error {
	return c.JSON(http.StatusOK, versionResult{Version: s.version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH})
}

// reload asks the engine to read its configuration again. A configuration that fails
// validation comes back as *engine.ConfigError, which StatusOf turns into 422 with the
// lints; the running configuration is untouched.
func (s *Server) reload(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	s.log.Info("admin: reload requested", "token", c.Get(principalKey))
	if err := s.eng.Reload(c.Request().Context()); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	return c.JSON(http.StatusOK, statusResult{Status: "reloaded"})
}
