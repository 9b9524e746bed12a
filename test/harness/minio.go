package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MinIO is a running MinIO server on 127.0.0.1.
type MinIO struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string

	proc *process
}

// StartMinIO starts `minio server` on a fresh data directory and a free
// port of 127.0.0.1 (console off, no update checks) and waits for
// /minio/health/live.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := Tool(t, ToolMinIO)
	data := t.TempDir()
	m := &MinIO{
		AccessKey: "nodeagent-test",
		SecretKey: "nodeagent-test-secret",
		Region:    "us-east-1",
	}
	endpoint := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
	proc, port := startOnFreePort(t, 60*time.Second, func(port int) *process {
		return startProcess(t, "minio", []string{
			"MINIO_ROOT_USER=" + m.AccessKey,
			"MINIO_ROOT_PASSWORD=" + m.SecretKey,
			"MINIO_REGION=" + m.Region,
			"MINIO_BROWSER=off",
			"MINIO_UPDATE=off",
			"MINIO_CALLHOME_ENABLE=off",
			// The metrics endpoint without a bearer token, so that tests can
			// read MinIO's own request counters (APIRequests).
			"MINIO_PROMETHEUS_AUTH_TYPE=public",
		}, bin, "server", data, "--address", fmt.Sprintf("127.0.0.1:%d", port), "--quiet")
	}, func(ctx context.Context, port int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint(port)+"/minio/health/live", nil)
		if err != nil {
			return err
		}
		_, status, err := do(req)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("health: status %d: %w", status, errNotReady)
		}
		return nil
	})
	m.Endpoint, m.proc = endpoint(port), proc
	return m
}

// Env points the AWS SDK (and so the agent) at this server.
func (m *MinIO) Env() []string {
	return s3Env(m.Endpoint, m)
}

func s3Env(endpoint string, m *MinIO) []string {
	return []string{
		"AWS_ENDPOINT_URL_S3=" + endpoint,
		"AWS_ACCESS_KEY_ID=" + m.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + m.SecretKey,
		"AWS_REGION=" + m.Region,
	}
}

// Client returns an S3 client for this server (path-style addressing).
func (m *MinIO) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(m.Endpoint),
		Region:       m.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
		UsePathStyle: true,
	})
}

// Put stores body at bucket/key, creating the bucket if needed.
func (m *MinIO) Put(t testing.TB, bucket, key string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := m.Client()
	if err := createBucket(ctx, c, bucket); err != nil {
		t.Fatalf("harness: minio: %v", err)
	}
	_, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	})
	if err != nil {
		t.Fatalf("harness: minio: put s3://%s/%s: %v", bucket, key, err)
	}
}

func createBucket(ctx context.Context, c *s3.Client, bucket string) error {
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// APIRequests is MinIO's own count of the S3 requests of one API it has
// served since it started ("GetObject", "PutObject"): the sum of
// minio_api_requests_total{type="s3",name=api} over its servers, read from
// its metrics (v3) endpoint. Requests that MinIO answered with 304 Not
// Modified count too.
func (m *MinIO) APIRequests(t testing.TB, api string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, m.Endpoint+"/minio/metrics/v3/api/requests", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, status, err := do(req)
	if err != nil || status != http.StatusOK {
		t.Fatalf("minio metrics: status %d, %v", status, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("minio metrics: %v", err)
	}
	requests, ok := families["minio_api_requests_total"]
	if !ok {
		// MinIO writes the family once it has served an S3 request.
		return 0
	}
	var n float64
	for _, s := range requests.GetMetric() {
		labels := map[string]string{}
		for _, l := range s.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["type"] == "s3" && labels["name"] == api {
			n += s.GetCounter().GetValue() + s.GetUntyped().GetValue() + s.GetGauge().GetValue()
		}
	}
	return int(n)
}
