package release

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs/beneath"
	"github.com/nodeagent/nodeagent/redact"
)

// Install downloads release r of product, verifies its sha256 while
// streaming, unpacks it into a staging directory and moves it into
// releases/<id> with its marker. It does nothing when the release is already
// installed. On any failure the staging directory is removed and nothing
// else has changed.
func (m *Manager) Install(ctx context.Context, product string, r nodeagent.Release) error {
	if err := m.install(ctx, product, r); err != nil {
		return fmt.Errorf("release: install %s %s: %w", product, r.ID, err)
	}
	return nil
}

func (m *Manager) install(ctx context.Context, product string, r nodeagent.Release) error {
	if err := checkName("product", product); err != nil {
		return err
	}
	if err := checkName("release id", r.ID); err != nil {
		return err
	}
	if sum, err := hex.DecodeString(r.SHA256); err != nil || len(sum) != sha256.Size {
		return fmt.Errorf("sha256 %q is not 64 hex digits", r.SHA256)
	}
	if r.URL == "" {
		return errors.New("release has no url")
	}
	if m.Store == nil {
		return errors.New("no release store configured")
	}
	log := m.logger().With(nodeagent.LogKeyProduct, product, nodeagent.LogKeyRelease, r.ID)
	if m.Installed(product, r) {
		log.Debug("release already installed")
		return nil
	}
	l := m.Layout(product)
	key := product + "/" + r.ID
	if !m.begin(key) {
		return errors.New("already being installed")
	}
	defer m.end(key)

	if err := m.cleanDebris(l); err != nil {
		return err
	}
	if err := m.removeStale(l, product, r); err != nil {
		return err
	}
	// Every directory from the root down is resolved without following a
	// symlink (package beneath): a planted .staging or releases link is
	// refused, never written through.
	stagingDir, err := beneath.MkdirAll(l.root, l.hp(".staging"), 0o755)
	if err != nil {
		return err
	}
	defer stagingDir.Close()
	name, err := stagingDir.MkdirTemp(r.ID + "-")
	if err != nil {
		return err
	}
	staging := filepath.Join(l.Staging(), name)
	m.track(staging, true)
	defer m.track(staging, false)
	done := false
	defer func() {
		if !done {
			stagingDir.RemoveAll(name)
			beneath.Remove(l.root, l.hp(".staging")) // only when empty
		}
	}()
	dir, err := stagingDir.Open(name, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer dir.Close()

	mk, err := m.fetch(ctx, log, r, dir, staging)
	if err != nil {
		return err
	}
	m.step("install:extracted")
	if err := writeMarker(dir, mk); err != nil {
		return err
	}
	m.step("install:marker")
	if err := dir.Chmod(0o755); err != nil {
		return err
	}
	releases, err := beneath.MkdirAll(l.root, l.hp("releases"), 0o755)
	if err != nil {
		return err
	}
	defer releases.Close()
	if err := unix.Renameat(stagingDir.Fd(), name, releases.Fd(), r.ID); err != nil {
		return &os.LinkError{Op: "rename", Old: staging, New: l.Release(r.ID), Err: err}
	}
	done = true
	m.step("install:renamed")
	if err := releases.Sync(); err != nil {
		return err
	}
	beneath.Remove(l.root, l.hp(".staging"))
	log.Info("release installed", nodeagent.LogKeyPath, l.Release(r.ID), nodeagent.LogKeyBytes, mk.Bytes, nodeagent.LogKeyFiles, mk.Files)
	return nil
}

// removeStale clears releases/<id> when it exists but is not r (a crash
// before the marker cannot leave one, a hand-made directory or a re-published
// archive can). The active release is never touched.
func (m *Manager) removeStale(l Layout, product string, r nodeagent.Release) error {
	if _, err := beneath.Lstat(l.root, l.hp("releases", r.ID)); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	active, err := m.Active(product)
	if err != nil {
		return err
	}
	if active == r.ID {
		return fmt.Errorf("%s is active but was not installed from sha256 %s; publish a changed archive under a new release id", l.Release(r.ID), r.SHA256)
	}
	m.logger().Warn("replacing a release directory without a matching marker", nodeagent.LogKeyProduct, product, nodeagent.LogKeyRelease, r.ID)
	return m.discard(l, r.ID)
}

// fetch streams the archive once: store -> progress -> sha256 -> gzip ->
// tar -> files. Downloading, hashing and inflating run in a goroutine of
// their own, a few blocks ahead of the one writing files (blockPipe).
func (m *Manager) fetch(ctx context.Context, log *slog.Logger, r nodeagent.Release, dir *os.File, staging string) (Marker, error) {
	start := m.now()
	// Messages, logs and the marker name the URL without its userinfo or
	// query string (a presigned URL's signature and token).
	shown := redact.URL(r.URL)
	body, size, err := m.Store.Open(ctx, r.URL)
	if err != nil {
		// The store's errors name the URL (nodeagent.ReleaseStore).
		return Marker{}, fmt.Errorf("download: %w", err)
	}
	defer body.Close()
	log.Info("downloading release", nodeagent.LogKeyURL, shown, nodeagent.LogKeySize, size)

	pr := &progress{r: body, total: size, now: m.now, start: start, last: start, log: log, url: shown}
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(pr, h), 1<<20)
	if magic, _ := br.Peek(2); len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		if pr.err != nil {
			return Marker{}, fmt.Errorf("download %s: %w", shown, pr.err)
		}
		return Marker{}, &ArchiveError{URL: shown, Rule: RuleFormat, Detail: sniff(magic, br)}
	}
	var p *blockPipe // set once the inflating goroutine runs
	x := &extractor{
		url: shown, dir: staging, dirfd: int(dir.Fd()), relRoot: "releases/" + r.ID,
		maxBytes: m.maxBytes(), maxFiles: m.maxFiles(),
		maxInodes: m.maxInodes(), maxDepth: m.maxDepth(), maxPathLen: m.maxPathLen(),
		readErr: func() error {
			// pr belongs to the inflating goroutine until it has
			// returned; it has then also seen any download error.
			if p != nil {
				p.close()
			}
			if pr.err != nil {
				return pr.err
			}
			return ctx.Err()
		},
	}
	gz, err := gzip.NewReader(br)
	if err != nil {
		return Marker{}, x.streamErr("", err)
	}
	p = newBlockPipe()
	go p.fill(gz)
	err = x.run(tar.NewReader(p), p)
	// From here on br, h and pr are this goroutine's again. After a refusal
	// close waits for a read of the body in flight (bounded by ctx) rather
	// than closing the body under it: a store's reader need not allow that.
	p.close()
	if err != nil {
		return Marker{}, err
	}
	// gzip read to its EOF has consumed the body to its EOF (a trailing
	// non-gzip byte is an error there); make sure of it all the same.
	if n, err := io.Copy(io.Discard, br); err != nil || n != 0 {
		if err == nil {
			return Marker{}, x.refuse("", RuleTrailing, fmt.Sprintf("%d bytes after the gzip stream", n), nil)
		}
		return Marker{}, x.streamErr("", err)
	}
	if size >= 0 && pr.n != size {
		return Marker{}, x.refuse("", RuleCorrupt, fmt.Sprintf("got %d of %d bytes", pr.n, size), nil)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if !strings.EqualFold(sum, r.SHA256) {
		return Marker{}, &ChecksumError{URL: shown, Expected: strings.ToLower(r.SHA256), Actual: sum}
	}
	pr.done()
	return Marker{
		ID: r.ID, URL: shown, SHA256: sum, InstalledAt: m.now().UTC(),
		Bytes: x.bytes, Files: x.count,
	}, nil
}

