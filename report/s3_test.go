package report_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/nodeagent/nodeagent/report"
	"github.com/nodeagent/nodeagent/s3api"
)

// TestPutNamesSigningProblems: a 403 for the node's clock names the clock
// and the skew, a 403 for the signature names the secret; neither gets the
// access-denied advice (a permission to add).
func TestPutNamesSigningProblems(t *testing.T) {
	tests := []struct {
		name, code string
		date       time.Duration // the server's clock ahead of ours
		want       []string
	}{
		{"skewed clock", "RequestTimeTooSkewed", -30 * time.Minute, []string{"RequestTimeTooSkewed", "the node's clock is 30m0s off from S3's: check chrony/NTP"}},
		{"wrong secret", "SignatureDoesNotMatch", 0, []string{"SignatureDoesNotMatch", "AWS_SECRET_ACCESS_KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Date", time.Now().Add(tt.date).UTC().Format(http.TimeFormat))
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, "<Error><Code>"+tt.code+"</Code><Message>refused</Message></Error>")
			}))
			t.Cleanup(srv.Close)
			api, err := s3api.New(aws.Config{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDREPORT", "secret", "")},
				s3api.Options{Endpoint: srv.URL, Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
					o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
				})})
			if err != nil {
				t.Fatal(err)
			}
			loc, err := report.ParseLocation("s3://fleet-config/reports/")
			if err != nil {
				t.Fatal(err)
			}
			err = report.NewClientFromAPI(api).Put(t.Context(), loc, sample())
			if err == nil {
				t.Fatal("Put succeeded against a server that refuses every request")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "access denied") {
				t.Errorf("error %q gives the access-denied advice", err)
			}
		})
	}
}
