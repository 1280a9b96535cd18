package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/mllp"
)

// BenchmarkServe runs the product as an operator does: the `osprey` binary in a process of
// its own (`osprey serve`, default settings, embedded NATS with sync always, SQLite), with
// the senders and the destination's peer in this process. The in-process benchmarks share
// one Go runtime between the engine, its load and its peer; here the engine's numbers
// (CPU per message, RSS) are its own, and it runs with the runtime settings `serve` applies.
//
// procs=default is `server.procs` as shipped (twice the CPUs); procs=cpus is one thread per
// CPU, Go's own default, beside it.
func BenchmarkServe(b *testing.B) {
	bin := ospreyBinary(b)
	cpus := runtime.NumCPU()
	for _, load := range []struct {
		name  string
		rate  float64 // per second over all connections; 0 = as fast as the ACKs come
		n     int
		conns int
	}{
		{"conns=32", 0, 30000, 32},
		{"rate=1000/conns=32", 1000, 5000, 32},
	} {
		for _, procs := range []struct {
			name string
			n    int
		}{{"default", 0}, {"cpus", cpus}} {
			b.Run(fmt.Sprintf("sync=always/%s/procs=%s", load.name, procs.name), func(b *testing.B) {
				s := startServe(b, bin, procs.n)
				n := max(b.N, load.n)
				b.ResetTimer()
				cpu0 := s.cpu(b)
				start := time.Now()
				profiled := s.profileCPU(b)
				lat := drive(b, s.in, load.conns, n, load.rate/float64(load.conns))
				elapsed := time.Since(start)
				profiled()
				all := s.peer.waitDelivered(b, len(lat)).Sub(start)
				cpu := s.cpu(b) - cpu0
				b.StopTimer()
				if load.rate == 0 {
					b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "msgs/s")
					b.ReportMetric(float64(len(lat))/all.Seconds(), "delivered/s")
				}
				reportLatency(b, lat)
				b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "cpu_us/msg")
				b.ReportMetric(s.rssMB(), "rss_MB")
			})
		}
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// ospreyBinary builds cmd/osprey once per run of the benchmarks. OSPREY_BENCH_BINARY names a
// binary built elsewhere instead, so that an earlier version can be measured beside this one
// in the same hour (one that predates server.procs runs only the procs=default cases).
func ospreyBinary(b *testing.B) string {
	b.Helper()
	if p := os.Getenv("OSPREY_BENCH_BINARY"); p != "" {
		return p
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "osprey-bench-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "osprey")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/osprey").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		b.Fatal(binErr)
	}
	return binPath
}

// served is a running `osprey serve` with its destination's peer.
type served struct {
	in    string
	admin string
	token string // an admin token, when profiles are asked for
	cmd   *exec.Cmd
	out   *bytes.Buffer
	peer  *peer
}

// profileEnv names a directory for CPU profiles of the serve process: with it set, each run
// takes one of profileSeconds from the start of its load, through the admin API, and writes
// it there as <benchmark>.pprof (`go tool pprof -top osprey <file>` reads it). The profiler
// costs the engine some CPU, so the figures of such a run are not for comparing.
const (
	profileEnv     = "OSPREY_BENCH_PROFILE_DIR"
	profileSeconds = 2
)

// profileCPU starts a CPU profile of the serve process when profileEnv asks for one; the
// function it returns waits for the profile and writes it.
func (s *served) profileCPU(b *testing.B) (wait func()) {
	dir := os.Getenv(profileEnv)
	if dir == "" {
		return func() {}
	}
	done := make(chan error, 1)
	file := filepath.Join(dir, strings.NewReplacer("/", "_", "=", "-").Replace(b.Name())+".pprof")
	go func() {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/api/v1/debug/pprof/profile?seconds=%d", s.admin, profileSeconds), nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if err == nil {
			err = os.WriteFile(file, body, 0o644)
		}
		done <- err
	}()
	return func() {
		if err := <-done; err != nil {
			b.Errorf("CPU profile of osprey serve: %v", err)
			return
		}
		b.Logf("CPU profile of osprey serve (%ds from the start of the load): %s", profileSeconds, file)
	}
}

func startServe(b *testing.B, bin string, procs int) *served {
	b.Helper()
	s := &served{out: &bytes.Buffer{}, peer: startPeer(b)}

	dir := b.TempDir()
	s.in = freeAddr(b)
	s.admin = freeAddr(b)
	extra := "" // procs: the default is left out, so that a binary older than the setting runs too
	if procs > 0 {
		extra = fmt.Sprintf("\n  procs: %d", procs)
	}
	if os.Getenv(profileEnv) != "" {
		s.token = fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), os.Getpid())
		extra = "\n  admin: {listen: " + strconv.Quote(s.admin) + ", tokens: [{name: bench, token: \"${OSPREY_BENCH_TOKEN}\", role: admin}]}" + extra
	} else {
		extra = "\n  admin: {listen: " + strconv.Quote(s.admin) + "}" + extra
	}
	cfg := fmt.Sprintf(`server:
  data_dir: %q%s
  log: {level: warn}
channels:
  - name: bench
    source: {mllp: {address: %q}}
    destinations:
      - name: out
        mllp: {address: %q, connections: 4}
`, filepath.Join(dir, "data"), extra, s.in, s.peer.addr)
	path := filepath.Join(dir, "osprey.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	s.cmd = exec.Command(bin, "serve", "-c", path)
	// The engine's threads are set by server.procs, not by whatever this shell exported.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	s.cmd.Env = append(s.cmd.Env, "OSPREY_BENCH_TOKEN="+s.token)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				b.Errorf("osprey serve exited: %v\n%s", err, s.out)
			}
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			b.Errorf("osprey serve did not stop within 30s of SIGTERM\n%s", s.out)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := mllp.Dial(context.Background(), mllp.ClientConfig{Address: s.in})
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			b.Fatalf("osprey serve never listened on %s: %v\n%s", s.in, err, s.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cpu is the CPU time (user and system) the serve process has used so far.
func (s *served) cpu(b *testing.B) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		b.Skipf("CPU time of the serve process: %v (this benchmark reads /proc, which Linux has)", err)
	}
	// The fields after the command name (which may hold spaces) start after its ')'.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ, 100 on Linux
}

// rssMB is the serve process's resident set now.
func (s *served) rssMB() float64 { return rssOf(strconv.Itoa(s.cmd.Process.Pid)) }
