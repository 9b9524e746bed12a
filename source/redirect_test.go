package source_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent/source"
)

// TestHTTPSRedirects: an https topology or release follows redirects only
// to https, and to a loopback or link-local address only when the original
// URL was one (issue 11: an https redirect to plain http on loopback was
// followed). The server is reached under made-up names through a dialer,
// so the original URL can be a remote-looking host.
func TestHTTPSRedirects(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if to := r.URL.Query().Get("to"); to != "" {
			http.Redirect(w, r, strings.ReplaceAll(to, "SELF", srv.Listener.Addr().String()), http.StatusFound)
			return
		}
		w.Write([]byte(docV1))
	}))
	defer srv.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(docV1)) }))
	defer plain.Close()
	addr := srv.Listener.Addr().String()
	dialer := &net.Dialer{}
	client := &http.Client{Transport: &http.Transport{
		// Every name but the plain server's address reaches the TLS server.
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			if a != plain.Listener.Addr().String() {
				a = addr
			}
			return dialer.DialContext(ctx, network, a)
		},
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		Proxy:           nil,
	}}
	opts := source.Options{HTTPClient: client, Attempts: 1}
	tests := []struct {
		name, url string
		ok        bool
	}{
		{"https to https elsewhere", "https://topology.test/doc?to=https://mirror.test/doc", true},
		{"https to plain http on loopback", "https://topology.test/doc?to=" + plain.URL + "/doc", false},
		{"https to https on loopback", "https://topology.test/doc?to=https://SELF/doc", false},
		{"https to localhost", "https://topology.test/doc?to=https://localhost/doc", false},
		{"https to instance metadata", "https://topology.test/doc?to=https://169.254.169.254/latest/meta-data/", false},
		{"https to link-local IPv6", "https://topology.test/doc?to=https://[fe80::1]/doc", false},
		{"https to plain http elsewhere", "https://topology.test/doc?to=http://mirror.test/doc", false},
		{"loopback https to loopback https", "https://SELF/doc?to=https://SELF/other", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := strings.ReplaceAll(tt.url, "SELF", addr)
			src, err := source.New(context.Background(), u, opts)
			if err != nil {
				t.Fatal(err)
			}
			f, err := src.Fetch(context.Background(), "")
			switch {
			case tt.ok && err != nil:
				t.Fatalf("redirect refused: %v", err)
			case tt.ok && string(f.Body) != docV1:
				t.Fatalf("body %q", f.Body)
			case !tt.ok && err == nil:
				t.Fatal("redirect followed")
			case !tt.ok && !strings.Contains(err.Error(), "redirect"):
				t.Errorf("error %q does not say the redirect was refused", err)
			}
			// The release opener has the same policy.
			op, err := source.NewOpener(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			body, _, err := op.Open(context.Background(), u)
			if err == nil {
				body.Close()
			}
			if (err == nil) != tt.ok {
				t.Errorf("release open: err %v, want ok %t", err, tt.ok)
			}
		})
	}
}
