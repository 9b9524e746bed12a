package smoke_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/backoff"
	"github.com/nodeagent/nodeagent/smoke"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestHTTPCheck(t *testing.T) {
	var gotHost atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost.Store(r.Host)
		switch r.URL.Path {
		case "/":
			fmt.Fprint(w, "<h1>Welcome to the shop</h1>")
		case "/broken":
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "Fatal error: Uncaught PDOException")
		case "/slow":
			time.Sleep(60 * time.Millisecond)
			fmt.Fprint(w, "Welcome, slowly")
		case "/old":
			http.Redirect(w, r, "/", http.StatusMovedPermanently)
		case "/long":
			fmt.Fprint(w, strings.Repeat("a", 200)+strings.Repeat("b", 100))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name    string
		check   smoke.HTTPCheck
		wantErr []string // substrings of the error; nil means pass
		notErr  []string // substrings the error must not contain
	}{
		{
			name:  "passes with status and body",
			check: smoke.HTTPCheck{Path: "/", Status: 200, Contains: "Welcome"},
		},
		{
			name:  "status zero means 200",
			check: smoke.HTTPCheck{Path: "/", Contains: "Welcome"},
		},
		{
			name:    "status mismatch",
			check:   smoke.HTTPCheck{Path: "/broken", Status: 200},
			wantErr: []string{"want status 200, got 500", "GET " + srv.URL + "/broken", "Host www.shop.example", `body "Fatal error: Uncaught PDOException"`},
		},
		{
			name:  "expected non-200 status passes",
			check: smoke.HTTPCheck{Path: "/missing", Status: 404},
		},
		{
			name:    "contains miss",
			check:   smoke.HTTPCheck{Path: "/", Contains: "Goodbye"},
			wantErr: []string{`want body containing "Goodbye", not found`, "status 200", `body "<h1>Welcome to the shop</h1>"`},
		},
		{
			name:    "latency exceeded",
			check:   smoke.HTTPCheck{Path: "/slow", MaxLatency: 10 * time.Millisecond},
			wantErr: []string{"want latency at most 10ms, took "},
		},
		{
			name:  "latency within bound",
			check: smoke.HTTPCheck{Path: "/", MaxLatency: 5 * time.Second},
		},
		{
			name:    "body excerpt is the first 200 bytes",
			check:   smoke.HTTPCheck{Path: "/long", Contains: "c"},
			wantErr: []string{`body "` + strings.Repeat("a", 200) + `…"`},
			notErr:  []string{"bbb"},
		},
		{
			name:  "redirect is not followed",
			check: smoke.HTTPCheck{Path: "/old", Status: 301, Client: nil},
		},
		{
			name:    "no base URL",
			check:   smoke.HTTPCheck{BaseURL: "-"},
			wantErr: []string{"no base URL"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.check
			c.CheckName = "shop/home"
			switch c.BaseURL {
			case "":
				c.BaseURL = srv.URL
			case "-":
				c.BaseURL = ""
			}
			c.Host = "www.shop.example"
			if c.Status != 301 {
				c.Client = srv.Client()
			}
			err := c.Run(t.Context())
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if got := gotHost.Load(); got != "www.shop.example" {
					t.Errorf("server saw Host %q, want www.shop.example", got)
				}
				return
			}
			if err == nil {
				t.Fatal("Run passed, want an error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "smoke: shop/home: ") {
				t.Errorf("error %q does not start with the check name", msg)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			for _, not := range tt.notErr {
				if strings.Contains(strings.TrimPrefix(msg, "smoke: shop/home: GET "+srv.URL+"/long (Host www.shop.example): "), not) {
					t.Errorf("error %q contains %q", msg, not)
				}
			}
		})
	}
}

func TestPHPProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != smoke.ProbePath || r.Host != "www.shop.example" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "nodeagent-php-ok 8.2.29")
	}))
	t.Cleanup(srv.Close)

	if err := smoke.PHPProbe("shop/php-probe", srv.URL, "www.shop.example", srv.Client()).Run(t.Context()); err != nil {
		t.Errorf("probe through the right vhost: %v", err)
	}
	err := smoke.PHPProbe("shop/php-probe", srv.URL, "other.example", srv.Client()).Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "want status 200, got 404") {
		t.Errorf("probe through the wrong vhost: got %v, want a 404 failure", err)
	}
}

// TestRunRetriesUntilServerStarts points a check at a port where nothing
// listens yet and starts the server there while Run is retrying.
// fakeApache is an http.RoundTripper standing in for Apache in memory,
// for the tests that run on a synctest bubble's clock: it records when
// each request came, and answers with answer(elapsed since it was made).
type fakeApache struct {
	start  time.Time
	answer func(since time.Duration) (status int, body string, err error)

	mu    sync.Mutex
	times []time.Duration
}

func (f *fakeApache) RoundTrip(r *http.Request) (*http.Response, error) {
	since := time.Since(f.start)
	f.mu.Lock()
	f.times = append(f.times, since)
	f.mu.Unlock()
	status, body, err := f.answer(since)
	if err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
}

func (f *fakeApache) requests() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.times...)
}

// checkBackoffGaps fails the test unless the wait before each retry n
// (from 0) was in [Step(n)/2, Step(n)).
func checkBackoffGaps(t *testing.T, times []time.Duration, base time.Duration) {
	t.Helper()
	policy := backoff.Policy{Base: base, Max: smoke.MaxBackoff}
	for n := 1; n < len(times); n++ {
		step := policy.Step(n - 1)
		if gap := times[n] - times[n-1]; gap < step/2 || gap >= step {
			t.Errorf("retry %d came %s after the attempt before, want [%s, %s)", n-1, gap, step/2, step)
		}
	}
}

func TestRunRetriesUntilServerStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const up, base = 300 * time.Millisecond, 20 * time.Millisecond
		// Apache refuses connections for its first 300ms.
		apache := &fakeApache{start: time.Now(), answer: func(since time.Duration) (int, string, error) {
			if since < up {
				return 0, "", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
			}
			return http.StatusOK, "Welcome", nil
		}}
		check := &smoke.HTTPCheck{CheckName: "shop/home", BaseURL: "http://127.0.0.1:8080", Host: "www.shop.example", Path: "/", Contains: "Welcome",
			Client: &http.Client{Transport: apache}}
		rs := smoke.Run(t.Context(), []smoke.Check{check}, smoke.RunOptions{
			Deadline: 10 * time.Second, Backoff: base, Logger: testLogger(t),
		})
		if len(rs) != 1 {
			t.Fatalf("got %d results, want 1", len(rs))
		}
		r := rs[0]
		if !r.OK || r.Err != "" {
			t.Fatalf("result %+v, want OK", r)
		}
		// Retries wait [10,20), [20,40), [40,80), [80,160), [160,320) ms:
		// the fifth attempt starts before 300ms (at most 20+40+80+160), the
		// sixth after it (at least 10+20+40+80+160).
		times := apache.requests()
		if r.Attempts != 6 || len(times) != 6 {
			t.Errorf("attempts = %d, requests = %d, want 6: five refused, then the server answers", r.Attempts, len(times))
		}
		checkBackoffGaps(t, times, base)
		if last := times[len(times)-1]; r.Duration != last || last < up {
			t.Errorf("duration = %s, want the time of the passing attempt %s, after the server's start at %s", r.Duration, last, up)
		}
		if smoke.Failed(rs) {
			t.Error("Failed = true for a passing run")
		}
	})
}

func TestRunDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const deadline, base = 400 * time.Millisecond, 10 * time.Millisecond
		apache := &fakeApache{start: time.Now(), answer: func(time.Duration) (int, string, error) {
			return http.StatusInternalServerError, "still broken\n", nil
		}}
		check := &smoke.HTTPCheck{CheckName: "shop/home", BaseURL: "http://127.0.0.1:8080", Path: "/", Client: &http.Client{Transport: apache}}
		rs := smoke.Run(t.Context(), []smoke.Check{check}, smoke.RunOptions{
			Deadline: deadline, Backoff: base, Logger: testLogger(t),
		})
		elapsed := time.Since(apache.start)

		r := rs[0]
		if r.OK {
			t.Fatalf("result %+v, want a failure", r)
		}
		if !strings.Contains(r.Err, "want status 200, got 500") {
			t.Errorf("Err = %q, want the last attempt's status mismatch", r.Err)
		}
		// Retries wait [5,10), [10,20), [20,40), [40,80), [80,160),
		// [160,320), [320,640) ms: six attempts surely start within 400ms
		// (at most 10+20+40+80+160 = 310), an eighth never (at least
		// 5+10+20+40+80+160+320 = 635).
		times := apache.requests()
		if r.Attempts < 6 || r.Attempts > 7 || r.Attempts != len(times) {
			t.Errorf("attempts = %d, requests = %d; want equal, 6 or 7", r.Attempts, len(times))
		}
		checkBackoffGaps(t, times, base)
		// No wait for a retry that could not start before the deadline:
		// Run returns at the last attempt, and the retry after it would
		// have started past the deadline.
		last := times[len(times)-1]
		if r.Duration != last || elapsed != last {
			t.Errorf("Run returned %s after the start (duration %s), want at once after the last attempt at %s", elapsed, r.Duration, last)
		}
		if step := (backoff.Policy{Base: base, Max: smoke.MaxBackoff}).Step(len(times) - 1); last+step <= deadline {
			t.Errorf("gave up at %s although a retry within %s fitted the %s deadline", last, step, deadline)
		}
		if !smoke.Failed(rs) {
			t.Error("Failed = false for a failing run")
		}
	})
}

func TestRunCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rs := smoke.Run(ctx, []smoke.Check{&smoke.MemcachedCheck{CheckName: "memcached", Addr: "127.0.0.1:1"}}, smoke.RunOptions{})
	if rs[0].OK || rs[0].Attempts != 1 || rs[0].Err == "" {
		t.Errorf("result %+v, want one failed attempt", rs[0])
	}
}

// barrierCheck passes only once every check of the run has started, so it
// proves the checks run concurrently; it also records when it ran.
type barrierCheck struct {
	name    string
	started *atomic.Int64
	total   int64
	fail    bool
}

func (c *barrierCheck) Name() string { return c.name }

func (c *barrierCheck) Run(ctx context.Context) error {
	c.started.Add(1)
	for c.started.Load() < c.total {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: only %d of %d checks started: %w", c.name, c.started.Load(), c.total, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	if c.fail {
		return errors.New("deliberate failure")
	}
	return nil
}

func TestRunConcurrentInInputOrder(t *testing.T) {
	var started atomic.Int64
	names := []string{"zeta", "alpha", "mid", "beta", "omega"}
	var checks []smoke.Check
	for i, n := range names {
		checks = append(checks, &barrierCheck{name: n, started: &started, total: int64(len(names)), fail: i == 2})
	}
	rs := smoke.Run(t.Context(), checks, smoke.RunOptions{
		Deadline: time.Second, Backoff: 10 * time.Millisecond, AttemptTimeout: time.Second,
	})
	var got []string
	for i, r := range rs {
		got = append(got, r.Name)
		if wantOK := i != 2; r.OK != wantOK {
			t.Errorf("%s: OK = %v, want %v (err %q)", r.Name, r.OK, wantOK, r.Err)
		}
	}
	if diff := cmp.Diff(names, got); diff != "" {
		t.Errorf("result order (-want +got):\n%s", diff)
	}
}