// sniff names a few formats people upload by mistake.
func sniff(magic []byte, br *bufio.Reader) string {
	head, _ := br.Peek(262)
	switch {
	case len(magic) == 0:
		return "empty file"
	case strings.HasPrefix(string(head), "PK\x03\x04"):
		return "a zip archive"
	case strings.HasPrefix(string(head), "BZh"):
		return "a bzip2 stream"
	case strings.HasPrefix(string(head), "\xfd7zXZ"):
		return "an xz stream"
	case strings.HasPrefix(string(head), "\x28\xb5\x2f\xfd"):
		return "a zstd stream"
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return "an uncompressed tar"
	}
	// Never the bytes themselves: the URL may name a file that is not a
	// release at all (file:///etc/shadow), and errors reach logs and
	// status.json.
	return "no gzip magic (1f 8b) at the start"
}

// writeMarker writes the marker into the staging directory dir.
func writeMarker(dir *os.File, mk Marker) error {
	b, err := json.MarshalIndent(mk, "", "  ")
	if err != nil {
		return err
	}
	fd, err := unix.Openat(int(dir.Fd()), MarkerName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &fs.PathError{Op: "open", Path: filepath.Join(dir.Name(), MarkerName), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir.Name(), MarkerName))
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// begin registers a release being installed by this process; Prune leaves
// it alone.
func (m *Manager) begin(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.installing == nil {
		m.installing = map[string]int{}
	}
	if m.installing[key] > 0 {
		return false
	}
	m.installing[key]++
	return true
}

func (m *Manager) end(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.installing, key)
}

