package release

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Rule is a safety rule an archive broke; callers can branch on it through
// ArchiveError.Rule.
type Rule string

// The rules an archive is refused by. Any one refuses the whole archive.
const (
	RuleFormat      Rule = "not a tar.gz archive (only .tar.gz releases are supported)"
	RuleCorrupt     Rule = "truncated or corrupt archive"
	RuleTrailing    Rule = "data after the end of the archive"
	RuleName        Rule = "invalid entry name"
	RuleAbsolute    Rule = "absolute path"
	RuleDotDot      Rule = "path contains a '..' component"
	RuleReserved    Rule = "reserved name (the agent's release marker)"
	RuleDuplicate   Rule = "entry repeats a path or goes through a file or link"
	RuleLinkEscape  Rule = "symlink target outside the release and the product's shared/ directory"
	RuleHardLink    Rule = "hard link not to an earlier regular file of the archive"
	RuleDevice      Rule = "device node"
	RuleFifo        Rule = "fifo"
	RuleSpecialBits Rule = "setuid, setgid or sticky bit"
	RuleType        Rule = "unsupported entry type"
	RuleSize        Rule = "unpacked size past the limit"
	RuleFileCount   Rule = "entry count past the limit"
	RuleInodes      Rule = "files, directories and links created past the limit (directories an entry's path makes count)"
	RuleDepth       Rule = "path deeper than the limit"
	RulePathLength  Rule = "path or link target longer than the limit"
)

// maxShownName bounds how much of an entry name an error shows: a hostile
// name may be a megabyte long.
const maxShownName = 200

// ArchiveError is an archive refused by a safety rule. Nothing of it is
// kept.
type ArchiveError struct {
	URL    string // the archive
	Entry  string // the entry name as in the archive, "" for the archive as a whole
	Rule   Rule
	Detail string // what exactly, e.g. the link target or the limit
	Err    error  // underlying error, if any
}

func (e *ArchiveError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "release archive %s refused", e.URL)
	if e.Entry != "" {
		if len(e.Entry) > maxShownName {
			fmt.Fprintf(&b, ": entry %q… (%d bytes)", strings.ToValidUTF8(e.Entry[:maxShownName], ""), len(e.Entry))
		} else {
			fmt.Fprintf(&b, ": entry %q", e.Entry)
		}
	}
	fmt.Fprintf(&b, ": %s", e.Rule)
	if e.Detail != "" {
		fmt.Fprintf(&b, " (%s)", e.Detail)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *ArchiveError) Unwrap() error { return e.Err }

// ChecksumError is an archive whose sha256 is not the one the topology
// names.
type ChecksumError struct {
	URL      string
	Expected string
	Actual   string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("release archive %s refused: sha256 mismatch: expected %s, got %s", e.URL, e.Expected, e.Actual)
}

type entryKind uint8

const (
	kindDir entryKind = iota + 1
	kindFile
	kindLink
)

// maxTrailing bounds the zero padding read after the end-of-archive marker
// (tar writers pad to a record size, 10 KiB for GNU tar).
const maxTrailing = 1 << 20

// extractor unpacks one tar stream into dir, refusing anything unsafe.
//
// Everything is created with *at system calls relative to dirfd, the
// staging directory opened beneath the root without following a symlink
// (package beneath), and never through a link: every parent of an entry is
// a directory this extractor made (see parents).
type extractor struct {
	url        string
	dir        string // staging directory, absolute, for messages
	dirfd      int    // the staging directory
	relRoot    string // the release's final place relative to the product dir: "releases/<id>"
	maxBytes   int64
	maxFiles   int
	maxInodes  int // files, links and directories created, implicit ones included
	maxDepth   int // directories in an entry's path
	maxPathLen int // bytes of an entry's name or a link's target
	// readErr reports a failure of the download itself (not of the
	// archive), so that a network error is not called a corrupt archive.
	readErr func() error

	entries map[string]entryKind // cleaned names extracted so far
	bytes   int64                // file bytes actually written
	count   int                  // entries seen
	inodes  int                  // files, links and directories created
	buf     []byte
}

func (x *extractor) refuse(entry string, rule Rule, detail string, err error) error {
	return &ArchiveError{URL: x.url, Entry: entry, Rule: rule, Detail: detail, Err: err}
}

// streamErr classifies an error reading the archive stream.
func (x *extractor) streamErr(entry string, err error) error {
	if rerr := x.readErr(); rerr != nil {
		return fmt.Errorf("download %s: %w", x.url, rerr)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return x.refuse(entry, RuleCorrupt, "the data ends early", err)
	}
	return x.refuse(entry, RuleCorrupt, "", err)
}