func TestWriteTable(t *testing.T) {
	rs := []smoke.Result{
		{Name: "shop/home", OK: true, Attempts: 1, Duration: 12345 * time.Microsecond},
		{Name: "shop/php-probe", OK: true, Attempts: 3, Duration: 1500 * time.Millisecond},
		{Name: "blog/feed", OK: false, Attempts: 7, Duration: 30 * time.Second,
			Err: "smoke: blog/feed: GET http://127.0.0.1:80/feed (Host blog.example): want status 200, got 502 (status 502, latency 3ms, body \"a\\nb\")\nsecond line"},
		{Name: "memcached", OK: true, Attempts: 1, Duration: 400 * time.Microsecond},
	}
	var b strings.Builder
	if err := smoke.WriteTable(&b, rs); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("table (-golden +got):\n%s", diff)
	}
}

func TestForNode(t *testing.T) {
	client := &http.Client{}
	d := &nodeagent.Desired{
		Services: []nodeagent.Service{{Name: nodeagent.ServiceApache}, {Name: nodeagent.ServicePHPFPM}, {Name: nodeagent.ServiceMemcached}},
		Products: []nodeagent.DesiredProduct{
			{Name: "shop", ServerName: "www.shop.example", Smoke: []nodeagent.SmokeCheck{
				{Name: "home", Path: "/", Contains: "Welcome"},
				{Name: "api", Path: "/api/ping", Status: 204, MaxLatencyMS: 250},
			}},
			{Name: "blog", ServerName: "blog.example"},
		},
		Local: nodeagent.LocalEndpoints{HTTP: "http://10.0.1.5:80", Memcached: "10.0.1.5:11211"},
	}
	got := smoke.ForNode(d, client)
	want := []smoke.Check{
		&smoke.HTTPCheck{CheckName: "shop/home", BaseURL: "http://10.0.1.5:80", Host: "www.shop.example", Path: "/", Status: 200, Contains: "Welcome", Client: client},
		&smoke.HTTPCheck{CheckName: "shop/api", BaseURL: "http://10.0.1.5:80", Host: "www.shop.example", Path: "/api/ping", Status: 204, MaxLatency: 250 * time.Millisecond, Client: client},
		&smoke.HTTPCheck{CheckName: "shop/php-probe", BaseURL: "http://10.0.1.5:80", Host: "www.shop.example", Path: smoke.ProbePath, Status: 200, Contains: smoke.ProbeMarker, Client: client},
		&smoke.HTTPCheck{CheckName: "blog/php-probe", BaseURL: "http://10.0.1.5:80", Host: "blog.example", Path: smoke.ProbePath, Status: 200, Contains: smoke.ProbeMarker, Client: client},
		&smoke.MemcachedCheck{CheckName: "memcached", Addr: "10.0.1.5:11211"},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b *http.Client) bool { return a == b })); diff != "" {
		t.Errorf("ForNode (-want +got):\n%s", diff)
	}

	db := &nodeagent.Desired{Services: nil}
	if got := smoke.ForNode(db, nil); len(got) != 0 {
		t.Errorf("a node with no products and no memcached got %d checks", len(got))
	}
}

