package source_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/backoff"
	"github.com/nodeagent/nodeagent/s3api"
	"github.com/nodeagent/nodeagent/source"
	"github.com/nodeagent/nodeagent/test/memnet"
)

const (
	bucket = "topo"
	key    = "fleet/topology.json"
	docV1  = `{"schema":1,"serial":1}`
	docV2  = `{"schema":1,"serial":2}`
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustNew(t *testing.T, url string, o source.Options) nodeagent.TopologySource {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	src, err := source.New(context.Background(), url, o)
	if err != nil {
		t.Fatalf("New(%q): %v", url, err)
	}
	return src
}

func wantErrContains(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

func TestS3Fetch(t *testing.T) {
	f := newFakeS3(t, bucket)
	f.put(t, bucket, key, docV1)
	url := "s3://" + bucket + "/" + key
	src := mustNew(t, url, source.Options{S3: s3ClientFor(t, f.URL)})
	ctx := ctxFor(t, 20*time.Second)

	first, err := src.Fetch(ctx, "")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if string(first.Body) != docV1 || first.ETag == "" || first.NotModified || first.Source != url {
		t.Fatalf("first fetch = %+v, want the document with an ETag", first)
	}

	again, err := src.Fetch(ctx, first.ETag)
	if err != nil {
		t.Fatalf("conditional Fetch: %v", err)
	}
	if !again.NotModified || again.Body != nil || again.ETag != first.ETag {
		t.Errorf("conditional fetch = %+v, want NotModified with the same ETag", again)
	}
	if _, match := f.count(); match != first.ETag {
		t.Errorf("If-None-Match sent = %q, want %q", match, first.ETag)
	}

	f.put(t, bucket, key, docV2)
	changed, err := src.Fetch(ctx, first.ETag)
	if err != nil {
		t.Fatalf("Fetch after put: %v", err)
	}
	if changed.NotModified || string(changed.Body) != docV2 || changed.ETag == first.ETag || changed.ETag == "" {
		t.Errorf("fetch after put = %+v, want the new document and a new ETag", changed)
	}
}

// TestS3FromEnvironment proves the default config path: endpoint, region
// and credentials from the environment, and path-style addressing for a
// custom endpoint (virtual-host style would ask for topo.127.0.0.1).
func TestS3FromEnvironment(t *testing.T) {
	f := newFakeS3(t, bucket)
	f.put(t, bucket, key, docV1)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_S3":         f.URL,
		"AWS_REGION":                  "eu-west-1",
		"AWS_ACCESS_KEY_ID":           "AKIDTEST",
		"AWS_SECRET_ACCESS_KEY":       "secret",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_PROFILE":                 "",
	} {
		t.Setenv(k, v)
	}
	src := mustNew(t, "s3://"+bucket+"/"+key, source.Options{})
	got, err := src.Fetch(ctxFor(t, 20*time.Second), "")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if string(got.Body) != docV1 {
		t.Errorf("body = %q, want %q", got.Body, docV1)
	}
}

func TestS3Errors(t *testing.T) {
	tests := []struct {
		name     string
		url      string
		gate     func(f *fakeS3)
		attempts int
		wantReqs int
		want     []string
		notWant  []string
		notFound bool
	}{
		{
			name: "missing key", url: "s3://" + bucket + "/nope.json", attempts: 3, wantReqs: 1, notFound: true,
			want: []string{"source: get s3://topo/nope.json", `no object "nope.json" in bucket "topo"`},
		},
		{
			name: "missing bucket", url: "s3://other/" + key, attempts: 3, wantReqs: 1, notFound: true,
			want: []string{"s3://other/" + key, `bucket "other" does not exist`, "AWS_ENDPOINT_URL_S3"},
		},
		{
			name: "access denied is final", url: "s3://" + bucket + "/" + key, attempts: 3, wantReqs: 1,
			gate: func(f *fakeS3) { f.failNext, f.failCode, f.failBody = 5, http.StatusForbidden, accessDenied },
			want: []string{"s3://topo/" + key, "access denied", "s3:GetObject on arn:aws:s3:::topo/" + key},
		},
		{
			// The retry is signed at S3's time; this S3 refuses it too.
			name: "skewed clock", url: "s3://" + bucket + "/" + key, attempts: 3, wantReqs: 2,
			gate: func(f *fakeS3) {
				f.failNext, f.failCode, f.failBody = 5, http.StatusForbidden, tooSkewed
				f.failDate = time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
			},
			want:    []string{"s3://topo/" + key, "RequestTimeTooSkewed", "the node's clock is 1h0m0s off from S3's: check chrony/NTP"},
			notWant: []string{"access denied"},
		},
		{
			name: "wrong secret", url: "s3://" + bucket + "/" + key, attempts: 3, wantReqs: 1,
			gate:    func(f *fakeS3) { f.failNext, f.failCode, f.failBody = 5, http.StatusForbidden, badSignature },
			want:    []string{"s3://topo/" + key, "SignatureDoesNotMatch", "another signature", "AWS_SECRET_ACCESS_KEY"},
			notWant: []string{"access denied", "clock"},
		},
		{
			name: "5xx on every attempt", url: "s3://" + bucket + "/" + key, attempts: 3, wantReqs: 3,
			gate: func(f *fakeS3) { f.failNext, f.failCode, f.failBody = 10, http.StatusServiceUnavailable, slowDown },
			want: []string{"s3://topo/" + key, "503", "SlowDown"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeS3(t, bucket)
			f.put(t, bucket, key, docV1)
			if tt.gate != nil {
				f.set(tt.gate)
			}
			src := mustNew(t, tt.url, source.Options{S3: s3ClientFor(t, f.URL), Attempts: tt.attempts})
			_, err := src.Fetch(ctxFor(t, 20*time.Second), "")
			wantErrContains(t, err, tt.want...)
			for _, w := range tt.notWant {
				if err != nil && strings.Contains(err.Error(), w) {
					t.Errorf("error %q says %q", err, w)
				}
			}
			if got := source.IsNotFound(err); got != tt.notFound {
				t.Errorf("IsNotFound = %v, want %v", got, tt.notFound)
			}
			if n, _ := f.count(); n != tt.wantReqs {
				t.Errorf("%d requests, want %d", n, tt.wantReqs)
			}
		})
	}
}

func TestS3RetriesServerErrors(t *testing.T) {
	f := newFakeS3(t, bucket)
	f.put(t, bucket, key, docV1)
	f.set(func(f *fakeS3) { f.failNext, f.failCode, f.failBody = 2, http.StatusInternalServerError, "" })
	src := mustNew(t, "s3://"+bucket+"/"+key, source.Options{S3: s3ClientFor(t, f.URL), Attempts: 4})
	got, err := src.Fetch(ctxFor(t, 20*time.Second), "")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if n, _ := f.count(); string(got.Body) != docV1 || n != 3 {
		t.Errorf("body %q after %d requests, want %q after 3", got.Body, n, docV1)
	}
}

// TestS3Unreachable runs on a synctest bubble's clock against an
// in-memory S3 (or a dial that is refused): every attempt, wait and
// deadline is checked exactly.
func TestS3Unreachable(t *testing.T) {
	const attempts = 3
	tests := []struct {
		name     string
		refused  bool // nothing listens: every dial is refused
		deadline time.Duration
		timeout  time.Duration
		want     []string
	}{
		{
			name: "nothing listens", refused: true,
			deadline: 10 * time.Second,
			want:     []string{"s3://topo/" + key, "could not reach http://s3.test", "connection refused"},
		},
		{
			name:     "endpoint never answers, caller deadline first",
			deadline: 800 * time.Millisecond, timeout: 10 * time.Second,
			want: []string{"s3://topo/" + key, "deadline exceeded"},
		},
		{
			name:     "endpoint never answers, attempt deadlines",
			deadline: 10 * time.Second, timeout: 200 * time.Millisecond,
			want: []string{"s3://topo/" + key, "no answer within 200ms", "could not reach"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, client := newMemFakeS3(t, bucket)
				f.set(func(f *fakeS3) { f.hang = true })
				var mu sync.Mutex
				var dials []time.Time
				if tt.refused {
					client = client.With(func(o *s3api.Options) {
						o.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
							mu.Lock()
							dials = append(dials, time.Now())
							mu.Unlock()
							return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
						}}}
					})
				}
				src := mustNew(t, "s3://"+bucket+"/"+key, source.Options{S3: client, Attempts: attempts, Timeout: tt.timeout})
				start := time.Now()
				_, err := src.Fetch(ctxFor(t, tt.deadline), "")
				took := time.Since(start)
				wantErrContains(t, err, tt.want...)

				at := f.times()
				if tt.refused {
					at = dials
				}
				if tt.deadline < tt.timeout {
					if len(at) != 1 || took != tt.deadline {
						t.Errorf("%d attempts, failed after %s; want 1, failing at the caller's deadline %s", len(at), took, tt.deadline)
					}
					return
				}
				if len(at) != attempts {
					t.Fatalf("%d attempts, want %d", len(at), attempts)
				}
				// Attempt n+1 comes the attempt's time (its timeout when it
				// hangs, none when refused) plus [Step(n)/2, Step(n)) after
				// attempt n; the SDK numbers retries from 1.
				policy := backoff.Policy{Base: 200 * time.Millisecond, Max: 5 * time.Second}
				for n := 1; n < len(at); n++ {
					lo, hi := tt.timeout+policy.Step(n)/2, tt.timeout+policy.Step(n)
					if gap := at[n].Sub(at[n-1]); gap < lo || gap >= hi {
						t.Errorf("attempt %d came %s after the one before, want [%s, %s)", n+1, gap, lo, hi)
					}
				}
				if end := at[len(at)-1].Add(tt.timeout); !start.Add(took).Equal(end) {
					t.Errorf("failed %s after the start, want when the last attempt ended, %s", took, end.Sub(start))
				}
			})
		})
	}
}

