package harness

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// ProxiedRequest is one request that went through a CountingProxy.
type ProxiedRequest struct {
	Method string
	Path   string // the URL path as sent: "/bucket/key" with path-style S3
	Status int
}

// CountingProxy is a reverse proxy on 127.0.0.1 in front of a MinIO that
// records every request, so tests and benchmarks can count how often an
// object was fetched (and how often a conditional GET answered 304).
type CountingProxy struct {
	URL string

	minio *MinIO
	mu    sync.Mutex
	reqs  []ProxiedRequest
}

// CountingProxy starts a counting reverse proxy in front of m, stopped by
// t.Cleanup. The Host header is passed through unchanged, so SigV4
// signatures made for the proxy's address verify at MinIO.
func (m *MinIO) CountingProxy(t testing.TB) *CountingProxy {
	t.Helper()
	target, err := url.Parse(m.Endpoint)
	if err != nil {
		t.Fatalf("harness: counting proxy: %v", err)
	}
	p := &CountingProxy{minio: m}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(rec, r)
		p.mu.Lock()
		p.reqs = append(p.reqs, ProxiedRequest{Method: r.Method, Path: r.URL.Path, Status: rec.status})
		p.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Env points the AWS SDK at the proxy, with the MinIO's credentials.
func (p *CountingProxy) Env() []string {
	return s3Env(p.URL, p.minio)
}

// Requests returns every request so far, in order.
func (p *CountingProxy) Requests() []ProxiedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProxiedRequest(nil), p.reqs...)
}

// Count is how many requests had this method and path ("GET",
// "/bucket/key").
func (p *CountingProxy) Count(method, path string) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// Gets is how many GETs of s3://bucket/key went through, and how many of
// them answered 304 Not Modified.
func (p *CountingProxy) Gets(bucket, key string) (total, notModified int) {
	path := "/" + bucket + "/" + key
	for _, r := range p.Requests() {
		if r.Method == http.MethodGet && r.Path == path {
			total++
			if r.Status == http.StatusNotModified {
				notModified++
			}
		}
	}
	return total, notModified
}

// Reset forgets the requests recorded so far.
func (p *CountingProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = nil
}

type statusRecorder struct {
	http.ResponseWriter
	status  int
	written bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.written {
		r.status, r.written = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
