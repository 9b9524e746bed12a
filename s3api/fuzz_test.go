package s3api_test

import (
	"encoding/xml"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent/s3api"
)

// canned answers every request with one status and body, and keeps the
// URL each was sent to: no server, so a fuzz target runs fast.
type canned struct {
	status int
	body   string
	urls   []string
}

func (c *canned) Do(req *http.Request) (*http.Response, error) {
	c.urls = append(c.urls, req.URL.Scheme+"://"+req.URL.Host+req.URL.EscapedPath()+"?"+req.URL.RawQuery)
	return &http.Response{StatusCode: c.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(c.body)),
		ContentLength: int64(len(c.body)), Request: req}, nil
}

func (c *canned) take() []string {
	u := c.urls
	c.urls = nil
	return u
}

// FuzzAddressingMatchesSDK: for any bucket and key the SDK's client sends,
// ours sends to the same URL (host, escaped path, query), with AWS's
// addressing and with a custom endpoint.
func FuzzAddressingMatchesSDK(f *testing.F) {
	f.Add("fleet-config", "fleet/topology.json", false)
	f.Add("fleet.config", "with space/and+plus.json", false)
	f.Add("Fleet_Config", "unicodé//~%x", true)
	f.Add("192.168.1.1", "?#;=&", false)
	f.Add("ab", "\x00\xff", true)
	f.Fuzz(func(t *testing.T, bucket, key string, custom bool) {
		if bucket == "" || key == "" {
			return // both refuse or the callers never ask (source and publish require both)
		}
		if strings.Trim(bucket, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != "" {
			// Not a bucket name S3 has ever allowed (letters, digits, '.',
			// '-', and in old us-east-1 buckets '_'). Where such a name needs
			// escaping, the SDK joins its escaped path to the operation's and
			// Go re-escapes the whole (leaving '$' and the like bare); S3
			// refuses the bucket either way.
			return
		}
		if strings.HasSuffix(bucket, "--x-s3") {
			return // a directory bucket: refused by ours (TestAddressingMatchesSDK)
		}
		hc := &canned{status: 404}
		endpoint := ""
		if custom {
			endpoint = "http://127.0.0.1:9000/s3"
		}
		so := s3.Options{Region: diffRegion, Credentials: diffCreds, HTTPClient: hc, Retryer: aws.NopRetryer{}}
		if custom {
			so.BaseEndpoint, so.UsePathStyle = aws.String(endpoint), true
		}
		sdk := s3.New(so)
		ours, err := s3api.New(aws.Config{Region: diffRegion, Credentials: diffCreds}, s3api.Options{Endpoint: endpoint, HTTPClient: hc, Retryer: aws.NopRetryer{}})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range []op{getOp(bucket, key, ""), putOp(bucket, key, []byte("x"), "text/plain", "", ""), listOp(bucket, key, "/", "", 0)} {
			o.sdk(t.Context(), sdk)
			su := hc.take()
			o.ours(t.Context(), ours)
			ou := hc.take()
			if len(su) == 0 {
				continue // the SDK refused to send it; S3 would refuse ours
			}
			if !cmp.Equal(su, ou) {
				t.Errorf("bucket %q key %q %s: sent to %q, the SDK to %q", bucket, key, o.name, ou, su)
			}
		}
	})
}

// FuzzErrorAnswerMatchesSDK: any answer other than success, whatever its
// body, gets the same verdict from both clients: status, code, message,
// fault, request and host ids, retryable or not.
func FuzzErrorAnswerMatchesSDK(f *testing.F) {
	f.Add(404, s3Error("NoSuchKey", "The specified key does not exist."))
	f.Add(503, s3Error("SlowDown", "Please reduce your request rate."))
	f.Add(502, "<html><body>Bad Gateway</body></html>")
	f.Add(500, "<!DOCTYPE html><br>")
	f.Add(304, "")
	f.Add(400, "<Error><Code>nosuchkey</Code></Error>")
	f.Add(409, "<Other><Code>X</Code><Message>m</Message><RequestId>r</RequestId></Other>")
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 300 || status > 599 {
			return
		}
		hc := &canned{status: status, body: body}
		sdk := newSDK("http://127.0.0.1:9000", hc, aws.NopRetryer{})
		ours := newOurs(t, "http://127.0.0.1:9000", hc, aws.NopRetryer{})
		for _, o := range []op{getOp("fleet-config", "topology.json", ""), putOp("fleet-config", "k", []byte("x"), "text/plain", "", "*"), listOp("fleet-config", "reports/", "/", "", 0)} {
			sv := classify(o.sdk(t.Context(), sdk))
			ov := classify(o.ours(t.Context(), ours))
			if diff := cmp.Diff(sv, ov); diff != "" {
				t.Errorf("%s, status %d, body %q: verdict (-SDK's +ours):\n%s", o.name, status, body, diff)
			}
		}
	})
}

