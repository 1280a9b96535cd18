package admin

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"runtime"

	"github.com/labstack/echo/v4"
)

// debugPrefix is where the Go runtime's profiles are served. It sits under /api, so a
// profile needs a token like any other call, and it needs an admin token even to GET: a
// CPU profile or an execution trace costs the engine while it runs, and a goroutine dump
// names every connection and channel.
const debugPrefix = "/api/v1/debug/pprof"

// profiles are the runtime's named profiles, each served at debugPrefix/<name>.
var profiles = []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"}

func (s *Server) debugRoutes(e *echo.Echo) {
	g := e.Group(debugPrefix, adminOnly)
	g.GET("/", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	g.GET("/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	g.GET("/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	g.GET("/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	g.POST("/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	g.GET("/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	for _, name := range profiles {
		g.GET("/"+name, echo.WrapHandler(pprof.Handler(name)))
	}
	g.POST("/rates", s.setProfileRates)
}

// adminOnly refuses read tokens. authenticate has already refused requests without a token.
func adminOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if role, _ := c.Get(roleKey).(string); role != RoleAdmin {
			name, _ := c.Get(principalKey).(string)
			return needsAdmin(c.Request(), name, role)
		}
		return next(c)
	}
}

// profileRates is the body of POST debugPrefix/rates. The block and mutex profiles stay
// empty until their rate is set, because sampling them costs every lock and channel
// operation; an operator turns them on for a look and off again with zeros.
type profileRates struct {
	// BlockRate is runtime.SetBlockProfileRate's: one blocking event sampled per this
	// many nanoseconds spent blocked; 1 samples all, 0 turns it off.
	BlockRate *int `json:"block_rate"`
	// MutexFraction is runtime.SetMutexProfileFraction's: one contention event in this
	// many is sampled; 0 turns it off.
	MutexFraction *int `json:"mutex_fraction"`
}

func (s *Server) setProfileRates(c echo.Context) error {
	var req profileRates
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return &Error{Status: http.StatusBadRequest,
			Message: `body: want {"block_rate": N, "mutex_fraction": N}: ` + err.Error(), Err: err}
	}
	switch {
	case req.BlockRate == nil && req.MutexFraction == nil:
		return &Error{Status: http.StatusBadRequest, Message: `give "block_rate", "mutex_fraction" or both`}
	case req.BlockRate != nil && *req.BlockRate < 0, req.MutexFraction != nil && *req.MutexFraction < 0:
		return &Error{Status: http.StatusBadRequest, Message: "a rate is 0 (off) or positive"}
	}
	if req.BlockRate != nil {
		runtime.SetBlockProfileRate(*req.BlockRate)
	}
	if req.MutexFraction != nil {
		runtime.SetMutexProfileFraction(*req.MutexFraction)
	}
	s.log.Info("admin: profile rates set", "block_rate", req.BlockRate, "mutex_fraction", req.MutexFraction,
		"token", c.Get(principalKey))
	return c.NoContent(http.StatusNoContent)
}
