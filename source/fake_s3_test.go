package source_test

import (
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/nodeagent/nodeagent/s3api"
	"github.com/nodeagent/nodeagent/test/memnet"
)

// fakeS3 is the part of S3 the source package calls (GetObject, path
// style, with If-None-Match) on httptest, behind a gate that can answer the
// next requests with an error status, or hang. The real S3 wire behaviour
// is tested against MinIO in the integration tests.
type fakeS3 struct {
	URL string

	buckets map[string]bool
	objects map[string][]byte // "bucket/key" -> body

	mu        sync.Mutex
	failNext  int // answer this many requests with failCode
	failCode  int
	failBody  string
	failDate  string // the Date header of a failure answer; "" for now
	hang      bool
	requests  int
	at        []time.Time // when each request came
	lastMatch string      // If-None-Match of the last request
	stop      chan struct{}
}

func newFakeS3(t *testing.T, bucket string) *fakeS3 {
	t.Helper()
	f := &fakeS3{buckets: map[string]bool{bucket: true}, objects: map[string][]byte{}, stop: make(chan struct{})}
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		close(f.stop)
		srv.Close()
	})
	f.URL = srv.URL
	return f
}

// newMemFakeS3 serves a fakeS3 over in-memory connections (test/memnet),
// for tests that run in a testing/synctest bubble; call it inside the
// bubble. Its client is s3ClientFor's with the Dial.
func newMemFakeS3(t *testing.T, bucket string) (*fakeS3, *s3api.Client) {
	t.Helper()
	f := &fakeS3{buckets: map[string]bool{bucket: true}, objects: map[string][]byte{}, stop: make(chan struct{}), URL: "http://s3.test"}
	ln := memnet.Listen("s3.test:80")
	srv := &http.Server{Handler: f}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		close(f.stop) // release hung handlers first, or Close waits for them
		_ = srv.Close()
		<-served
	})
	return f, s3ClientWith(t, f.URL, &http.Client{Transport: &http.Transport{DialContext: ln.Dial}})
}

// ServeHTTP answers every request, or fails or hangs it as set.
func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	f.at = append(f.at, time.Now())
	f.lastMatch = r.Header.Get("If-None-Match")
	hang := f.hang
	fail := f.failNext > 0
	if fail {
		f.failNext--
	}
	code, body, date := f.failCode, f.failBody, f.failDate
	f.mu.Unlock()
	switch {
	case hang:
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
	case fail:
		if date != "" {
			w.Header().Set("Date", date)
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(code)
		w.Write([]byte(body))
	default:
		f.serveObject(w, r)
	}
}

// serveObject answers GET and HEAD of /bucket/key as S3 does: the body
// with a quoted MD5 ETag, 304 when If-None-Match names that ETag, and
// NoSuchKey for anything else.
func (f *fakeS3) serveObject(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, _, _ := strings.Cut(path, "/")
	f.mu.Lock()
	body, ok := f.objects[path]
	hasBucket := f.buckets[bucket]
	f.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusNotFound)
		if hasBucket {
			w.Write([]byte(noSuchKey))
		} else {
			w.Write([]byte(noSuchBucket))
		}
		return
	}
	sum := md5.Sum(body)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", time.Unix(1700000000, 0).UTC().Format(http.TimeFormat))
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

func (f *fakeS3) put(t *testing.T, bucket, key, body string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buckets[bucket] = true
	f.objects[bucket+"/"+key] = []byte(body)
}

func (f *fakeS3) set(fn func(f *fakeS3)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// times returns when each request came.
func (f *fakeS3) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.at...)
}

func (f *fakeS3) count() (requests int, lastMatch string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, f.lastMatch
}

// s3ClientFor is an S3 client for endpoint with static credentials.
func s3ClientFor(t testing.TB, endpoint string) *s3api.Client {
	return s3ClientWith(t, endpoint, nil)
}

// s3ClientWith is s3ClientFor sending through hc (nil: the default client).
func s3ClientWith(t testing.TB, endpoint string, hc aws.HTTPClient) *s3api.Client {
	t.Helper()
	c, err := s3api.New(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")},
		s3api.Options{Endpoint: endpoint, HTTPClient: hc})
	if err != nil {
		t.Fatalf("s3api.New(%s): %v", endpoint, err)
	}
	return c
}

const accessDenied = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`
const tooSkewed = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the current time is too large.</Message></Error>`
const badSignature = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message></Error>`
const slowDown = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`
const noSuchKey = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>`
const noSuchBucket = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>`
