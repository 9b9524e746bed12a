package source_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// fakeS3 is gofakes3 on httptest, behind a gate that can answer the next
// requests with an error status, or hang, before gofakes3 sees them.
type fakeS3 struct {
	URL     string
	backend *s3mem.Backend

	mu        sync.Mutex
	failNext  int // answer this many requests with failCode
	failCode  int
	failBody  string
	hang      bool
	requests  int
	lastMatch string // If-None-Match of the last request
	stop      chan struct{}
}

func newFakeS3(t *testing.T, bucket string) *fakeS3 {
	t.Helper()
	f := &fakeS3{backend: s3mem.New(), stop: make(chan struct{})}
	if err := f.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	inner := gofakes3.New(f.backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests++
		f.lastMatch = r.Header.Get("If-None-Match")
		hang := f.hang
		fail := f.failNext > 0
		if fail {
			f.failNext--
		}
		code, body := f.failCode, f.failBody
		f.mu.Unlock()
		switch {
		case hang:
			select {
			case <-r.Context().Done():
			case <-f.stop:
			}
		case fail:
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(code)
			w.Write([]byte(body))
		default:
			inner.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() {
		close(f.stop)
		srv.Close()
	})
	f.URL = srv.URL
	return f
}

func (f *fakeS3) put(t *testing.T, bucket, key, body string) {
	t.Helper()
	if _, err := f.backend.PutObject(bucket, key, map[string]string{}, bytes.NewReader([]byte(body)), int64(len(body)), nil); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeS3) set(fn func(f *fakeS3)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeS3) count() (requests int, lastMatch string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, f.lastMatch
}

// client is an S3 client for endpoint with static credentials.
func s3ClientFor(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
}

const accessDenied = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`
const slowDown = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`
