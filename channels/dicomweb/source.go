package dicomweb

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/osprey-health/osprey/channels/internal/listen"
	"github.com/osprey-health/osprey/engine"
)

// Defaults of SourceConfig.
const (
	DefaultAddress        = "127.0.0.1:8081"
	DefaultBasePath       = "/dicom-web"
	DefaultMaxRequestSize = 2 << 30
	DefaultQuietPeriod    = 30 * time.Second
	DefaultRetention      = 24 * time.Hour
)

// SourceConfig configures a [Source].
type SourceConfig struct {
	Address  string // host:port to listen on; "" means DefaultAddress
	BasePath string // the DICOMweb service root path; "" means DefaultBasePath
	// PublicURL is the service root as clients reach it (behind a proxy, say), used in
	// RetrieveURL and in study messages; "" derives it from the listener.
	PublicURL string
	// Tokens are the bearer tokens that open everything. Empty means no authentication:
	// keep such a source on loopback.
	Tokens []string
	// TokenKey signs study-scoped tokens (see MintToken); nil means a random key made at
	// construction, which scoped tokens do not survive a restart with.
	TokenKey       []byte
	TLS            *ServerTLS
	MaxRequestSize int64         // largest STOW-RS request body; 0 means DefaultMaxRequestSize
	QuietPeriod    time.Duration // a study is complete this long after its last instance
	Retention      time.Duration // how long instances are kept
	Bucket         string        // object store bucket; "" means "osprey-<channel>-instances"
}

// Source is a DICOMweb origin server: it receives instances by STOW-RS, keeps them in a
// JetStream object store, serves them back by WADO-RS and QIDO-RS (to AI plugins, chiefly),
// and hands the channel one study message (engine.ContentStudy, the JSON of a
// dicom.StudySummary) once a study has been quiet for the quiet period.
//
// Studies in progress are tracked in JetStream, so a restart neither forgets a study nor
// announces it twice once announced: the open mark is removed only after the engine accepted
// the study message, and an instance that arrives after that reopens the study, which is then
// announced again with all its instances.
type Source struct {
	cfg SourceConfig
	res engine.Resources
	log *slog.Logger

	lis   *listen.Point
	store *store
	// wake tells the completion loop that a study was touched, so it can re-plan its timer.
	wake chan struct{}
}

// NewSource checks cfg and returns a source; it opens nothing until Run.
func NewSource(cfg SourceConfig, res engine.Resources) (*Source, error) {
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if cfg.BasePath == "" {
		cfg.BasePath = DefaultBasePath
	}
	cfg.BasePath = "/" + strings.Trim(cfg.BasePath, "/")
	if cfg.BasePath == "/" {
		cfg.BasePath = ""
	}
	if cfg.MaxRequestSize <= 0 {
		cfg.MaxRequestSize = DefaultMaxRequestSize
	}
	if cfg.QuietPeriod <= 0 {
		cfg.QuietPeriod = DefaultQuietPeriod
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "osprey-" + res.Channel + "-instances"
		if res.Channel == "" {
			cfg.Bucket = "osprey-instances"
		}
	}
	if cfg.PublicURL != "" {
		cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	}
	if len(cfg.TokenKey) == 0 {
		k, err := NewKey()
		if err != nil {
			return nil, err
		}
		cfg.TokenKey = k
	}
	if res.Logger == nil {
		res.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{
		cfg:  cfg,
		res:  res,
		log:  res.Logger.With("component", "source.dicomweb"),
		lis:  listen.New(cfg.Address, cfg.TLS),
		wake: make(chan struct{}, 1),
	}, nil
}

// TokenKey returns the key that signs this source's scoped tokens, for the plugin layer.
func (s *Source) TokenKey() []byte { return s.cfg.TokenKey }

// MintToken returns a token that opens only studyUID on this source for ttl.
func (s *Source) MintToken(studyUID string, ttl time.Duration) string {
	return MintToken(s.cfg.TokenKey, studyUID, ttl)
}

// StudyToken mints a scoped token for the plugin layer (engine.StudyTokens): the engine
// puts it in each AI job so the plugin can fetch that one study from this source.
func (s *Source) StudyToken(studyUID string, ttl time.Duration) (string, time.Time) {
	exp := time.Now().Add(ttl)
	return mintAt(s.cfg.TokenKey, studyUID, exp), exp.Truncate(time.Second)
}

// Listen binds the address; Run calls it when it has not been called.
func (s *Source) Listen() error {
	if _, err := s.lis.Listen(); err != nil {
		return fmt.Errorf("dicomweb: %w", err)
	}
	return nil
}

// Addr is the bound address, nil before Listen.
func (s *Source) Addr() net.Addr { return s.lis.Addr() }

// BaseURL is the DICOMweb service root clients use: PublicURL, or one derived from the
// listener. Empty before Listen.
func (s *Source) BaseURL() string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	a := s.Addr()
	if a == nil {
		return ""
	}
	scheme := "http"
	if s.cfg.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + a.String() + s.cfg.BasePath
}