func (m *Manager) busy(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.installing[key] > 0
}

// track records a staging directory in use by this process.
func (m *Manager) track(dir string, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.installing == nil {
		m.installing = map[string]int{}
	}
	if on {
		m.installing["staging:"+dir] = 1
	} else {
		delete(m.installing, "staging:"+dir)
	}
}

// cleanDebris removes what a killed process left behind: staging
// directories not in use by this process and a current.tmp link. One apply
// at a time per host (the agent's lock) makes anything else debris.
func (m *Manager) cleanDebris(l Layout) error {
	names, err := beneath.ReadDirNames(l.root, l.hp(".staging"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, name := range names {
		dir := filepath.Join(l.Staging(), name)
		if m.busy("staging:" + dir) {
			continue
		}
		m.logger().Info("removing debris of an interrupted install", nodeagent.LogKeyPath, dir)
		if err := beneath.RemoveAll(l.root, l.hp(".staging", name)); err != nil {
			return err
		}
	}
	if err := beneath.Remove(l.root, l.hp("current.tmp")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// discard removes release id: first moved into staging (one atomic rename,
// so a crash never leaves a half-deleted release that still has its marker),
// then deleted.
func (m *Manager) discard(l Layout, id string) error {
	stagingDir, err := beneath.MkdirAll(l.root, l.hp(".staging"), 0o755)
	if err != nil {
		return err
	}
	defer stagingDir.Close()
	trash, err := stagingDir.MkdirTemp("trash-" + id + "-")
	if err != nil {
		return err
	}
	m.track(filepath.Join(l.Staging(), trash), true)
	defer m.track(filepath.Join(l.Staging(), trash), false)
	if err := beneath.Rename(l.root, l.hp("releases", id), l.hp(".staging", trash, id)); err != nil {
		stagingDir.Remove(trash)
		return err
	}
	m.step("discard:moved")
	if err := stagingDir.RemoveAll(trash); err != nil {
		return err
	}
	beneath.Remove(l.root, l.hp(".staging"))
	return nil
}

// progress counts downloaded bytes and logs progress every ~10% or 5 s,
// whichever comes later (every 30 s when the size is unknown).
type progress struct {
	r           io.Reader
	n, total    int64
	start, last time.Time
	lastN       int64
	now         func() time.Time
	log         *slog.Logger
	url         string
	err         error // the first read error of the store
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if err != nil && err != io.EOF && p.err == nil {
		p.err = err
	}
	if n > 0 {
		p.report()
	}
	return n, err
}

func (p *progress) report() {
	t := p.now()
	since := t.Sub(p.last)
	if p.total > 0 {
		if since < 5*time.Second || p.n-p.lastN < p.total/10 {
			return
		}
	} else if since < 30*time.Second {
		return
	}
	args := []any{nodeagent.LogKeyURL, p.url, nodeagent.LogKeyBytes, p.n, nodeagent.LogKeyRate, int64(float64(p.n-p.lastN) / since.Seconds())}
	if p.total > 0 {
		args = append(args, nodeagent.LogKeyTotal, p.total, nodeagent.LogKeyPercent, p.n*100/p.total)
	}
	p.log.Info("release download progress", args...)
	p.last, p.lastN = t, p.n
}

func (p *progress) done() {
	d := p.now().Sub(p.start)
	rate := int64(0)
	if d > 0 {
		rate = int64(float64(p.n) / d.Seconds())
	}
	p.log.Info("release downloaded and verified", nodeagent.LogKeyURL, p.url, nodeagent.LogKeyBytes, p.n, nodeagent.LogKeyDuration, float64(d.Microseconds())/1000, nodeagent.LogKeyRate, rate)
}