func TestFileFetch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "topology.json")
	if err := os.WriteFile(path, []byte(docV1), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + path
	src := mustNew(t, url, source.Options{})
	ctx := ctxFor(t, 5*time.Second)

	first, err := src.Fetch(ctx, "")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	sum := sha256.Sum256([]byte(docV1))
	if string(first.Body) != docV1 || first.ETag != hex.EncodeToString(sum[:]) || first.Source != url {
		t.Fatalf("first = %+v", first)
	}
	same, err := src.Fetch(ctx, first.ETag)
	if err != nil || !same.NotModified || same.Body != nil {
		t.Errorf("unchanged fetch = %+v, %v; want NotModified", same, err)
	}
	if err := os.WriteFile(path, []byte(docV2), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := src.Fetch(ctx, first.ETag)
	if err != nil || changed.NotModified || string(changed.Body) != docV2 || changed.ETag == first.ETag {
		t.Errorf("changed fetch = %+v, %v; want the new document", changed, err)
	}

	os.Remove(path)
	_, err = src.Fetch(ctx, changed.ETag)
	wantErrContains(t, err, url, "no such file")
	if !source.IsNotFound(err) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file error %v: IsNotFound false", err)
	}

	dirSrc := mustNew(t, "file://"+dir, source.Options{})
	_, err = dirSrc.Fetch(ctx, "")
	wantErrContains(t, err, "file://"+dir, "not a regular file")
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, url := range []string{
		"ftp://host/topology.json",
		"s3://bucket-only",
		"s3:///key-only",
		"s3://bucket/dir/",
		"file://relative/path.json",
		"file:relative.json",
		"http://example.com/topology.json",
		"http://10.0.0.1/topology.json",
		"https:///no-host",
		"/etc/nodeagent/topology.json",
		"",
	} {
		t.Run(url, func(t *testing.T) {
			_, err := source.New(context.Background(), url, source.Options{})
			wantErrContains(t, err, fmt.Sprintf("%q", url), "s3://bucket/key", "file:///absolute/path", "https://")
			if !errors.Is(err, source.ErrUnsupportedURL) {
				t.Errorf("error %v is not ErrUnsupportedURL", err)
			}
		})
	}
	for _, url := range []string{"http://127.0.0.1:8080/t.json", "http://localhost/t.json", "http://127.3.4.5/t.json", "file://localhost/etc/t.json"} {
		t.Run("accepts "+url, func(t *testing.T) {
			if _, err := source.New(context.Background(), url, source.Options{}); err != nil {
				t.Errorf("New(%q): %v", url, err)
			}
		})
	}
}

