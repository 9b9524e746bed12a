package readiness_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent/readiness"
	"github.com/nodeagent/nodeagent/smoke"
)

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// recorder is a Notifier that keeps every message.
type recorder struct {
	mu   sync.Mutex
	msgs []string
	// onNotify, when set, runs inside Notify (to look at the other faces
	// at the moment systemd is told).
	onNotify func(msg string)
}

func (r *recorder) Notify(state string) error {
	if r.onNotify != nil {
		r.onNotify(state)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, state)
	return nil
}

// take returns and forgets the messages so far.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.msgs
	r.msgs = nil
	return m
}

func get(t *testing.T, h http.Handler, path, remote string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func fileContent(t *testing.T, path string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

var (
	smokeOK = []smoke.Result{
		{Name: "shop/home", OK: true, Attempts: 1},
		{Name: "shop/php-probe", OK: true, Attempts: 2},
	}
	smokeBad = []smoke.Result{
		{Name: "shop/home", OK: false, Err: "want status 200, got 500", Attempts: 9},
		{Name: "shop/php-probe", OK: true, Attempts: 1},
	}
)

func TestTransitions(t *testing.T) {
	root := t.TempDir()
	health := filepath.Join(root, "var/lib/nodeagent/health/ready")
	// A health file left by an earlier process must not survive New.
	if err := os.MkdirAll(filepath.Dir(health), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(health, []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	n := &recorder{}
	s := readiness.New(readiness.Options{
		HealthFile: health, Notifier: n, Logger: testLogger(t),
		Now: func() time.Time { now = now.Add(time.Second); return now },
	})
	h := s.Handler(true)
	applyOK := func(st *readiness.Status) {
		st.LastApply, st.LastApplyOK, st.ApplyError = now, true, ""
		st.Serial, st.SeenSerial = 42, 42
		st.Smoke = smokeOK
	}

	steps := []struct {
		name       string
		update     func(*readiness.Status) // nil: no update (initial state)
		drain      bool
		wantCode   int
		wantReason string
		wantFile   bool
		wantNotify []string
	}{
		{
			name:       "new state is not ready and removed the stale file",
			wantCode:   503,
			wantReason: "not applied yet",
		},
		{
			name:       "apply ok and smoke ok is ready",
			update:     applyOK,
			wantCode:   200,
			wantReason: "serial 42 applied, 2 smoke checks passed",
			wantFile:   true,
			wantNotify: []string{"READY=1\nSTATUS=ready: serial 42 applied, 2 smoke checks passed"},
		},
		{
			name: "a refused document keeps the node ready",
			update: func(st *readiness.Status) {
				st.SeenSerial, st.LastError, st.LastErrorAt = 43, "topology: serial 43: products.shop.release.sha256: not 64 hex digits", now
			},
			wantCode:   200,
			wantReason: "serial 42 applied, 2 smoke checks passed",
			wantFile:   true,
		},
		{
			name:       "failed smoke check",
			update:     func(st *readiness.Status) { st.Smoke = smokeBad },
			wantCode:   503,
			wantReason: "smoke checks failed: shop/home",
			wantNotify: []string{"STATUS=not ready: smoke checks failed: shop/home"},
		},
		{
			name:       "same failure again sends nothing",
			update:     func(st *readiness.Status) { st.Smoke = smokeBad },
			wantCode:   503,
			wantReason: "smoke checks failed: shop/home",
		},
		{
			name:       "smoke passes again",
			update:     func(st *readiness.Status) { st.Smoke = smokeOK },
			wantCode:   200,
			wantReason: "serial 42 applied, 2 smoke checks passed",
			wantFile:   true,
			wantNotify: []string{"READY=1\nSTATUS=ready: serial 42 applied, 2 smoke checks passed"},
		},
		{
			name: "failed apply",
			update: func(st *readiness.Status) {
				st.LastApplyOK, st.ApplyError = false, "plan: apache config check: AH00526: Syntax error"
			},
			wantCode:   503,
			wantReason: "last apply failed",
			wantNotify: []string{"STATUS=not ready: last apply failed"},
		},
		{
			name:       "apply recovers",
			update:     applyOK,
			wantCode:   200,
			wantReason: "serial 42 applied, 2 smoke checks passed",
			wantFile:   true,
			wantNotify: []string{"READY=1\nSTATUS=ready: serial 42 applied, 2 smoke checks passed"},
		},
		{
			name:       "drain",
			drain:      true,
			wantCode:   503,
			wantReason: "draining",
			wantNotify: []string{"STATUS=draining"},
		},
		{
			name:       "updates while draining stay not ready",
			update:     applyOK,
			wantCode:   503,
			wantReason: "draining",
		},
	}
	lastSince := s.Snapshot().Since
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			switch {
			case step.drain:
				s.Drain()
			case step.update != nil:
				s.Update(step.update)
			}
			code, body := get(t, h, "/ready", "127.0.0.1:40000")
			if code != step.wantCode {
				t.Errorf("/ready code = %d, want %d", code, step.wantCode)
			}
			wantBody := fmt.Sprintf(`{"ready":%v,"reason":%q}`+"\n", step.wantCode == 200, step.wantReason)
			if body != wantBody {
				t.Errorf("/ready body = %q, want %q", body, wantBody)
			}
			content, exists := fileContent(t, health)
			if exists != step.wantFile || (exists && content != "ok\n") {
				t.Errorf("health file exists=%v content=%q, want exists=%v content \"ok\\n\"", exists, content, step.wantFile)
			}
			if diff := cmp.Diff(step.wantNotify, n.take()); diff != "" {
				t.Errorf("notifications (-want +got):\n%s", diff)
			}
			snap := s.Snapshot()
			if snap.Ready != (step.wantCode == 200) || snap.Reason != step.wantReason {
				t.Errorf("Snapshot ready=%v reason=%q", snap.Ready, snap.Reason)
			}
			if changed := step.wantNotify != nil; changed != !snap.Since.Equal(lastSince) {
				t.Errorf("Since = %s after a step that changed readiness=%v (before %s)", snap.Since, changed, lastSince)
			}
			lastSince = snap.Since
		})
	}
}

// TestFacesAgreeWhenNotified looks at the health file and /ready at the
// moment systemd is told: by then both must already say the same thing.
func TestFacesAgreeWhenNotified(t *testing.T) {
	health := filepath.Join(t.TempDir(), "health", "ready")
	n := &recorder{}
	s := readiness.New(readiness.Options{HealthFile: health, Notifier: n, Logger: testLogger(t)})
	h := s.Handler(false)
	var checked int
	n.onNotify = func(msg string) {
		checked++
		_, exists := fileContent(t, health)
		code, _ := get(t, h, "/ready", "")
		ready := strings.HasPrefix(msg, "READY=1")
		if exists != ready || (code == 200) != ready {
			t.Errorf("notify %q: health file exists=%v, /ready=%d", msg, exists, code)
		}
	}
	for i := range 6 {
		s.Update(func(st *readiness.Status) {
			st.LastApply, st.LastApplyOK = time.Now(), true
			st.Smoke = smokeOK
			if i%2 == 1 {
				st.Smoke = smokeBad
			}
		})
	}
	s.Drain()
	if checked != 7 {
		t.Errorf("notifier ran %d times, want 7", checked)
	}
}

func TestHealthFileCannotBeCreated(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "health")
	if err := os.WriteFile(blocker, []byte("a file where the directory should be"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &recorder{}
	s := readiness.New(readiness.Options{HealthFile: filepath.Join(blocker, "ready"), Notifier: n, Logger: testLogger(t)})
	s.Update(func(st *readiness.Status) {
		st.LastApply, st.LastApplyOK, st.Smoke = time.Now(), true, smokeOK
	})
	code, body := get(t, s.Handler(false), "/ready", "")
	if code != 503 || body != `{"ready":false,"reason":"cannot create the ELB health file"}`+"\n" {
		t.Errorf("/ready = %d %q, want 503 with the health file reason", code, body)
	}
	if diff := cmp.Diff([]string{"STATUS=not ready: cannot create the ELB health file"}, n.take()); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
}

func TestHandler(t *testing.T) {
	s := readiness.New(readiness.Options{HealthFile: filepath.Join(t.TempDir(), "ready"), Logger: testLogger(t)})
	s.Update(func(st *readiness.Status) {
		st.LastApply, st.LastApplyOK = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), true
		st.Serial, st.SeenSerial = 7, 8
		st.Release = map[string]string{"shop": "2026.11.20-1"}
		st.Smoke = smokeOK
		st.LastError = "topology: serial 8 refused"
		st.Instance, st.Role, st.Node = "i-0abc", "web", ""
	})

	tests := []struct {
		name     string
		method   string
		path     string
		remote   string
		loopback bool
		wantCode int
		wantBody string // exact; "" means check below
	}{
		{name: "ready", path: "/ready", wantCode: 200, wantBody: `{"ready":true,"reason":"serial 7 applied, 2 smoke checks passed"}` + "\n"},
		{name: "head ready", method: http.MethodHead, path: "/ready", wantCode: 200},
		{name: "post ready", method: http.MethodPost, path: "/ready", wantCode: 405},
		{name: "live", path: "/live", wantCode: 200, wantBody: `{"live":true}` + "\n"},
		{name: "status from loopback v4", path: "/status", remote: "127.0.0.1:5000", loopback: true, wantCode: 200},
		{name: "status from loopback 127.3.4.5", path: "/status", remote: "127.3.4.5:5000", loopback: true, wantCode: 200},
		{name: "status from loopback v6", path: "/status", remote: "[::1]:5000", loopback: true, wantCode: 200},
		{name: "status from mapped loopback", path: "/status", remote: "[::ffff:127.0.0.1]:5000", loopback: true, wantCode: 200},
		{name: "status from the network refused", path: "/status", remote: "10.0.1.7:5000", loopback: true, wantCode: 403,
			wantBody: `{"error":"/status is limited to loopback clients"}` + "\n"},
		{name: "status from garbage remote refused", path: "/status", remote: "nonsense", loopback: true, wantCode: 403},
		{name: "status from the network allowed when not restricted", path: "/status", remote: "10.0.1.7:5000", wantCode: 200},
		{name: "unknown path", path: "/nope", wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(cmpOr(tt.method, http.MethodGet), tt.path, nil)
			if tt.remote != "" {
				req.RemoteAddr = tt.remote
			}
			rec := httptest.NewRecorder()
			s.Handler(tt.loopback).ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d (body %q)", rec.Code, tt.wantCode, rec.Body.String())
			}
			if tt.wantBody != "" && rec.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want %q", rec.Body.String(), tt.wantBody)
			}
			if tt.wantCode == 200 && tt.method == "" {
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control = %q", cc)
				}
			}
			if tt.path == "/status" && tt.wantCode == 200 {
				var got readiness.Status
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
					t.Fatalf("decode /status: %v", err)
				}
				if diff := cmp.Diff(s.Snapshot(), got); diff != "" {
					t.Errorf("/status (-snapshot +got):\n%s", diff)
				}
				for _, key := range []string{`"seen_serial":8`, `"release":{"shop":"2026.11.20-1"}`, `"last_apply_ok":true`, `"last_error":"topology: serial 8 refused"`, `"duration_ns":0`} {
					if !strings.Contains(rec.Body.String(), key) {
						t.Errorf("/status body lacks %s: %s", key, rec.Body.String())
					}
				}
			}
		})
	}

	// The mux takes more routes, as cmd adds /metrics.
	mux := s.Mux(true)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "up 1\n") })
	if code, body := get(t, mux, "/metrics", ""); code != 200 || body != "up 1\n" {
		t.Errorf("/metrics on the mux = %d %q", code, body)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestSnapshotIsACopy(t *testing.T) {
	s := readiness.New(readiness.Options{})
	s.Update(func(st *readiness.Status) {
		st.LastApply, st.LastApplyOK = time.Now(), true
		st.Release = map[string]string{"shop": "r1"}
		st.Smoke = []smoke.Result{{Name: "a", OK: true}}
	})
	snap := s.Snapshot()
	snap.Release["shop"] = "mutated"
	snap.Smoke[0].OK = false
	again := s.Snapshot()
	if again.Release["shop"] != "r1" || !again.Smoke[0].OK {
		t.Errorf("mutating a snapshot changed the state: %+v", again)
	}
	if !again.Ready {
		t.Errorf("state not ready without a health file: %q", again.Reason)
	}
}

// TestConcurrent reads through every face while the state flips; run with
// -race.
func TestConcurrent(t *testing.T) {
	health := filepath.Join(t.TempDir(), "ready")
	s := readiness.New(readiness.Options{HealthFile: health, Notifier: &recorder{}, Logger: slog.New(slog.DiscardHandler)})
	h := s.Handler(true)
	const readers, rounds = 8, 200

	var wg sync.WaitGroup
	errs := make(chan error, readers)
	stop := make(chan struct{})
	for range readers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				code, body := get(t, h, "/ready", "")
				var rb struct {
					Ready  bool   `json:"ready"`
					Reason string `json:"reason"`
				}
				if err := json.Unmarshal([]byte(body), &rb); err != nil {
					errs <- fmt.Errorf("/ready body %q: %w", body, err)
					return
				}
				if rb.Ready != (code == 200) || rb.Reason == "" {
					errs <- fmt.Errorf("/ready said %d with %q", code, body)
					return
				}
				if code, body := get(t, h, "/status", "127.0.0.1:1"); code != 200 || !json.Valid([]byte(body)) {
					errs <- fmt.Errorf("/status %d %q", code, body)
					return
				}
				snap := s.Snapshot()
				if snap.Ready && len(snap.Smoke) > 0 && !snap.Smoke[0].OK {
					errs <- fmt.Errorf("snapshot ready with a failed smoke check: %+v", snap)
					return
				}
			}
		})
	}
	for i := range rounds {
		s.Update(func(st *readiness.Status) {
			st.LastApply, st.LastApplyOK = time.Now(), true
			st.Serial = int64(i)
			st.Release = map[string]string{"shop": fmt.Sprint("r", i)}
			if i%2 == 0 {
				st.Smoke = smokeOK
			} else {
				st.Smoke = smokeBad
			}
		})
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// The last round (odd) failed smoke: all faces say not ready.
	if _, exists := fileContent(t, health); exists {
		t.Error("health file exists after the final not-ready update")
	}
	if code, _ := get(t, h, "/ready", ""); code != 503 {
		t.Errorf("/ready = %d after the final not-ready update", code)
	}
}

func TestStatusFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "status.json")
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	s := readiness.New(readiness.Options{StatusFile: path, Now: func() time.Time { return now }})
	s.Update(func(st *readiness.Status) {
		st.LastApply, st.LastApplyOK, st.Serial = now, true, 42
		st.Release = map[string]string{"shop": "2026.11.20-1"}
		st.Smoke = []smoke.Result{{Name: "shop/home", OK: true, Attempts: 2, Duration: 1500 * time.Millisecond}}
		st.Instance, st.Role = "i-0abc", "web"
	})
	got, err := readiness.ReadStatusFile("", path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s.Snapshot(), got); diff != "" {
		t.Errorf("status file (-state +file):\n%s", diff)
	}
	if !got.Ready || got.Smoke[0].Duration != 1500*time.Millisecond {
		t.Errorf("status file lost data: %+v", got)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want only status.json (no temporary files left)", len(entries))
	}

	if _, err := readiness.ReadStatusFile("", filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"ready":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readiness.ReadStatusFile("", bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("corrupt file: err = %v, want an error naming %s", err, bad)
	}
}

// TestInitial checks that a State resumed from an earlier process's status
// of the same boot keeps a ready node's health file (no flap on an agent
// restart) and removes a stale one when the recorded state was not ready or
// was recorded in another boot (a reboot: nothing has checked the services
// since).
func TestInitial(t *testing.T) {
	const boot, earlier = "3f1c0d5e-boot-two", "9a7b2e41-boot-one"
	tests := []struct {
		name      string
		initial   readiness.Status
		bootID    string
		wantReady bool
	}{
		{"ready before", readiness.Status{LastApplyOK: true, Serial: 7, Smoke: smokeOK, BootID: boot}, boot, true},
		{"smoke failing before", readiness.Status{LastApplyOK: true, Serial: 7, Smoke: smokeBad, BootID: boot}, boot, false},
		{"never applied", readiness.Status{BootID: boot}, boot, false},
		{"draining is not resumed", readiness.Status{LastApplyOK: true, Serial: 7, Smoke: smokeOK, Draining: true, BootID: boot}, boot, true},
		{"ready in an earlier boot", readiness.Status{LastApplyOK: true, Serial: 7, Smoke: smokeOK, BootID: earlier}, boot, false},
		{"ready in an unrecorded boot", readiness.Status{LastApplyOK: true, Serial: 7, Smoke: smokeOK}, boot, false},
		{"boot id unknown now", readiness.Status{LastApplyOK: true, Serial: 7, Smoke: smokeOK, BootID: boot}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "health", "ready")
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(readiness.HealthFileContent), 0o644); err != nil {
				t.Fatal(err)
			}
			before, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			initial := tt.initial
			s := readiness.New(readiness.Options{HealthFile: file, Initial: &initial, BootID: tt.bootID})
			st := s.Snapshot()
			if st.Ready != tt.wantReady {
				t.Fatalf("ready = %v, want %v (reason %q)", st.Ready, tt.wantReady, st.Reason)
			}
			if st.BootID != tt.bootID {
				t.Errorf("status boot id %q, want this boot's %q", st.BootID, tt.bootID)
			}
			if initial.BootID != tt.bootID && (st.Serial != 7 || st.Reason != readiness.ReasonNotApplied) {
				t.Errorf("status after a reboot %+v, want serial 7 kept for /status and reason %q", st, readiness.ReasonNotApplied)
			}
			after, err := os.Stat(file)
			switch {
			case tt.wantReady && err != nil:
				t.Fatalf("health file gone for a resumed ready node: %v", err)
			case tt.wantReady && !os.SameFile(before, after):
				t.Error("health file was replaced: the load balancer could have seen a gap")
			case !tt.wantReady && !errors.Is(err, os.ErrNotExist):
				t.Errorf("health file kept for a node that is not ready (err %v)", err)
			}
		})
	}
}

