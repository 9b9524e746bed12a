package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	"github.com/nodeagent/nodeagent"
)

// fileScheme is file:///absolute/path: a document on this host, watched
// with fsnotify in run.
func fileScheme() scheme {
	return scheme{
		parse: func(u *url.URL, loc *location) string {
			if u.Host != "" && u.Host != "localhost" {
				return "file URL with a host (want file:///absolute/path)"
			}
			if u.Path == "" || !filepath.IsAbs(u.Path) {
				return "file path is not absolute"
			}
			loc.path = filepath.Clean(u.Path)
			return ""
		},
		topology: func(_ context.Context, loc location, o Options) (nodeagent.TopologySource, error) {
			return &fileSource{loc: loc, log: o.Logger}, nil
		},
		open: func(_ context.Context, _ *Opener, loc location) (io.ReadCloser, int64, error) {
			return openFile(loc)
		},
	}
}

// fileSource is a topology document on the local filesystem. Its ETag is
// the hex SHA-256 of the content, so unchanged content is NotModified.
type fileSource struct {
	loc location
	log *slog.Logger
}

var _ nodeagent.TopologySource = (*fileSource)(nil)

func (s *fileSource) String() string { return s.loc.raw }

func (s *fileSource) Fetch(ctx context.Context, etag string) (nodeagent.Fetched, error) {
	if err := ctx.Err(); err != nil {
		return nodeagent.Fetched{}, &Error{URL: s.loc.raw, Err: err}
	}
	f, size, err := openFile(s.loc)
	if err != nil {
		return nodeagent.Fetched{}, err
	}
	defer f.Close()
	if size > MaxDocument {
		return nodeagent.Fetched{}, &Error{URL: s.loc.raw, Err: errTooLarge}
	}
	body, err := readDocument(f)
	if err != nil {
		return nodeagent.Fetched{}, &Error{URL: s.loc.raw, Err: err}
	}
	sum := sha256.Sum256(body)
	tag := hex.EncodeToString(sum[:])
	if etag != "" && etag == tag {
		return nodeagent.Fetched{ETag: tag, NotModified: true, Source: s.loc.raw}, nil
	}
	return nodeagent.Fetched{Body: body, ETag: tag, Source: s.loc.raw}, nil
}

// openFile opens a regular file.
func openFile(loc location) (io.ReadCloser, int64, error) {
	f, err := os.Open(loc.path)
	if err != nil {
		return nil, 0, &Error{URL: loc.raw, Err: err}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, &Error{URL: loc.raw, Err: err}
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, &Error{URL: loc.raw, Err: fmt.Errorf("%s: %w", loc.path, errNotRegular)}
	}
	return f, fi.Size(), nil
}
