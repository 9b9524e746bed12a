package s3api_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/nodeagent/nodeagent/s3api"
)

// TestNewRefusesEndpointUserinfo: an endpoint with user:password@ is
// refused, naming where the credentials belong, and the password appears
// in no message, nor does one of an endpoint refused for another reason.
func TestNewRefusesEndpointUserinfo(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	tests := []struct {
		endpoint string
		want     []string
	}{
		{"http://minio:" + secret + "@127.0.0.1:9000", []string{"user name and password", "AWS_ACCESS_KEY_ID", "127.0.0.1:9000"}},
		{"https://minio:" + secret + "@s3.example.com/base", []string{"user name and password", "AWS_SECRET_ACCESS_KEY"}},
		{"http://only-a-user@127.0.0.1:9000", []string{"user name and password", "AWS_ACCESS_KEY_ID"}},
		{"ftp://minio:" + secret + "@127.0.0.1:9000", []string{"not an http(s) URL"}},
		{"http://minio:" + secret + "@127.0.0.1:9000/?x=" + secret, []string{"not an http(s) URL"}},
	}
	for _, tt := range tests {
		c, err := s3api.New(aws.Config{Region: "eu-west-1"}, s3api.Options{Endpoint: tt.endpoint})
		if err == nil {
			t.Errorf("New(endpoint with userinfo) = %v, nil; want an error", c.Endpoint())
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, secret) {
			t.Errorf("error %q shows the password", msg)
		}
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("error %q does not say %q", msg, w)
			}
		}
	}
}