// FuzzListAnswerMatchesSDK: a ListObjectsV2 page as S3 shapes it, with
// any text in the fields we read (the key, ETag, size, time, truncation and
// token, XML-escaped as S3 escapes them; a field left out when it is
// "-"), is either refused by both clients or read by both into the same
// objects and the same next token. (Arbitrary XML is not the question: the
// SDK's decoder also checks fields we do not read, and matches element
// names without regard to case, where S3 always sends one spelling.)
func FuzzListAnswerMatchesSDK(f *testing.F) {
	f.Add("reports/i-0a1b2c3d4e5f60001.json", `"5d41402abc4b2a76b9719d911017c592"`, "1234", "2026-12-02T10:11:12.000Z", "true", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
	f.Add("a & <b>", "", "-", "-", "false", "")
	f.Add("k", "e", "", "", "TRUE", "t")
	f.Add("k", "e", " 5", "2026-12-02T10:11:12", "1", "t")
	f.Add("k", "e", "-1", "2026-12-02T10:11:12+02:00", "-", "t")
	f.Fuzz(func(t *testing.T, key, etag, size, lastModified, truncated, token string) {
		field := func(name, v string) string {
			if v == "-" {
				return ""
			}
			var b strings.Builder
			if err := xml.EscapeText(&b, []byte(v)); err != nil {
				t.Fatal(err)
			}
			return "<" + name + ">" + b.String() + "</" + name + ">"
		}
		body := `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>fleet-config</Name>` +
			field("IsTruncated", truncated) + "<Contents>" + field("Key", key) + field("LastModified", lastModified) + field("ETag", etag) +
			field("Size", size) + "<StorageClass>STANDARD</StorageClass></Contents>" + field("NextContinuationToken", token) + "</ListBucketResult>"
		hc := &canned{status: 200, body: body}
		sdk := newSDK("http://127.0.0.1:9000", hc, aws.NopRetryer{})
		ours := newOurs(t, "http://127.0.0.1:9000", hc, aws.NopRetryer{})
		o := listOp("fleet-config", "reports/", "/", "", 0)
		so, serr := o.sdk(t.Context(), sdk)
		oo, oerr := o.ours(t.Context(), ours)
		// Where ours is stricter than the SDK: a page that says it is
		// truncated and names no token to go on from is an error, where the
		// SDK's paginator would stop, the listing silently short.
		if serr == nil && so.NextToken == "" && oerr != nil && strings.Contains(oerr.Error(), "no NextContinuationToken") {
			if b, err := strconv.ParseBool(truncated); err != nil || !b {
				t.Errorf("body %q: ours refused it as truncated without a token: %v", body, oerr)
			}
			return
		}
		if (serr == nil) != (oerr == nil) {
			t.Fatalf("body %q: SDK's error %v, ours %v", body, serr, oerr)
		}
		if serr == nil {
			if diff := cmp.Diff(so, oo); diff != "" {
				t.Errorf("body %q: listing (-SDK's +ours):\n%s", body, diff)
			}
		}
	})
}