// run extracts every entry of tr, then reads the stream to its end so that
// the caller's hash has seen every byte.
func (x *extractor) run(tr *tar.Reader, rest io.Reader) error {
	x.entries = map[string]entryKind{}
	x.buf = make([]byte, 256<<10)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return x.streamErr("", err)
		}
		if err := x.entry(tr, hdr); err != nil {
			return err
		}
	}
	// Past the end-of-archive marker only zero padding may follow; reading
	// it to EOF also makes gzip check its trailer (CRC and length).
	var trailing int64
	for {
		n, err := rest.Read(x.buf)
		for _, c := range x.buf[:n] {
			if c != 0 {
				return x.refuse("", RuleTrailing, "non-zero bytes after the end-of-archive marker", nil)
			}
		}
		trailing += int64(n)
		if trailing > maxTrailing {
			return x.refuse("", RuleTrailing, fmt.Sprintf("more than %d bytes of padding", maxTrailing), nil)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return x.streamErr("", err)
		}
	}
}

// cleanName checks an archive path and returns it cleaned and relative.
func (x *extractor) cleanName(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", x.refuse(name, RuleName, "", nil)
	}
	if strings.HasPrefix(name, "/") {
		return "", x.refuse(name, RuleAbsolute, "", nil)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", x.refuse(name, RuleDotDot, "", nil)
		}
	}
	return path.Clean(name), nil
}

func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	x.count++
	if x.count > x.maxFiles {
		return x.refuse(hdr.Name, RuleFileCount, fmt.Sprintf("more than %d entries", x.maxFiles), nil)
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // pax global header: metadata only
	}
	if len(hdr.Name) > x.maxPathLen {
		return x.refuse(hdr.Name, RulePathLength, fmt.Sprintf("%d bytes, limit %d", len(hdr.Name), x.maxPathLen), nil)
	}
	if len(hdr.Linkname) > x.maxPathLen {
		return x.refuse(hdr.Name, RulePathLength, fmt.Sprintf("link target of %d bytes, limit %d", len(hdr.Linkname), x.maxPathLen), nil)
	}
	name, err := x.cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if depth := strings.Count(name, "/"); depth > x.maxDepth {
		return x.refuse(hdr.Name, RuleDepth, fmt.Sprintf("%d directories, limit %d", depth, x.maxDepth), nil)
	}
	if hdr.Mode&(04000|02000|01000) != 0 {
		return x.refuse(hdr.Name, RuleSpecialBits, fmt.Sprintf("mode %o", hdr.Mode), nil)
	}
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		return x.refuse(hdr.Name, RuleDevice, "", nil)
	case tar.TypeFifo:
		return x.refuse(hdr.Name, RuleFifo, "", nil)
	case tar.TypeDir, tar.TypeReg, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink:
	default:
		return x.refuse(hdr.Name, RuleType, fmt.Sprintf("type %q", hdr.Typeflag), nil)
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return nil // the release root itself
		}
		return x.refuse(hdr.Name, RuleName, "", nil)
	}
	if name == MarkerName {
		return x.refuse(hdr.Name, RuleReserved, "", nil)
	}
	if err := x.parents(hdr.Name, name); err != nil {
		return err
	}
	if prev, ok := x.entries[name]; ok && !(prev == kindDir && hdr.Typeflag == tar.TypeDir) {
		return x.refuse(hdr.Name, RuleDuplicate, "path already extracted", nil)
	}
	if hdr.Typeflag == tar.TypeDir {
		if _, ok := x.entries[name]; ok {
			return nil
		}
	}
	if err := x.create(hdr.Name); err != nil {
		return err
	}
	rel := filepath.FromSlash(name) // relative to dirfd
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(x.dirfd, rel, 0o755); err != nil {
			return x.fsErr(hdr.Name, "mkdir", name, err)
		}
		x.entries[name] = kindDir
	case tar.TypeSymlink:
		if err := x.checkSymlink(hdr.Name, name, hdr.Linkname); err != nil {
			return err
		}
		if err := unix.Symlinkat(hdr.Linkname, x.dirfd, rel); err != nil {
			return x.fsErr(hdr.Name, "symlink", name, err)
		}
		x.entries[name] = kindLink
	case tar.TypeLink:
		target, err := x.cleanName(hdr.Linkname)
		if err != nil || x.entries[target] != kindFile {
			return x.refuse(hdr.Name, RuleHardLink, "target "+hdr.Linkname, nil)
		}
		if err := unix.Linkat(x.dirfd, filepath.FromSlash(target), x.dirfd, rel, 0); err != nil {
			return x.fsErr(hdr.Name, "link", name, err)
		}
		x.entries[name] = kindFile
	default:
		if err := x.file(tr, hdr, name); err != nil {
			return err
		}
		x.entries[name] = kindFile
	}
	return nil
}

// create counts one more file, link or directory made, refusing the
// archive past the limit.
func (x *extractor) create(raw string) error {
	x.inodes++
	if x.inodes > x.maxInodes {
		return x.refuse(raw, RuleInodes, fmt.Sprintf("more than %d", x.maxInodes), nil)
	}
	return nil
}

