package awsenv_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nodeagent/nodeagent/awsenv"
)

// fakeIMDS answers the IMDSv2 token and the region, and refuses a GET
// without a token.
func fakeIMDS(t *testing.T, region string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			w.Write([]byte("token"))
		case r.Header.Get("X-Aws-Ec2-Metadata-Token") != "token":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/latest/meta-data/placement/region":
			w.Write([]byte(region))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestConfig(t *testing.T) {
	imds := fakeIMDS(t, "eu-central-1")
	tests := []struct {
		name       string
		env        map[string]string
		wantRegion string
		wantErr    error
		wantCreds  string // access key id, "" for none
	}{
		{
			name:       "environment",
			env:        map[string]string{"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-2", "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_EC2_METADATA_DISABLED": "true"},
			wantRegion: "eu-west-1",
			wantCreds:  "AKID",
		},
		{
			name:       "default region",
			env:        map[string]string{"AWS_DEFAULT_REGION": "us-east-2", "AWS_EC2_METADATA_DISABLED": "TRUE"},
			wantRegion: "us-east-2",
		},
		{
			name:       "region from IMDSv2",
			env:        map[string]string{"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds, "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"},
			wantRegion: "eu-central-1",
			wantCreds:  "AKID",
		},
		{
			name:    "no region anywhere",
			env:     map[string]string{"AWS_EC2_METADATA_DISABLED": "true"},
			wantErr: awsenv.ErrNoRegion,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := awsenv.New(func(k string) string { return tt.env[k] })
			cfg, err := e.Config(context.Background())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Config error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if cfg.Region != tt.wantRegion {
				t.Errorf("region = %q, want %q", cfg.Region, tt.wantRegion)
			}
			got := ""
			if cfg.Credentials != nil {
				c, err := cfg.Credentials.Retrieve(context.Background())
				if err != nil {
					t.Fatalf("credentials: %v", err)
				}
				got = c.AccessKeyID
			}
			if got != tt.wantCreds {
				t.Errorf("access key = %q, want %q", got, tt.wantCreds)
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	env := map[string]string{"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000", "AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}
	e := awsenv.New(func(k string) string { return env[k] })
	if got := e.Endpoint("S3"); got != "http://127.0.0.1:9000" {
		t.Errorf("S3 endpoint = %q", got)
	}
	if got := e.Endpoint("AUTO_SCALING"); got != "http://127.0.0.1:4566" {
		t.Errorf("Auto Scaling endpoint = %q, want the general AWS_ENDPOINT_URL", got)
	}
}

// TestOperator: an operator's Env takes the region and the credentials from
// the environment and never asks IMDS, even when IMDS would answer.
func TestOperator(t *testing.T) {
	asked := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = true
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name    string
		env     map[string]string
		wantErr error
	}{
		{name: "environment", env: map[string]string{"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"}},
		{name: "no region", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"}, wantErr: awsenv.ErrNoRegion},
		{name: "no credentials", env: map[string]string{"AWS_DEFAULT_REGION": "eu-west-1"}, wantErr: awsenv.ErrNoCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = srv.URL
			e := awsenv.NewOperator(func(k string) string { return tt.env[k] })
			cfg, err := e.Config(context.Background())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Config error = %v, want %v", err, tt.wantErr)
			}
			if asked {
				t.Fatal("an operator's Env asked IMDS")
			}
			if err != nil {
				return
			}
			c, err := cfg.Credentials.Retrieve(context.Background())
			if err != nil || c.AccessKeyID != "AKID" || cfg.Region != "eu-west-1" {
				t.Fatalf("config = region %q, key %q, %v", cfg.Region, c.AccessKeyID, err)
			}
		})
	}
}
