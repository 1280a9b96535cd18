package admin_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/admin"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// blockingEngine holds Reload until released, to see shutdown wait for it.
type blockingEngine struct {
	*fakeEngine
	entered chan struct{}
	release chan struct{}
}

func (b *blockingEngine) Reload(ctx context.Context) error {
	close(b.entered)
	<-b.release
	return nil
}

// serve runs srv.Serve in the background and returns a stop function that cancels it and
// returns what Serve returned.
func serve(t *testing.T, srv *admin.Server, ln net.Listener, cfg *tls.Config) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, cfg) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Error("Serve did not return after its context was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func get(t *testing.T, c *http.Client, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServe(t *testing.T) {
	t.Run("plain HTTP then clean shutdown", func(t *testing.T) {
		env := newEnv(t)
		ln := listen(t)
		stop := serve(t, env.srv, ln, nil)
		code, body := get(t, http.DefaultClient, "http://"+ln.Addr().String()+"/api/v1/channels", readToken)
		if code != 200 || !strings.Contains(body, `"adt"`) {
			t.Fatalf("got %d %s", code, body)
		}
		if err := stop(); err != nil {
			t.Fatalf("Serve returned %v after cancel, want nil", err)
		}
		if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			t.Error("listener still accepts after shutdown")
		}
	})

	t.Run("TLS", func(t *testing.T) {
		env := newEnv(t)
		cert, pool := selfSigned(t)
		ln := listen(t)
		serve(t, env.srv, ln, &tls.Config{Certificates: []tls.Certificate{cert}})
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		code, body := get(t, client, "https://"+ln.Addr().String()+"/api/v1/version", adminToken)
		if code != 200 || !strings.Contains(body, "v1.2.3-test") {
			t.Fatalf("got %d %s", code, body)
		}
		// Plain HTTP to the TLS port must not be served.
		resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
		if err == nil {
			defer resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Error("plain HTTP answered 200 on the TLS listener")
			}
		}
	})

	t.Run("shutdown waits for a request in flight", func(t *testing.T) {
		eng := &blockingEngine{fakeEngine: &fakeEngine{}, entered: make(chan struct{}), release: make(chan struct{})}
		env := newEnv(t, func(o *admin.Options) { o.Engine = eng })
		ln := listen(t)
		stop := serve(t, env.srv, ln, nil)

		type result struct {
			code int
			err  error
		}
		res := make(chan result, 1)
		go func() {
			req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/api/v1/reload", nil)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				res <- result{err: err}
				return
			}
			resp.Body.Close()
			res <- result{code: resp.StatusCode}
		}()
		select {
		case <-eng.entered:
		case <-time.After(30 * time.Second):
			t.Fatal("the reload request never reached the engine")
		}
		stopped := make(chan error, 1)
		go func() { stopped <- stop() }()
		// Shutdown closes the listener first: once dials fail, it is under way and must
		// now wait for the request the engine holds.
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatal("the listener stayed open after cancel")
			}
			time.Sleep(10 * time.Millisecond)
		}
		select {
		case err := <-stopped:
			t.Fatalf("Serve returned %v with a request still in flight", err)
		default:
		}
		close(eng.release)
		r := <-res
		if r.err != nil || r.code != 200 {
			t.Fatalf("in-flight request: %d, %v; want 200", r.code, r.err)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("Serve = %v", err)
		}
	})

	t.Run("no tokens logs a warning at start", func(t *testing.T) {
		env := newEnv(t, func(o *admin.Options) { o.Tokens = nil })
		ln := listen(t)
		stop := serve(t, env.srv, ln, nil)
		// The warning is written before Serve starts answering, so once a request has been
		// answered it is in the log.
		if code, _ := get(t, http.DefaultClient, "http://"+ln.Addr().String()+"/healthz", ""); code != 200 {
			t.Fatalf("healthz = %d", code)
		}
		stop()
		if !strings.Contains(env.logs.String(), "no API tokens configured") {
			t.Errorf("no warning in the log:\n%s", env.logs)
		}
	})
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "osprey admin test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
