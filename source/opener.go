package source

import (
	"context"
	"io"
	"sync"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/nodeagent/nodeagent"
)

// Opener opens release archives by URL, streaming: nothing is buffered
// beyond what the caller reads.
type Opener struct {
	o    Options
	http func() *retryablehttp.Client // built on the first https:// URL

	mu sync.Mutex
	s3 *s3Client // built on the first s3:// URL
}

var _ nodeagent.ReleaseStore = (*Opener)(nil)

// NewOpener returns an Opener. Its clients are built on first use: a node
// whose releases are not in S3 needs no AWS configuration, and an apply
// that downloads nothing (most) pays for neither (cloning the default
// transport sets up HTTP/2, a quarter of a millisecond).
func NewOpener(ctx context.Context, o Options) (*Opener, error) {
	_ = ctx // construction does no I/O
	o = o.withDefaults()
	return &Opener{o: o, http: sync.OnceValue(func() *retryablehttp.Client { return newHTTPClient(o, false) })}, nil
}

// Open returns the archive's body and its size (-1 when unknown). The
// caller closes the body.
func (op *Opener) Open(ctx context.Context, rawURL string) (io.ReadCloser, int64, error) {
	loc, err := parseLocation(rawURL)
	if err != nil {
		return nil, 0, err
	}
	sch, _ := schemeOf(loc.scheme)
	return sch.open(ctx, op, loc)
}

func (op *Opener) s3Client(ctx context.Context) (*s3Client, error) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.s3 != nil {
		return op.s3, nil
	}
	c, err := newS3Client(ctx, op.o)
	if err != nil {
		return nil, err
	}
	op.s3 = c
	return c, nil
}