// docServer serves one document with an ETag and honours If-None-Match.
type docServer struct {
	URL      string
	requests atomic.Int32
	fail     atomic.Int32 // answer this many requests with 500 first
	status   atomic.Int32 // when non-zero, always answer with this status
}

func newDocServer(t *testing.T, body string) *docServer {
	d := &docServer{}
	const etag = `"v1"`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.requests.Add(1)
		if s := d.status.Load(); s != 0 {
			http.Error(w, "nope", int(s))
			return
		}
		if d.fail.Load() > 0 {
			d.fail.Add(-1)
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	d.URL = srv.URL + "/topology.json"
	return d
}

func TestHTTPFetch(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(d *docServer)
		etag     string
		want     nodeagent.Fetched
		wantErr  []string
		wantReqs int32
	}{
		{name: "fetch", want: nodeagent.Fetched{Body: []byte(docV1), ETag: `"v1"`}, wantReqs: 1},
		{name: "not modified", etag: `"v1"`, want: nodeagent.Fetched{ETag: `"v1"`, NotModified: true}, wantReqs: 1},
		{name: "stale etag", etag: `"v0"`, want: nodeagent.Fetched{Body: []byte(docV1), ETag: `"v1"`}, wantReqs: 1},
		{
			name: "500 then 200 is retried", setup: func(d *docServer) { d.fail.Store(2) },
			want: nodeagent.Fetched{Body: []byte(docV1), ETag: `"v1"`}, wantReqs: 3,
		},
		{
			name: "404 is final", setup: func(d *docServer) { d.status.Store(http.StatusNotFound) },
			wantErr: []string{"/topology.json", "404 Not Found", "check the URL"}, wantReqs: 1,
		},
		{
			name: "500 on every attempt", setup: func(d *docServer) { d.status.Store(http.StatusInternalServerError) },
			wantErr: []string{"/topology.json", "500 Internal Server Error", "after 3 attempts"}, wantReqs: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDocServer(t, docV1)
			if tt.setup != nil {
				tt.setup(d)
			}
			src := mustNew(t, d.URL, source.Options{Attempts: 3})
			got, err := src.Fetch(ctxFor(t, 20*time.Second), tt.etag)
			if n := d.requests.Load(); n != tt.wantReqs {
				t.Errorf("%d requests, want %d", n, tt.wantReqs)
			}
			if tt.wantErr != nil {
				wantErrContains(t, err, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			tt.want.Source = d.URL
			if string(got.Body) != string(tt.want.Body) || got.ETag != tt.want.ETag || got.NotModified != tt.want.NotModified || got.Source != tt.want.Source {
				t.Errorf("Fetch = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestHTTPFetchBodyStallTimesOut runs on a synctest bubble's clock against
// an in-memory server on the loopback address that sends half a document
// and stalls.
func TestHTTPFetchBodyStallTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 200 * time.Millisecond
		release := make(chan struct{})
		var mu sync.Mutex
		var at []time.Time
		ln := memnet.Listen("127.0.0.1:80")
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
			w.Write([]byte(`{"schema":`))
			w.(http.Flusher).Flush()
			select { // the rest of the document never comes
			case <-r.Context().Done():
			case <-release:
			}
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { close(release); srv.Close() })
		const url = "http://127.0.0.1/t.json"
		src := mustNew(t, url, source.Options{Attempts: 2, Timeout: timeout,
			HTTPClient: &http.Client{Transport: &http.Transport{DialContext: ln.Dial}}})
		start := time.Now()
		_, err := src.Fetch(ctxFor(t, 10*time.Second), "")
		took := time.Since(start)
		wantErrContains(t, err, url, "no answer within 200ms")
		// The body is read after the retrying client has handed back the
		// response, so a stalled body ends the fetch: one request, failing
		// exactly at the attempt's timeout.
		mu.Lock()
		defer mu.Unlock()
		if len(at) != 1 || took != timeout {
			t.Errorf("%d requests, failed after %s; want 1, failing at the attempt timeout %s", len(at), took, timeout)
		}
	})
}
