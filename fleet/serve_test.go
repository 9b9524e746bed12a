package fleet_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/fleet"
	"github.com/nodeagent/nodeagent/report"
)

type loaderFunc func(ctx context.Context) (*fleet.Snapshot, error)

func (f loaderFunc) Load(ctx context.Context) (*fleet.Snapshot, error) { return f(ctx) }

func serveGet(t *testing.T, h http.Handler, method, target, host string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestServer(t *testing.T) {
	snap := fleet.Build(fleet.Input{Topology: testTopology(), Entries: []report.Entry{entry("i-web-1", time.Second, func(r *report.Report) {
		r.AgentVersion = `<script>alert(1)</script>`
	})}, Now: now})
	fail := false
	srv := &fleet.Server{Loader: loaderFunc(func(context.Context) (*fleet.Snapshot, error) {
		if fail {
			return nil, errors.New("list s3://fleet/reports/: access denied\nsecond line")
		}
		return snap, nil
	}), Refresh: 2 * time.Second}
	h := srv.Handler()

	if resp := serveGet(t, h, "GET", "/api/fleet", "127.0.0.1:9108", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("before the first load: %d, want 503", resp.StatusCode)
	}
	if err := srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, err := fleet.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	resp := serveGet(t, h, "GET", "/api/fleet", "127.0.0.1:9108", nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Errorf("/api/fleet: %d, body is not fleet.Marshal of the snapshot", resp.StatusCode)
	}
	if resp.Header.Get("X-Nodeagent-Refresh") != "2" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", resp.Header)
	}
	resp = serveGet(t, h, "GET", "/api/fleet", "localhost:9108", map[string]string{"Accept-Encoding": "gzip"})
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if gz, _ := io.ReadAll(zr); !bytes.Equal(gz, want) {
		t.Error("gzipped /api/fleet differs from fleet.Marshal")
	}

	// A failed reload keeps the data and says why, on one header line.
	fail = true
	if err := srv.Load(context.Background()); err == nil {
		t.Fatal("Load did not fail")
	}
	resp = serveGet(t, h, "GET", "/api/fleet", "[::1]:9108", nil)
	body, _ = io.ReadAll(resp.Body)
	if e := resp.Header.Get("X-Nodeagent-Load-Error"); !strings.Contains(e, "access denied") || strings.ContainsAny(e, "\n\r") || !bytes.Equal(body, want) {
		t.Errorf("after a failed reload: error header %q, body kept %v", e, bytes.Equal(body, want))
	}

	resp = serveGet(t, h, "GET", "/", "127.0.0.1:9108", nil)
	page, _ := io.ReadAll(resp.Body)
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(string(page), `<script src="/static/app.js"`) || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("/: %d, CSP %q", resp.StatusCode, csp)
	}
	if strings.Contains(string(page), "<script>") {
		t.Error("the page has an inline script")
	}
	for _, asset := range []string{"/static/app.js", "/static/style.css"} {
		if resp := serveGet(t, h, "GET", asset, "127.0.0.1", nil); resp.StatusCode != 200 {
			t.Errorf("%s: %d", asset, resp.StatusCode)
		}
	}
	if resp := serveGet(t, h, "POST", "/api/fleet", "127.0.0.1:9108", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
	if resp := serveGet(t, h, "GET", "/api/fleet", "evil.example:9108", nil); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("Host evil.example: %d, want 421 (DNS rebinding)", resp.StatusCode)
	}
}
