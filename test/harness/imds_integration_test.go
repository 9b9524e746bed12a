//go:build integration

package harness_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/nodeagent/nodeagent/test/harness"
)

func TestIMDSServesTheConfiguredInstanceOverIMDSv2(t *testing.T) {
	m := harness.StartIMDS(t, harness.IMDSConfig{
		InstanceID:   "i-0123456789abcdef0",
		PrivateIP:    "127.0.10.5",
		AZ:           "eu-west-1b",
		InstanceType: "c6i.large",
		Group:        "shop-web",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := imds.New(imds.Options{Endpoint: m.URL})

	tests := []struct {
		path string
		want string
	}{
		{"instance-id", "i-0123456789abcdef0"},
		{"local-ipv4", "127.0.10.5"},
		{"placement/availability-zone", "eu-west-1b"},
		{"instance-type", "c6i.large"},
		{"tags/instance/aws:autoscaling:groupName", "shop-web"},
		{"autoscaling/target-lifecycle-state", "InService"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: tt.path})
			if err != nil {
				t.Fatalf("get %s: %v", tt.path, err)
			}
			defer out.Content.Close()
			b, err := io.ReadAll(out.Content)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("%s = %q, want %q", tt.path, b, tt.want)
			}
		})
	}

	t.Run("region from the identity document", func(t *testing.T) {
		r, err := c.GetRegion(ctx, &imds.GetRegionInput{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Region != "eu-west-1" {
			t.Errorf("region %q, want eu-west-1", r.Region)
		}
		doc, err := c.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
		if err != nil {
			t.Fatal(err)
		}
		if doc.InstanceID != "i-0123456789abcdef0" || doc.PrivateIP != "127.0.10.5" || doc.InstanceType != "c6i.large" {
			t.Errorf("identity document %+v does not match the config", doc.InstanceIdentityDocument)
		}
	})

	t.Run("IMDSv1 refused", func(t *testing.T) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/latest/meta-data/instance-id", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET without token: status %d, want 401; body %q", resp.StatusCode, body)
		}
	})
}

func TestIMDSTerminateAfter(t *testing.T) {
	m := harness.StartIMDS(t, harness.IMDSConfig{InstanceID: "i-0term", TerminateAfter: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const path = "/latest/meta-data/autoscaling/target-lifecycle-state"
	state, status, err := m.Get(ctx, path)
	if err != nil || status != http.StatusOK {
		t.Fatalf("get %s: %d %v", path, status, err)
	}
	if state != "InService" {
		t.Fatalf("state at start %q, want InService", state)
	}
	deadline := time.Now().Add(10 * time.Second)
	for state != "Terminated" && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if state, _, err = m.Get(ctx, path); err != nil {
			t.Fatal(err)
		}
	}
	if state != "Terminated" {
		t.Errorf("state %q 10s after a 3s TerminateAfter, want Terminated", state)
	}
}

func TestIMDSInstancesAreIndependent(t *testing.T) {
	a := harness.StartIMDS(t, harness.IMDSConfig{InstanceID: "i-0aaa", Group: "shop-web"})
	b := harness.StartIMDS(t, harness.IMDSConfig{InstanceID: "i-0bbb", Group: "shop-cache"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range []struct {
		m         *harness.IMDS
		id, group string
	}{{a, "i-0aaa", "shop-web"}, {b, "i-0bbb", "shop-cache"}} {
		id, _, err := tt.m.Get(ctx, "/latest/meta-data/instance-id")
		if err != nil {
			t.Fatal(err)
		}
		group, _, err := tt.m.Get(ctx, harness.GroupTagPath)
		if err != nil {
			t.Fatal(err)
		}
		if id != tt.id || group != tt.group {
			t.Errorf("%s: got %s/%s, want %s/%s", tt.m.URL, id, group, tt.id, tt.group)
		}
	}
}
