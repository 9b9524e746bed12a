package memnet_test

import (
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nodeagent/nodeagent/test/memnet"
)

// TestServeInBubble: an HTTP server on a Listener answers a client that
// dials it, and the bubble's clock still moves (a keep-alive connection is
// left idle until the transport's idle timeout closes it).
func TestServeInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := memnet.Listen("svc.test:80")
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello "+r.URL.Path)
		})}
		go srv.Serve(ln)
		defer srv.Close()
		c := &http.Client{Transport: &http.Transport{DialContext: ln.Dial, IdleConnTimeout: time.Minute}}
		for range 2 {
			resp, err := c.Get("http://svc.test/x")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "hello /x" {
				t.Errorf("body %q", b)
			}
		}
		start := time.Now()
		time.Sleep(time.Hour)
		if got := time.Since(start); got != time.Hour {
			t.Errorf("slept %s on the bubble's clock, want 1h", got)
		}
		if ln.Addr().String() != "svc.test:80" {
			t.Errorf("Addr = %s", ln.Addr())
		}
	})
}
