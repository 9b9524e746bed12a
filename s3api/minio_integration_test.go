//go:build integration

package s3api_test

// The differential test against a real S3 server: MinIO checks every
// signature, escapes and stores keys as S3 does and honours conditional
// writes, so the SDK's client and ours must get the same answers from it
// for the same calls, each reading what the other wrote.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent/s3api"
	"github.com/nodeagent/nodeagent/test/harness"
)

// minioVerdict is classify without what differs from request to request.
func minioVerdict(o outcome, err error) verdict {
	v := classify(o, err)
	v.RequestID, v.HostID = "", ""
	v.Outcome.LastModified = time.Time{}
	for i := range v.Outcome.Objects {
		v.Outcome.Objects[i].LastModified = time.Time{}
	}
	return v
}

func TestMinIODifferential(t *testing.T) {
	m := harness.StartMinIO(t)
	const bucket = "fleet-config"
	m.Put(t, bucket, "seed", []byte("seed"))
	sdk := m.Client()
	newOurs := func(secret string) *s3api.Client {
		c, err := s3api.New(aws.Config{Region: m.Region, Credentials: credentials.NewStaticCredentialsProvider(m.AccessKey, secret, "")},
			s3api.Options{Endpoint: m.Endpoint})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ours := newOurs(m.SecretKey)

	// both runs o for each client on its own copy of the key (ours/…,
	// sdk/…) and requires the same verdict.
	both := func(t *testing.T, what string, o func(prefix string) op) verdict {
		t.Helper()
		sv := minioVerdict(o("sdk/").sdk(t.Context(), sdk))
		ov := minioVerdict(o("ours/").ours(t.Context(), ours))
		if diff := cmp.Diff(sv, ov); diff != "" {
			t.Errorf("%s: verdict (-SDK's +ours):\n%s", what, diff)
		}
		return ov
	}
	body := []byte(`{"schema":1,"serial":42}`)
	for _, key := range keys {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			create := both(t, "create", func(p string) op { return putOp(bucket, p+key, body, "application/json", "", "*") })
			if !create.OK {
				// MinIO refuses some names S3 takes ("//", a trailing "/"):
				// both clients were refused alike, which is all there is to see.
				t.Logf("MinIO refused the key; both clients alike: %+v", create)
				return
			}
			// Each reads what the other wrote, byte for byte with its ETag.
			for _, p := range []string{"sdk/", "ours/"} {
				sv := minioVerdict(getOp(bucket, p+key, "").sdk(t.Context(), sdk))
				ov := minioVerdict(getOp(bucket, p+key, "").ours(t.Context(), ours))
				if diff := cmp.Diff(sv, ov); diff != "" {
					t.Errorf("get %s: verdict (-SDK's +ours):\n%s", p+key, diff)
				}
				if !ov.OK || ov.Outcome.Body != string(body) || ov.Outcome.ETag != create.Outcome.ETag || ov.Outcome.ContentLength != int64(len(body)) {
					t.Errorf("get %s: %+v, want the body written, ETag %s", p+key, ov, create.Outcome.ETag)
				}
			}
			if v := both(t, "create again", func(p string) op { return putOp(bucket, p+key, body, "application/json", "", "*") }); v.Status != 412 || v.Code != "PreconditionFailed" {
				t.Errorf("create again: %+v, want 412 PreconditionFailed", v)
			}
			if v := both(t, "replace a stale ETag", func(p string) op {
				return putOp(bucket, p+key, []byte("{}"), "application/json", `"00000000000000000000000000000000"`, "")
			}); v.Status != 412 {
				t.Errorf("replace a stale ETag: %+v, want 412", v)
			}
			if v := both(t, "get if changed", func(p string) op { return getOp(bucket, p+key, create.Outcome.ETag) }); v.Status != 304 || v.Code != "NotModified" {
				t.Errorf("get if changed: %+v, want 304 NotModified", v)
			}
			if v := both(t, "replace the current ETag", func(p string) op {
				return putOp(bucket, p+key, []byte("serial: 43\n"), "application/yaml", create.Outcome.ETag, "")
			}); !v.OK || v.Outcome.ETag == create.Outcome.ETag {
				t.Errorf("replace the current ETag: %+v, want a new ETag", v)
			}
		})
	}

	t.Run("list pages", func(t *testing.T) {
		// Both listings, page by page (3 keys a page), hold the same keys
		// under their own prefixes with the same sizes and ETags.
		pages := func(prefix string, list func(token string) (outcome, error)) [][]s3api.Object {
			var all [][]s3api.Object
			token := ""
			for range 20 {
				o, err := list(token)
				if err != nil {
					t.Fatalf("list %s: %v", prefix, err)
				}
				for i := range o.Objects {
					o.Objects[i].Key = strings.TrimPrefix(o.Objects[i].Key, prefix)
					if o.Objects[i].LastModified.IsZero() {
						t.Errorf("list %s: %q has no LastModified", prefix, o.Objects[i].Key)
					}
					o.Objects[i].LastModified = time.Time{}
				}
				all = append(all, o.Objects)
				if token = o.NextToken; token == "" {
					return all
				}
			}
			t.Fatalf("list %s: more than 20 pages", prefix)
			return nil
		}
		sp := pages("sdk/", func(token string) (outcome, error) {
			return listOp(bucket, "sdk/", "", token, 3).sdk(t.Context(), sdk)
		})
		op := pages("ours/", func(token string) (outcome, error) {
			return listOp(bucket, "ours/", "", token, 3).ours(t.Context(), ours)
		})
		if diff := cmp.Diff(sp, op); diff != "" {
			t.Errorf("pages (-SDK's +ours):\n%s", diff)
		}
		if len(op) < 2 {
			t.Errorf("%d pages, want several: the test no longer pages", len(op))
		}
		// With a delimiter: only what is directly under the prefix.
		sv := minioVerdict(listOp(bucket, "sdk/", "/", "", 0).sdk(t.Context(), sdk))
		ov := minioVerdict(listOp(bucket, "ours/", "/", "", 0).ours(t.Context(), ours))
		for i := range sv.Outcome.Objects {
			sv.Outcome.Objects[i].Key = strings.TrimPrefix(sv.Outcome.Objects[i].Key, "sdk/")
		}
		for i := range ov.Outcome.Objects {
			ov.Outcome.Objects[i].Key = strings.TrimPrefix(ov.Outcome.Objects[i].Key, "ours/")
		}
		if diff := cmp.Diff(sv, ov); diff != "" {
			t.Errorf("list with a delimiter (-SDK's +ours):\n%s", diff)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		wrong := newOurs("not-the-secret")
		wrongSDK := s3.New(s3.Options{
			Region:       m.Region,
			Credentials:  credentials.NewStaticCredentialsProvider(m.AccessKey, "not-the-secret", ""),
			BaseEndpoint: aws.String(m.Endpoint),
			UsePathStyle: true,
		})
		tests := []struct {
			name     string
			op       op
			sdk      *s3.Client
			ours     *s3api.Client
			wantCode string
		}{
			{"no such key", getOp(bucket, "missing.json", ""), sdk, ours, "NoSuchKey"},
			{"no such bucket: get", getOp("no-such-bucket", "topology.json", ""), sdk, ours, "NoSuchBucket"},
			{"no such bucket: list", listOp("no-such-bucket", "reports/", "/", "", 0), sdk, ours, "NoSuchBucket"},
			{"no such bucket: put", putOp("no-such-bucket", "k", []byte("x"), "text/plain", "", ""), sdk, ours, "NoSuchBucket"},
			{"wrong secret: get", getOp(bucket, "seed", ""), wrongSDK, wrong, "SignatureDoesNotMatch"},
			{"wrong secret: put", putOp(bucket, "k", []byte("x"), "text/plain", "", ""), wrongSDK, wrong, "SignatureDoesNotMatch"},
			{"wrong secret: list", listOp(bucket, "", "/", "", 0), wrongSDK, wrong, "SignatureDoesNotMatch"},
		}
		for _, tt := range tests {
			sv := minioVerdict(tt.op.sdk(t.Context(), tt.sdk))
			ov := minioVerdict(tt.op.ours(t.Context(), tt.ours))
			if diff := cmp.Diff(sv, ov); diff != "" {
				t.Errorf("%s: verdict (-SDK's +ours):\n%s", tt.name, diff)
			}
			if ov.Code != tt.wantCode {
				t.Errorf("%s: %+v, want code %s", tt.name, ov, tt.wantCode)
			}
		}
	})
}
