package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/nodeagent/nodeagent/s3api"
)

// API is the part of the S3 client a Store uses (*s3api.Client has it).
type API interface {
	Get(ctx context.Context, in s3api.GetInput) (*s3api.GetOutput, error)
	Put(ctx context.Context, in s3api.PutInput) (etag string, err error)
}

// Store reads and writes the rollout objects beside one topology key, with
// conditional writes: Create only if absent, Update only if unchanged.
type Store struct {
	api    API
	bucket string
	key    string // the topology key
}

// NewStore returns the Store for the topology document at rawURL,
// s3://bucket/key.
func NewStore(api API, rawURL string) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("rollout: %q: want s3://bucket/key", rawURL)
	}
	key := strings.TrimPrefix(u.Path, "/")
	if key == "" {
		return nil, fmt.Errorf("rollout: %q: no object key", rawURL)
	}
	return &Store{api: api, bucket: u.Host, key: key}, nil
}

// URL is where the rollout object of serial lives.
func (s *Store) URL(serial int64) string { return "s3://" + s.bucket + "/" + Key(s.key, serial) }

// ErrNotFound is wrapped when serial has no rollout object.
var ErrNotFound = errors.New("no rollout object")

// ErrChanged is wrapped when a conditional write lost: someone else
// changed the object (or created it) meanwhile.
var ErrChanged = errors.New("the rollout object changed meanwhile")

// Read reads the rollout object of serial and its ETag.
func (s *Store) Read(ctx context.Context, serial int64) (*Rollout, string, error) {
	name := s.URL(serial)
	out, err := s.api.Get(ctx, s3api.GetInput{Bucket: s.bucket, Key: Key(s.key, serial)})
	if err != nil {
		if status(err) == http.StatusNotFound {
			return nil, "", fmt.Errorf("rollout: %s: %w", name, ErrNotFound)
		}
		return nil, "", fmt.Errorf("rollout: read %s: %w", name, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, MaxObject+1))
	if err != nil {
		return nil, "", fmt.Errorf("rollout: read %s: %w", name, err)
	}
	r, err := Decode(body, name)
	if err != nil {
		return nil, "", err
	}
	// Update conditions its write on this ETag (If-Match).
	if out.ETag == "" {
		return nil, "", fmt.Errorf("rollout: read %s: the answer carried no ETag, which an update must be conditioned on: check AWS_ENDPOINT_URL_S3 and any proxy that drops headers", name)
	}
	return r, out.ETag, nil
}

// Create writes r if no rollout object exists for its serial.
func (s *Store) Create(ctx context.Context, r *Rollout) (string, error) {
	return s.put(ctx, r, s3api.PutInput{IfNoneMatch: "*"})
}

// Update replaces the rollout object if its ETag is still etag.
func (s *Store) Update(ctx context.Context, r *Rollout, etag string) (string, error) {
	if etag == "" {
		return "", fmt.Errorf("rollout: write %s: no ETag to condition the write on (If-Match): read the rollout object with Store.Read first", s.URL(r.Serial))
	}
	return s.put(ctx, r, s3api.PutInput{IfMatch: etag})
}

func (s *Store) put(ctx context.Context, r *Rollout, in s3api.PutInput) (string, error) {
	in.Bucket, in.Key = s.bucket, Key(s.key, r.Serial)
	in.Body, in.ContentType = r.Encode(), "application/json"
	etag, err := s.api.Put(ctx, in)
	if err != nil {
		if st := status(err); st == http.StatusPreconditionFailed || st == http.StatusConflict {
			return "", fmt.Errorf("rollout: write %s: %w", s.URL(r.Serial), ErrChanged)
		}
		return "", fmt.Errorf("rollout: write %s: %w (an operator needs s3:PutObject on rollouts/ beside the topology key)", s.URL(r.Serial), err)
	}
	// The next update conditions its write on this ETag.
	if etag == "" {
		return "", fmt.Errorf("rollout: wrote %s, but the answer carried no ETag: check AWS_ENDPOINT_URL_S3 and any proxy that drops headers", s.URL(r.Serial))
	}
	return etag, nil
}

func status(err error) int { return s3api.Status(err) }
