//go:build integration

package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/nodeagent/nodeagent/test/harness"
)

// nodeagentBin is the binary under test, built once by TestMain.
var nodeagentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nodeagent-publish-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "publish:", err)
		os.Exit(1)
	}
	nodeagentBin = filepath.Join(dir, "nodeagent")
	build := exec.Command("go", "build", "-o", nodeagentBin, "./cmd/nodeagent")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "publish: go build ./cmd/nodeagent: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	bucket = "fleet-config"
	key    = "prod/topology.json"
	docURL = "s3://" + bucket + "/" + key
)

// store is one MinIO with the bucket, and a proxy in front of it through
// which the commands under test talk.
type store struct {
	t     *testing.T
	minio *harness.MinIO
	proxy *orderingProxy
}

func newStore(t *testing.T) *store {
	t.Helper()
	m := harness.StartMinIO(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := m.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return &store{t: t, minio: m, proxy: startOrderingProxy(t, m.Endpoint, "/"+bucket+"/"+key)}
}

// env is an operator's environment: credentials and region, the proxy as
// the S3 endpoint, and no instance metadata anywhere (a closed port, so a
// request to it would fail the command rather than hang).
func (s *store) env() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_ENDPOINT_URL_S3=" + s.proxy.URL,
		"AWS_ACCESS_KEY_ID=" + s.minio.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.minio.SecretKey,
		"AWS_REGION=" + s.minio.Region,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1",
	}
}

// get returns an object's bytes, or nil when it does not exist.
func (s *store) get(k string) []byte {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.minio.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return nil
	}
	if err != nil {
		s.t.Fatalf("get %s: %v", k, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		s.t.Fatalf("get %s: %v", k, err)
	}
	return b
}

// put writes an object directly, as another tool would.
func (s *store) put(k string, body []byte) {
	s.t.Helper()
	s.minio.Put(s.t, bucket, k, body)
}

// delete removes an object.
func (s *store) delete(k string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.minio.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)}); err != nil {
		s.t.Fatalf("delete %s: %v", k, err)
	}
}

// keys lists every object of the bucket.
func (s *store) keys() []string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.minio.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		s.t.Fatalf("list: %v", err)
	}
	var ks []string
	for _, o := range out.Contents {
		ks = append(ks, aws.ToString(o.Key))
	}
	return ks
}

// result is one finished command.
type result struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("nodeagent %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// run runs the binary with env, bounded in time.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeagentBin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("nodeagent %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// writeFile writes a document for a command to read.
func writeFile(t *testing.T, name string, body []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// orderingProxy is a reverse proxy in front of MinIO that can hold the
// writes of one object until the test lets them through, and run a step
// after each read of it: how the tests make two publishers read the same
// document before either writes, every time.
type orderingProxy struct {
	URL  string
	path string // "/bucket/key"

	mu       sync.Mutex
	gets     int
	afterGet func(n int)   // after the nth GET of path was answered
	hold     chan struct{} // PUTs of path wait until it is closed; nil: no wait
}

// holdLimit bounds a held write, so a test whose publishers never read
// fails with their output instead of hanging.
const holdLimit = 30 * time.Second

func startOrderingProxy(t *testing.T, endpoint, path string) *orderingProxy {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &orderingProxy{path: path}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // SigV4 signed the proxy's host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != p.path {
			rp.ServeHTTP(w, r)
			return
		}
		p.mu.Lock()
		hold := p.hold
		p.mu.Unlock()
		if r.Method == http.MethodPut && hold != nil {
			select {
			case <-hold:
			case <-time.After(holdLimit):
			}
		}
		rp.ServeHTTP(w, r)
		if r.Method == http.MethodGet {
			p.mu.Lock()
			p.gets++
			n, after := p.gets, p.afterGet
			p.mu.Unlock()
			if after != nil {
				after(n)
			}
		}
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// order sets the hold channel and the step after each read.
func (p *orderingProxy) order(hold chan struct{}, afterGet func(n int)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gets, p.hold, p.afterGet = 0, hold, afterGet
}
