package rollout_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/rollout"
	"github.com/nodeagent/nodeagent/s3api"
)

// etaglessS3 keeps one object and answers without an ETag, as a proxy
// that drops headers would; it counts the writes.
type etaglessS3 struct {
	body   []byte
	etag   string // "" like the proxy
	writes int
}

func (f *etaglessS3) Get(context.Context, s3api.GetInput) (*s3api.GetOutput, error) {
	return &s3api.GetOutput{Body: io.NopCloser(bytes.NewReader(f.body)), ETag: f.etag, ContentLength: int64(len(f.body))}, nil
}

func (f *etaglessS3) Put(_ context.Context, in s3api.PutInput) (string, error) {
	f.writes++
	f.body = bytes.Clone(in.Body)
	return f.etag, nil
}

// TestStoreRefusesEmptyETag: an update is conditioned on the ETag read
// (If-Match); a read or a write answer without one is an error, and an
// Update with none is refused before it writes over whatever is there.
func TestStoreRefusesEmptyETag(t *testing.T) {
	r, err := rollout.New(rollout.Strategy{Waves: []int{10, 100}}, 8, 7, []byte("doc"), time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	f := &etaglessS3{}
	s, err := rollout.NewStore(f, "s3://fleet-config/prod/topology.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(context.Background(), r); err == nil || !strings.Contains(err.Error(), "no ETag") {
		t.Errorf("Create with an answer without ETag: %v; want an error saying so", err)
	}
	if _, _, err := s.Read(context.Background(), 8); err == nil || !strings.Contains(err.Error(), "no ETag") {
		t.Errorf("Read of an answer without ETag: %v; want an error saying so", err)
	}
	writes := f.writes
	if _, err := s.Update(context.Background(), r, ""); err == nil || !strings.Contains(err.Error(), "no ETag") {
		t.Errorf("Update with no ETag: %v; want an error saying so", err)
	}
	if f.writes != writes {
		t.Errorf("Update with no ETag wrote")
	}
	// With ETags all is well.
	f.etag = `"e1"`
	if _, etag, err := s.Read(context.Background(), 8); err != nil || etag != `"e1"` {
		t.Errorf("Read = %q, %v; want \"e1\"", etag, err)
	}
	if etag, err := s.Update(context.Background(), r, `"e1"`); err != nil || etag != `"e1"` {
		t.Errorf("Update = %q, %v", etag, err)
	}
}
