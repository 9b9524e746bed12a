package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// IMDSConfig is what one simulated instance's metadata says. Empty fields
// keep amazon-ec2-metadata-mock's defaults (i-1234567890abcdef0,
// 172.16.34.43, us-east-1a, m4.xlarge, no group tag).
type IMDSConfig struct {
	InstanceID   string
	PrivateIP    string
	AZ           string // the region is the AZ less its last letter
	InstanceType string
	Group        string // the aws:autoscaling:groupName instance tag
	// TerminateAfter is when autoscaling/target-lifecycle-state turns from
	// InService to Terminated, counted from the start; 0 = never.
	TerminateAfter time.Duration
}

// IMDS is a running amazon-ec2-metadata-mock serving IMDSv2 only.
type IMDS struct {
	URL    string // http://127.0.0.1:PORT, no trailing slash
	Config IMDSConfig

	proc *process
}

// GroupTagPath is where the Auto Scaling group tag is served.
const GroupTagPath = "/latest/meta-data/tags/instance/aws:autoscaling:groupName"

// neverSeconds stands for "never terminate": ten years.
const neverSeconds = 10 * 365 * 24 * 3600

// StartIMDS starts one ec2-metadata-mock for c on a free port of 127.0.0.1
// (-I: IMDSv2 only) and waits until it hands out tokens. The mock serves
// only paths it knows, so the group tag is served by re-pointing its
// "tags-instance-test" key to GroupTagPath.
func StartIMDS(t testing.TB, c IMDSConfig) *IMDS {
	t.Helper()
	bin := Tool(t, ToolIMDS)
	cfgPath := filepath.Join(t.TempDir(), "aemm.json")
	body, err := json.MarshalIndent(aemmConfig(c), "", "  ")
	if err != nil {
		t.Fatalf("harness: imds config: %v", err)
	}
	if err := os.WriteFile(cfgPath, body, 0o644); err != nil {
		t.Fatalf("harness: imds config: %v", err)
	}
	delay := int64(neverSeconds)
	if c.TerminateAfter > 0 {
		delay = int64(math.Ceil(c.TerminateAfter.Seconds()))
	}
	url := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
	proc, port := startOnFreePort(t, 15*time.Second, func(port int) *process {
		return startProcess(t, "ec2-metadata-mock", nil, bin,
			"-I", "-n", "127.0.0.1", "-p", itoa(port), "-c", cfgPath,
			"--asg-termination-delay-sec", fmt.Sprint(delay))
	}, func(ctx context.Context, port int) error {
		_, err := (&IMDS{URL: url(port)}).Token(ctx)
		return err
	})
	return &IMDS{URL: url(port), Config: c, proc: proc}
}

// Env points the AWS SDK's IMDS client at the mock.
func (m *IMDS) Env() []string {
	return []string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + m.URL,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv4",
		"AWS_EC2_METADATA_DISABLED=false",
	}
}

// Token gets an IMDSv2 session token.
func (m *IMDS) Token(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, m.URL+"/latest/api/token", nil)
	if err != nil {
		return "", fmt.Errorf("imds token: %w", err)
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "300")
	body, status, err := do(req)
	if err != nil {
		return "", fmt.Errorf("imds token: %w", err)
	}
	if status != http.StatusOK || body == "" {
		return "", fmt.Errorf("imds token: status %d: %w", status, errNotReady)
	}
	return body, nil
}

// Get reads one metadata path ("/latest/meta-data/instance-id") with a
// fresh token, returning the body and the HTTP status.
func (m *IMDS) Get(ctx context.Context, path string) (string, int, error) {
	token, err := m.Token(ctx)
	if err != nil {
		return "", 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+path, nil)
	if err != nil {
		return "", 0, fmt.Errorf("imds get %s: %w", path, err)
	}
	req.Header.Set("X-aws-ec2-metadata-token", token)
	body, status, err := do(req)
	if err != nil {
		return "", 0, fmt.Errorf("imds get %s: %w", path, err)
	}
	return body, status, nil
}

func do(req *http.Request) (string, int, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, err
	}
	return string(b), resp.StatusCode, nil
}

// aemmConfig is the mock's JSON config for c: metadata values, the
// re-pointed group tag, and a matching instance identity document (where
// the SDK reads the region from).
func aemmConfig(c IMDSConfig) map[string]any {
	values := map[string]any{}
	paths := map[string]any{}
	doc := map[string]any{
		"accountId":        "123456789012",
		"architecture":     "x86_64",
		"imageId":          "ami-0123456789abcdef0",
		"pendingTime":      "2026-01-01T00:00:00Z",
		"version":          "2017-09-30",
		"instanceId":       "i-1234567890abcdef0",
		"privateIp":        "172.16.34.43",
		"availabilityZone": "us-east-1a",
		"region":           "us-east-1",
		"instanceType":     "m4.xlarge",
	}
	if c.InstanceID != "" {
		values["instance-id"] = c.InstanceID
		doc["instanceId"] = c.InstanceID
	}
	if c.PrivateIP != "" {
		values["local-ipv4"] = c.PrivateIP
		values["mac-local-ipv4s"] = c.PrivateIP
		doc["privateIp"] = c.PrivateIP
	}
	if c.AZ != "" {
		region := c.AZ[:len(c.AZ)-1]
		values["placement-availability-zone"] = c.AZ
		values["placement-region"] = region
		doc["availabilityZone"] = c.AZ
		doc["region"] = region
	}
	if c.InstanceType != "" {
		values["instance-type"] = c.InstanceType
		doc["instanceType"] = c.InstanceType
	}
	if c.Group != "" {
		paths["tags-instance-test"] = GroupTagPath
		values["tags-instance-test"] = c.Group
	}
	return map[string]any{
		"metadata": map[string]any{"paths": paths, "values": values},
		"dynamic": map[string]any{"values": map[string]any{
			"instance-identity-document": doc,
		}},
	}
}
