//go:build integration

package metadata_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent/metadata"
	"github.com/nodeagent/nodeagent/test/harness"
)

// TestDifferentialAEMM holds Client and RoleCredentials to the SDK's imds
// client and ec2rolecreds against AWS's own IMDS mock (IMDSv2 only): the
// same value or the same verdict for every path the agent reads, a listing,
// a path the mock does not serve, and the same instance profile
// credentials.
func TestDifferentialAEMM(t *testing.T) {
	m := harness.StartIMDS(t, harness.IMDSConfig{
		InstanceID:   "i-0d1f2e3a4b5c60042",
		PrivateIP:    "127.0.10.42",
		AZ:           "eu-west-1c",
		InstanceType: "c7g.large",
		Group:        "shop-web",
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	o := metadata.Options{Endpoint: m.URL, Attempts: 2, CallTimeout: 5 * time.Second}
	sdk, ours := newSDKReader(m.URL, o), newOurReader(t, o)

	paths := []struct {
		path    string
		dynamic bool
		want    verdict // ours; the SDK's must equal it
	}{
		{path: metadata.PathInstanceID, want: verdict{Value: "i-0d1f2e3a4b5c60042"}},
		{path: metadata.PathLocalIPv4, want: verdict{Value: "127.0.10.42"}},
		{path: metadata.PathAZ, want: verdict{Value: "eu-west-1c"}},
		{path: metadata.PathRegion, want: verdict{Value: "eu-west-1"}},
		{path: metadata.PathInstanceType, want: verdict{Value: "c7g.large"}},
		{path: metadata.PathGroupTag, want: verdict{Value: "shop-web"}},
		{path: metadata.PathLifecycleState, want: verdict{Value: "InService"}},
		{path: metadata.PathSecurityCredentials},
		{path: "instance-identity/document", dynamic: true},
		{path: "no/such/path", want: verdict{Err: true, Path: "no/such/path", Status: 404, Attempts: 1, Last: "GET /latest/meta-data/no/such/path", NotFound: true}},
	}
	for _, p := range paths {
		t.Run(p.path, func(t *testing.T) {
			var sb, ob []byte
			var serr, oerr error
			if p.dynamic {
				sb, serr = sdk.dynamic(ctx, p.path)
				ob, oerr = ours.dynamic(ctx, p.path)
			} else {
				sb, serr = sdk.meta(ctx, p.path)
				ob, oerr = ours.meta(ctx, p.path)
			}
			sv, ov := judge(sb, serr), judge(ob, oerr)
			if diff := cmp.Diff(sv, ov); diff != "" {
				t.Errorf("verdict (-SDK's +ours):\n%s\nSDK's error: %v\nour error: %v", diff, serr, oerr)
			}
			if ov.Err && !p.want.Err {
				t.Fatalf("read: %v", oerr)
			}
			if p.want != (verdict{}) {
				if diff := cmp.Diff(p.want, ov); diff != "" {
					t.Errorf("verdict (-want +got):\n%s\nerror: %v", diff, oerr)
				}
			} else if ov.Value == "" {
				t.Errorf("%s: empty", p.path)
			}
		})
	}

	t.Run("instance profile credentials", func(t *testing.T) {
		sc, serr := ec2rolecreds.New(func(eo *ec2rolecreds.Options) { eo.Client = sdk.c }).Retrieve(ctx)
		oc, oerr := metadata.NewRoleCredentials(ours.c).Retrieve(ctx)
		if serr != nil || oerr != nil {
			t.Fatalf("SDK's: %v; ours: %v", serr, oerr)
		}
		if diff := cmp.Diff(sc, oc); diff != "" {
			t.Errorf("credentials (-SDK's +ours):\n%s", diff)
		}
		if oc.AccessKeyID == "" || oc.SecretAccessKey == "" || oc.SessionToken == "" || !oc.CanExpire || oc.Expires.IsZero() {
			t.Errorf("credentials %+v lack a key, a secret, a token or an expiry", oc)
		}
	})
}
