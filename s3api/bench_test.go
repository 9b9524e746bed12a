package s3api_test

import (
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// BenchmarkGet is one signed GetObject of a 2 KiB topology document from a
// local endpoint through each client, body read: what an s3:// apply pays
// per fetch beyond the network.
func BenchmarkGet(b *testing.B) {
	body := string(make([]byte, 2048))
	rec := &recorder{}
	rec.set(answer{status: 200, header: map[string]string{"ETag": `"0123abcd"`, "Content-Length": "2048"}, body: body})
	srv := httptest.NewServer(rec)
	b.Cleanup(srv.Close)
	o := getOp("fleet-config", "fleet/topology.json", "")
	b.Run("sdk", func(b *testing.B) {
		c := newSDK(srv.URL, nil, aws.NopRetryer{})
		for b.Loop() {
			if _, err := o.sdk(b.Context(), c); err != nil {
				b.Fatal(err)
			}
			rec.take()
		}
	})
	b.Run("s3api", func(b *testing.B) {
		c := newOurs(b, srv.URL, nil, aws.NopRetryer{})
		for b.Loop() {
			if _, err := o.ours(b.Context(), c); err != nil {
				b.Fatal(err)
			}
			rec.take()
		}
	})
}