// fsErr is a failed system call on entry name of the staging directory.
func (x *extractor) fsErr(raw, op, name string, err error) error {
	return fmt.Errorf("extract %s: %w", raw, &fs.PathError{Op: op, Path: filepath.Join(x.dir, filepath.FromSlash(name)), Err: err})
}

// parents makes sure every parent of name is a directory (never a file or a
// link: nothing is written through a link), creating missing ones.
func (x *extractor) parents(raw, name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		parent := name[:i]
		switch x.entries[parent] {
		case kindDir:
			continue
		case kindFile, kindLink:
			return x.refuse(raw, RuleDuplicate, "parent "+parent+" is not a directory", nil)
		}
		if err := x.create(raw); err != nil {
			return err
		}
		if err := unix.Mkdirat(x.dirfd, filepath.FromSlash(parent), 0o755); err != nil {
			return x.fsErr(raw, "mkdir", parent, err)
		}
		x.entries[parent] = kindDir
	}
	return nil
}

// checkSymlink allows a target that, resolved lexically from the link's
// directory, stays inside the release or inside the product's shared/
// directory. '..' may only lead the target (climb, then descend), so a
// target cannot climb back out through another link of the archive.
func (x *extractor) checkSymlink(raw, name, target string) error {
	if target == "" || strings.ContainsRune(target, 0) {
		return x.refuse(raw, RuleLinkEscape, "empty target", nil)
	}
	if path.IsAbs(target) {
		return x.refuse(raw, RuleLinkEscape, "absolute target "+target, nil)
	}
	descended := false
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "", ".":
		case "..":
			if descended {
				return x.refuse(raw, RuleLinkEscape, "target "+target+" climbs after descending", nil)
			}
		default:
			descended = true
		}
	}
	resolved := path.Join(x.relRoot, path.Dir(name), target)
	if resolved == x.relRoot || strings.HasPrefix(resolved, x.relRoot+"/") ||
		resolved == "shared" || strings.HasPrefix(resolved, "shared/") {
		return nil
	}
	return x.refuse(raw, RuleLinkEscape, "target "+target, nil)
}

// writerOnly hides os.File's ReadFrom so that io.CopyBuffer uses our buffer.
type writerOnly struct{ io.Writer }

func (x *extractor) file(tr *tar.Reader, hdr *tar.Header, name string) error {
	remaining := x.maxBytes - x.bytes
	if hdr.Size > remaining {
		return x.refuse(hdr.Name, RuleSize, fmt.Sprintf("header says %d bytes, limit %d bytes", hdr.Size, x.maxBytes), nil)
	}
	perm := fs.FileMode(hdr.Mode) & 0o755
	f, err := createFile(x.dirfd, filepath.FromSlash(name), filepath.Join(x.dir, filepath.FromSlash(name)), perm)
	if err != nil {
		return fmt.Errorf("extract %s: %w", hdr.Name, err)
	}
	// Count what is really copied, not what the header claims.
	src := &trackedReader{r: io.LimitReader(tr, remaining+1)}
	n, err := io.CopyBuffer(writerOnly{f}, src, x.buf)
	x.bytes += n
	if err != nil {
		f.Close()
		if src.err != nil {
			return x.streamErr(hdr.Name, src.err)
		}
		return fmt.Errorf("extract %s: %w", hdr.Name, err)
	}
	if x.bytes > x.maxBytes {
		f.Close()
		return x.refuse(hdr.Name, RuleSize, fmt.Sprintf("more than %d bytes unpacked", x.maxBytes), nil)
	}
	// Exact mode whatever the umask.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("extract %s: %w", hdr.Name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("extract %s: %w", hdr.Name, err)
	}
	// Archive mtimes make every node of the fleet serve the same
	// Last-Modified and ETag for the same release.
	if mt := hdr.ModTime; !mt.IsZero() {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mt.UnixNano())}
		if err := unix.UtimesNanoAt(x.dirfd, filepath.FromSlash(name), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return x.fsErr(hdr.Name, "chtimes", name, err)
		}
	}
	return nil
}

// createFile creates a new regular file rel of directory dirfd for
// writing, never following a link; full names it. It does what
// os.OpenFile(name, O_WRONLY|O_CREATE|O_EXCL|O_NOFOLLOW, perm) does in two
// system calls instead of six: os.OpenFile also tries to
// register every file with the network poller (four fcntl and an epoll_ctl
// that fails for a regular file), four wasted calls per extracted file.
// os.NewFile leaves a blocking descriptor out of the poller after one
// fcntl.
func createFile(dirfd int, rel, full string, perm fs.FileMode) (*os.File, error) {
	for {
		fd, err := unix.Openat(dirfd, rel, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm))
		if err == unix.EINTR {
			continue // as os.OpenFile does
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: full, Err: err}
		}
		return os.NewFile(uintptr(fd), full), nil
	}
}

// trackedReader remembers a read error, to tell a broken archive from a
// failed write.
type trackedReader struct {
	r   io.Reader
	err error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}
