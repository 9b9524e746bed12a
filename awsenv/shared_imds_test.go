package awsenv_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/awsenv"
	"github.com/nodeagent/nodeagent/metadata"
)

// TestSharesTheDiscoveryClient: discovery, the region and the instance
// profile's credentials go through one IMDS client and one session token
// (issue 11: awsenv had a client of its own, on a transport that honours
// HTTP_PROXY).
func TestSharesTheDiscoveryClient(t *testing.T) {
	var tokens, gets atomic.Int32
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			tokens.Add(1)
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			w.Write([]byte("token"))
			return
		}
		if r.Header.Get("X-Aws-Ec2-Metadata-Token") != "token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		gets.Add(1)
		switch r.URL.Path {
		case "/latest/meta-data/placement/region":
			w.Write([]byte("eu-central-1"))
		case "/latest/meta-data/iam/security-credentials/":
			w.Write([]byte("role"))
		case "/latest/meta-data/iam/security-credentials/role":
			w.Write([]byte(`{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"AKIDIMDS","SecretAccessKey":"s","Token":"t","Expiration":"` + exp + `"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()

	md, err := metadata.New(context.Background(), metadata.Options{Endpoint: srv.URL, Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := md.LifecycleState(context.Background()); err != nil { // discovery takes the token
		t.Fatal(err)
	}
	env := map[string]string{"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:1"} // never asked: the shared client is
	e := awsenv.New(func(k string) string { return env[k] }).UseIMDS(md.Client())
	cfg, err := e.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-central-1" {
		t.Errorf("region %q, want IMDS's", cfg.Region)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatalf("instance profile credentials: %v", err)
	}
	if creds.AccessKeyID != "AKIDIMDS" {
		t.Errorf("access key %q, want the instance profile's", creds.AccessKeyID)
	}
	if n := tokens.Load(); n != 1 {
		t.Errorf("%d IMDS session tokens taken, want 1 shared by discovery, region and credentials", n)
	}
	if gets.Load() < 3 {
		t.Errorf("%d metadata reads, want discovery, region and credentials through the shared client", gets.Load())
	}
}
