package harness

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// FaultProxy is a reverse proxy on 127.0.0.1 in front of a real service
// (AEMM, MinIO) that answers every request with 503 while a fault window is
// open, without passing it on, and passes requests through otherwise: a
// transient outage of IMDS or S3 that tests can time. The 503 carries S3's
// SlowDown error body, which the S3 client reads as throttling; the IMDS
// client needs only the status. The Host header passes through unchanged,
// so SigV4 signatures made for the proxy's address verify at MinIO.
type FaultProxy struct {
	URL string

	mu     sync.Mutex
	until  time.Time
	failed int
	passed int
}

// slowDown is S3's answer to too many requests.
const slowDown = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>`

// StartFaultProxy starts a fault proxy in front of target
// (http://127.0.0.1:PORT), stopped by t.Cleanup. No window is open.
func StartFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("harness: fault proxy for %s: %v", target, err)
	}
	p := &FaultProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		fail := time.Now().Before(p.until)
		if fail {
			p.failed++
		} else {
			p.passed++
		}
		p.mu.Unlock()
		if fail {
			w.Header().Set("Content-Type", "application/xml")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(slowDown))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// FailFor opens a fault window of d from now; it returns when the window
// closes.
func (p *FaultProxy) FailFor(d time.Duration) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.until = time.Now().Add(d)
	return p.until
}

// Failing reports whether the fault window is open now.
func (p *FaultProxy) Failing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Now().Before(p.until)
}

// Counts returns how many requests were answered 503 and how many were
// passed through.
func (p *FaultProxy) Counts() (failed, passed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed, p.passed
}