// TestForNodeThroughVhosts runs a node's checks against a server that routes
// by Host header the way Apache's name-based vhosts do.
func TestForNodeThroughVhosts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Host == "www.shop.example" && r.URL.Path == "/":
			fmt.Fprint(w, "Welcome to the shop")
		case r.URL.Path == smoke.ProbePath && (r.Host == "www.shop.example" || r.Host == "blog.example"):
			fmt.Fprint(w, smoke.ProbeMarker)
		case r.Host == "blog.example" && r.URL.Path == "/":
			fmt.Fprint(w, "Blog home")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	d := &nodeagent.Desired{Products: []nodeagent.DesiredProduct{
		{Name: "shop", ServerName: "www.shop.example", Smoke: []nodeagent.SmokeCheck{{Name: "home", Path: "/", Contains: "Welcome"}}},
		{Name: "blog", ServerName: "blog.example", Smoke: []nodeagent.SmokeCheck{{Name: "home", Path: "/", Contains: "Welcome"}}},
	}, Local: nodeagent.LocalEndpoints{HTTP: srv.URL}}
	rs := smoke.Run(t.Context(), smoke.ForNode(d, srv.Client()), smoke.RunOptions{
		Deadline: 300 * time.Millisecond, Backoff: 50 * time.Millisecond, Logger: testLogger(t),
	})
	got := map[string]bool{}
	for _, r := range rs {
		got[r.Name] = r.OK
	}
	want := map[string]bool{"shop/home": true, "shop/php-probe": true, "blog/home": false, "blog/php-probe": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

// startMemcached starts the real memcached on a free loopback port and stops
// it when the test ends.
func startMemcached(t *testing.T) string {
	t.Helper()
	bin := "/usr/bin/memcached"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("memcached is required for this test (apt-get install memcached): %v", err)
	}
	for try := 0; try < 3; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

		cmd := exec.Command(bin, "-u", "memcache", "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "16")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start memcached: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case err := <-exited:
				exited <- err // for the cleanup
				t.Logf("memcached on %s exited: %v: %s", addr, err, stderr.String())
				goto next
			default:
			}
			if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
				c.Close()
				return addr
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("memcached on %s did not accept connections within 5s: %s", addr, stderr.String())
	next:
	}
	t.Fatal("memcached could not start on a free port in 3 tries")
	return ""
}

// fakeTCP answers every connection with answer (or nothing when silent) and
// stops when the test ends.
func fakeTCP(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 64)
				c.Read(buf)
				if answer != "" {
					io.WriteString(c, answer)
				} else {
					c.Read(buf) // silent: wait for the client to give up
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestMemcachedCheck(t *testing.T) {
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	tests := []struct {
		name    string
		addr    func(t *testing.T) string
		wantErr string
	}{
		{name: "real memcached", addr: startMemcached},
		{name: "garbage answer", addr: func(t *testing.T) string { return fakeTCP(t, "HTTP/1.1 400 Bad Request\r\n\r\n") }, wantErr: `want answer "VERSION x" to version, got "HTTP/1.1 400 Bad Request"`},
		{name: "error answer", addr: func(t *testing.T) string { return fakeTCP(t, "ERROR\r\n") }, wantErr: `got "ERROR"`},
		{name: "version without number", addr: func(t *testing.T) string { return fakeTCP(t, "VERSION \r\n") }, wantErr: `got "VERSION "`},
		{name: "silent server times out", addr: func(t *testing.T) string { return fakeTCP(t, "") }, wantErr: "read answer to version"},
		{name: "nothing listening", addr: func(*testing.T) string { return closed }, wantErr: "connection refused"},
		{name: "no address", addr: func(*testing.T) string { return "" }, wantErr: "no memcached address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.addr(t)
			c := &smoke.MemcachedCheck{CheckName: "memcached", Addr: addr, Timeout: 300 * time.Millisecond}
			err := c.Run(t.Context())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Run against %s: %v", addr, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run against %s: error %v, want one containing %q", addr, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "smoke: memcached: ") {
				t.Errorf("error %q does not name the check", err)
			}
		})
	}
}