// Ready is closed once the source serves requests.
func (s *Source) Ready() <-chan struct{} { return s.lis.Ready() }

// Run opens the buckets, serves HTTP and announces complete studies until ctx ends.
func (s *Source) Run(ctx context.Context, sink engine.Sink) error {
	if s.res.Broker == nil {
		return errors.New("dicomweb: source.dicomweb needs the engine's broker to store instances")
	}
	st, err := openStore(ctx, s.res.Broker.JetStream(), s.cfg.Bucket, s.cfg.Retention)
	if err != nil {
		return err
	}
	s.store = st
	if err := s.Listen(); err != nil {
		return err
	}
	s.log.Info("dicomweb listening", "base_url", s.BaseURL())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.complete(ctx, sink)
	}()
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	err = s.lis.Serve(ctx, srv)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("dicomweb: %w", err)
	}
	return nil
}

// handler builds the routes under the base path.
func (s *Source) handler() http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = httpError
	g := e.Group(s.cfg.BasePath, s.auth)
	g.POST("/studies", s.stow)
	g.POST("/studies/:study", s.stow)
	g.GET("/studies", s.searchStudies)
	g.GET("/studies/:study", s.retrieve)
	g.GET("/studies/:study/metadata", s.metadata)
	g.GET("/studies/:study/series", s.searchSeries)
	g.GET("/studies/:study/instances", s.searchInstances)
	g.GET("/studies/:study/series/:series", s.retrieve)
	g.GET("/studies/:study/series/:series/metadata", s.metadata)
	g.GET("/studies/:study/series/:series/instances", s.searchInstances)
	g.GET("/studies/:study/series/:series/instances/:instance", s.retrieve)
	g.GET("/studies/:study/series/:series/instances/:instance/metadata", s.metadata)
	g.GET("/studies/:study/series/:series/instances/:instance/frames/:frames", s.frames)
	g.GET("/studies/:study/series/:series/instances/:instance/bulkdata/:tag", s.bulkdata)
	return e
}

// scopeKey is where auth leaves the study a scoped token opens.
const scopeKey = "dicomweb.scope"

// auth admits a configured bearer token to everything and a scoped token to its own study:
// 401 without a usable token or with an expired one, 403 for another study's resources or a
// search outside the study.
func (s *Source) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok, hasBearer := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
		tok = strings.TrimSpace(tok)
		if hasBearer && isScoped(tok) {
			study, err := VerifyToken(s.cfg.TokenKey, tok, time.Now())
			if err != nil {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer error="invalid_token"`)
				return echo.NewHTTPError(http.StatusUnauthorized, err.Error())
			}
			if p := c.Param("study"); p != study {
				if p == "" && c.Request().Method == http.MethodGet {
					c.Set(scopeKey, study) // a study search, restricted to the token's study
					return next(c)
				}
				return echo.NewHTTPError(http.StatusForbidden, "dicomweb: token is scoped to another study")
			}
			c.Set(scopeKey, study)
			return next(c)
		}
		if len(s.cfg.Tokens) == 0 {
			return next(c)
		}
		if hasBearer {
			for _, t := range s.cfg.Tokens {
				if subtle.ConstantTimeCompare([]byte(t), []byte(tok)) == 1 {
					return next(c)
				}
			}
		}
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="osprey-dicomweb"`)
		return echo.NewHTTPError(http.StatusUnauthorized, "dicomweb: a valid bearer token is required")
	}
}

// httpError answers errors as a small JSON object; the DICOMweb status report of STOW-RS
// is written by its handler instead.
func httpError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code = he.Code
		msg = fmt.Sprint(he.Message)
	}
	_ = c.JSON(code, map[string]string{"error": msg})
}

// baseURL is the service root for links in a response to c.
func (s *Source) baseURL(c echo.Context) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	return c.Scheme() + "://" + c.Request().Host + s.cfg.BasePath
}

// remoteAddr is the peer's address as the connection has it: never a forwarding header,
// which any client could set.
func remoteAddr(c echo.Context) string {
	return c.Request().RemoteAddr
}

var (
	_ engine.Source      = (*Source)(nil)
	_ engine.StudyTokens = (*Source)(nil)
)
