package s3api_test

import (
	"errors"
	"io"
	"net/http"
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

// answerer answers every request with one answer, as an HTTP client
// (Options.HTTPClient) that sets no Response.Request, and counts them.
type answerer struct {
	status int
	body   string
	n      int
}

func (a *answerer) Do(*http.Request) (*http.Response, error) {
	a.n++
	return &http.Response{StatusCode: a.status, Header: http.Header{"Content-Type": {"application/xml"}},
		Body: io.NopCloser(strings.NewReader(a.body)), ContentLength: int64(len(a.body))}, nil
}

func newWith(t *testing.T, hc aws.HTTPClient) *s3api.Client {
	t.Helper()
	c, err := s3api.New(aws.Config{Region: "eu-west-1", Credentials: aws.AnonymousCredentials{}},
		s3api.Options{Endpoint: "http://127.0.0.1:9000", HTTPClient: hc, Retryer: aws.NopRetryer{}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestErrorAnswerWithoutRequest: an error answer whose Response.Request
// the HTTP client left nil is read, naming the endpoint the request went
// to.
func TestErrorAnswerWithoutRequest(t *testing.T) {
	c := newWith(t, &answerer{status: 403, body: `<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`})
	_, err := c.Get(t.Context(), s3api.GetInput{Bucket: "b", Key: "k"})
	var re *s3api.ResponseError
	if !errors.As(err, &re) || re.Endpoint != "http://127.0.0.1:9000" || re.Code != "AccessDenied" {
		t.Fatalf("Get: %v; want a ResponseError AccessDenied at http://127.0.0.1:9000", err)
	}
}

// TestListRefusesWhatIsNoListing: a 200 that is not a ListBucketResult
// (a proxy's XHTML page), or a truncated page without the token to go on
// from, is an error, not a short or empty listing.
func TestListRefusesWhatIsNoListing(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"XHTML page", `<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body><p>Please log in</p></body></html>`, "not a ListBucketResult"},
		{"truncated without a token", `<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a</Key></Contents></ListBucketResult>`, "no NextContinuationToken"},
		{"truncated with an empty token", `<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken></NextContinuationToken></ListBucketResult>`, "no NextContinuationToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := newWith(t, &answerer{status: 200, body: tt.body}).List(t.Context(), s3api.ListInput{Bucket: "b", Prefix: "reports/"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("List = %+v, %v; want an error saying %q", out, err, tt.want)
			}
		})
	}
	// The last page and an empty answer are still listings.
	for _, body := range []string{`<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a</Key></Contents></ListBucketResult>`, ``} {
		if _, err := newWith(t, &answerer{status: 200, body: body}).List(t.Context(), s3api.ListInput{Bucket: "b"}); err != nil {
			t.Errorf("List of %q: %v", body, err)
		}
	}
}

// TestRefusesUnnamed: a Get or Put without a bucket or key, and a List
// without a bucket, are refused before anything is sent.
func TestRefusesUnnamed(t *testing.T) {
	a := &answerer{status: 200, body: `<ListBucketResult></ListBucketResult>`}
	c := newWith(t, a)
	calls := map[string]func() error{
		"get no key":     func() error { _, err := c.Get(t.Context(), s3api.GetInput{Bucket: "b"}); return err },
		"get no bucket":  func() error { _, err := c.Get(t.Context(), s3api.GetInput{Key: "k"}); return err },
		"put no key":     func() error { _, err := c.Put(t.Context(), s3api.PutInput{Bucket: "b", Body: []byte("x")}); return err },
		"put no bucket":  func() error { _, err := c.Put(t.Context(), s3api.PutInput{Key: "k", Body: []byte("x")}); return err },
		"list no bucket": func() error { _, err := c.List(t.Context(), s3api.ListInput{Prefix: "p/"}); return err },
	}
	for name, call := range calls {
		if err := call(); err == nil || !strings.Contains(err.Error(), "named") {
			t.Errorf("%s: %v; want an error saying what is not named", name, err)
		}
	}
	if a.n != 0 {
		t.Errorf("%d requests sent, want none", a.n)
	}
}