// TestStatusRedactsURLSecrets: a presigned URL in an apply error shows on
// neither /status nor status.json with its query string or userinfo, and
// a status file an older agent wrote is redacted when read back.
func TestStatusRedactsURLSecrets(t *testing.T) {
	const url = "https://u:hunter2@releases.example/shop.tar.gz?X-Amz-Signature=SECRETSIG&X-Amz-Security-Token=SECRETTOK"
	file := filepath.Join(t.TempDir(), "status.json")
	s := readiness.New(readiness.Options{StatusFile: file})
	s.Update(func(st *readiness.Status) {
		st.LastError = "download " + url + ": 403"
		st.ApplyError = `Get "` + url + `": EOF`
		st.Smoke = []smoke.Result{{Name: "home", Err: "get " + url}}
	})
	snap, _ := json.Marshal(s.Snapshot())
	disk, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.Handler(false).ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	for name, b := range map[string]string{"snapshot": string(snap), "status.json": string(disk), "/status": rec.Body.String()} {
		for _, sec := range []string{"SECRETSIG", "SECRETTOK", "hunter2"} {
			if strings.Contains(b, sec) {
				t.Errorf("%s holds %s: %s", name, sec, b)
			}
		}
		if !strings.Contains(b, "releases.example/shop.tar.gz?REDACTED") {
			t.Errorf("%s does not name the URL redacted: %s", name, b)
		}
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("status.json mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	// A status file written before redaction existed.
	if err := os.WriteFile(file, []byte(`{"last_error":"download `+url+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := readiness.ReadStatusFile("", file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(st.LastError, "SECRETSIG") {
		t.Errorf("ReadStatusFile kept the secret: %q", st.LastError)
	}
}