// TestHTTPCheckRedirects: a redirect is the answer a check sees, never
// followed, whatever client the check was given: a check expecting 301 (and
// its Location) passes, a check expecting 200 on a redirecting path fails
// without reaching the host the redirect names.
func TestHTTPCheckRedirects(t *testing.T) {
	var followed atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
		fmt.Fprintln(w, "Welcome (the old fleet)")
	}))
	defer elsewhere.Close()
	apache := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/", http.StatusMovedPermanently)
	}))
	defer apache.Close()

	following := &http.Client{Timeout: 5 * time.Second} // follows redirects by default
	for _, client := range []*http.Client{nil, following} {
		expect301 := &smoke.HTTPCheck{CheckName: "tls", BaseURL: apache.URL, Path: "/", Status: 301, Location: elsewhere.URL + "/", Client: client}
		if err := expect301.Run(t.Context()); err != nil {
			t.Errorf("check expecting 301 to %s/: %v", elsewhere.URL, err)
		}
		wrongPlace := &smoke.HTTPCheck{CheckName: "tls", BaseURL: apache.URL, Path: "/", Status: 301, Location: "https://www.shop.example/", Client: client}
		if err := wrongPlace.Run(t.Context()); err == nil || !strings.Contains(err.Error(), `want Location "https://www.shop.example/"`) {
			t.Errorf("check expecting another Location: %v, want a Location mismatch", err)
		}
		expect200 := &smoke.HTTPCheck{CheckName: "home", BaseURL: apache.URL, Path: "/", Contains: "Welcome", Client: client}
		if err := expect200.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "want status 200, got 301") {
			t.Errorf("check expecting 200 on a redirecting path: %v, want it to fail on the 301", err)
		}
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("the redirect target was requested %d times, want never", n)
	}
}

// TestHTTPClientUsesNoProxy: the smoke client's transport has no Proxy
// function, so HTTP_PROXY never routes a check away from this node's
// Apache. (A request cannot show it on loopback: Go never proxies
// 127.0.0.1 or localhost.) Each request is bounded by the client timeout.
func TestHTTPClientUsesNoProxy(t *testing.T) {
	c := smoke.NewHTTPClient(3 * time.Second)
	if tr, ok := c.Transport.(*http.Transport); !ok || tr.Proxy != nil {
		t.Fatalf("smoke client transport %T, want an *http.Transport with no Proxy function", c.Transport)
	}
	if c.Timeout != 3*time.Second {
		t.Errorf("smoke client timeout %s, want the per-request bound 3s", c.Timeout)
	}
	if c.CheckRedirect == nil {
		t.Error("smoke client follows redirects")
	}
}

// QuietResults leaves the results out of the log, attempts aside; and
// LogResults logs them afterwards as Run would have.
func TestQuietResultsAreLoggedByTheCaller(t *testing.T) {
	checks := func() []smoke.Check {
		var started atomic.Int64
		return []smoke.Check{
			&barrierCheck{name: "good", started: &started, total: 2},
			&barrierCheck{name: "bad", started: &started, total: 2, fail: true},
		}
	}
	opts := smoke.RunOptions{Deadline: 50 * time.Millisecond, Backoff: 10 * time.Millisecond, AttemptTimeout: time.Second}
	results := func(b *bytes.Buffer) string {
		var lines []string
		for l := range strings.Lines(b.String()) {
			if strings.Contains(l, "msg=\"smoke check passed\"") || strings.Contains(l, "msg=\"smoke check failed\"") {
				// Attempts and durations differ between runs (the bad
				// check retries until the deadline); the rest must not.
				lines = append(lines, l[:strings.Index(l, " attempts=")])
			}
		}
		return strings.Join(lines, "\n")
	}
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}

	var logged bytes.Buffer
	o := opts
	o.Logger = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{ReplaceAttr: noTime}))
	smoke.Run(t.Context(), checks(), o)
	want := results(&logged)
	if !strings.Contains(want, "check=good") || !strings.Contains(want, "check=bad") {
		t.Fatalf("Run logged no result of each check:\n%s", logged.String())
	}

	var quiet bytes.Buffer
	o.Logger = slog.New(slog.NewTextHandler(&quiet, &slog.HandlerOptions{ReplaceAttr: noTime}))
	o.QuietResults = true
	rs := smoke.Run(t.Context(), checks(), o)
	if got := results(&quiet); got != "" {
		t.Errorf("Run with QuietResults logged results:\n%s", got)
	}
	smoke.LogResults(o.Logger, rs)
	if got := results(&quiet); got != want {
		t.Errorf("LogResults logged\n%s\nwant what Run logs\n%s", got, want)
	}
}
