//go:build integration

package harness_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/nodeagent/nodeagent/awsenv"
	"github.com/nodeagent/nodeagent/test/harness"
)

// envClient builds an S3 client the way the agent does: from the
// environment only (AWS_ENDPOINT_URL_S3, credentials, region).
func envClient(t *testing.T, env []string) *s3.Client {
	t.Helper()
	vars := map[string]string{"AWS_EC2_METADATA_DISABLED": "true"}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	e := awsenv.New(func(k string) string { return vars[k] })
	cfg, err := e.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(e.Endpoint("S3"))
		o.UsePathStyle = true
	})
}

func TestMinIOPutGetRoundTrip(t *testing.T) {
	m := harness.StartMinIO(t)
	body := []byte(`{"serial": 7}`)
	m.Put(t, "topology", "prod/shop.json", body)
	m.Put(t, "topology", "prod/other.json", []byte("x")) // bucket exists now

	c := envClient(t, m.Env())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("topology"), Key: aws.String("prod/shop.json")})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(body) {
		t.Errorf("got %q, want %q", got, body)
	}
	if aws.ToString(out.ETag) == "" {
		t.Error("no ETag")
	}
}

func TestCountingProxyCountsGets(t *testing.T) {
	m := harness.StartMinIO(t)
	m.Put(t, "releases", "shop/1.0.tar.gz", []byte("release bytes"))
	p := m.CountingProxy(t)
	c := envClient(t, p.Env())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	in := &s3.GetObjectInput{Bucket: aws.String("releases"), Key: aws.String("shop/1.0.tar.gz")}
	out, err := c.GetObject(ctx, in)
	if err != nil {
		t.Fatalf("get through proxy: %v", err)
	}
	io.Copy(io.Discard, out.Body)
	out.Body.Close()

	// A conditional GET with the current ETag answers 304.
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: in.Bucket, Key: in.Key, IfNoneMatch: out.ETag})
	var re *smithyhttp.ResponseError
	var apiErr smithy.APIError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusNotModified || !errors.As(err, &apiErr) {
		t.Fatalf("conditional get: %v, want 304 Not Modified", err)
	}

	total, notModified := p.Gets("releases", "shop/1.0.tar.gz")
	if total != 2 || notModified != 1 {
		t.Errorf("Gets = %d total, %d not modified; want 2, 1 (requests %+v)", total, notModified, p.Requests())
	}
	// MinIO's own counter agrees: both GETs, the 304 included.
	if n := m.APIRequests(t, "GetObject"); n != 2 {
		t.Errorf("MinIO counted %d GetObject requests, want 2", n)
	}
	if n := p.Count(http.MethodGet, "/releases/other"); n != 0 {
		t.Errorf("Count of an object never fetched = %d", n)
	}
	p.Reset()
	if n := len(p.Requests()); n != 0 {
		t.Errorf("%d requests after Reset", n)
	}
}
