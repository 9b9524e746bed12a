package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

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
	return nodeagent.Fetched{Body: body, ETag: tag, Source: s.loc.raw, Format: nodeagent.FormatOf(s.loc.raw)}, nil
}

// openFile opens a regular file, and only that. The path is the
// operator's (an absolute path anywhere, symlinks followed), but a FIFO,
// socket or device is refused before a byte is read: the open is
// non-blocking, so a FIFO without a writer cannot hang it (an open(2)
// blocked in the kernel ignores the deadline and SIGTERM alike), and fstat
// on the descriptor decides.
func openFile(loc location) (io.ReadCloser, int64, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(loc.path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.ENXIO {
		// A socket (or a device without its driver) cannot be opened:
		// say what it is rather than "no such device".
		var st unix.Stat_t
		if unix.Stat(loc.path, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil, 0, &Error{URL: loc.raw, Err: fmt.Errorf("%s is %s: %w", loc.path, fileType(st.Mode), errNotRegular)}
		}
	}
	if err != nil {
		return nil, 0, &Error{URL: loc.raw, Err: &fs.PathError{Op: "open", Path: loc.path, Err: err}}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, 0, &Error{URL: loc.raw, Err: &fs.PathError{Op: "stat", Path: loc.path, Err: err}}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, 0, &Error{URL: loc.raw, Err: fmt.Errorf("%s is %s: %w", loc.path, fileType(st.Mode), errNotRegular)}
	}
	// A regular file never blocks; back to blocking mode so that os.File
	// does not try the poller with it.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, 0, &Error{URL: loc.raw, Err: err}
	}
	return os.NewFile(uintptr(fd), loc.path), st.Size, nil
}

// fileType names a file type for an error message.
func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a fifo"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFDIR:
		return "a directory"
	}
	return "not a regular file"
}
