// Package release installs and switches a product's code releases under
// <root>/var/www/<product>:
//
//	releases/<id>/               one unpacked, verified release (root-owned, world-readable)
//	releases/<id>/.nodeagent-release.json   marker, written last: the release is complete
//	current -> releases/<id>     the active release, switched by an atomic rename
//	shared/                      kept across releases (uploads, sessions, logs), owned by the web user
//	.staging/                    downloads in progress; anything left here is debris of a crash
//
// An archive (tar.gz only) is downloaded once from a nodeagent.ReleaseStore,
// hashed while it streams and unpacked in the same pass into a staging
// directory, then moved into releases/ only when its sha256 matched and every
// entry passed the safety rules (see ArchiveError). A refused archive leaves
// nothing behind outside its staging directory, and the staging directory is
// removed.
//
// Links inside an archive may point inside the release or into the product's
// shared/ directory (storage -> ../../shared/storage is the common case);
// nothing is ever written through a link.
//
// Every path of a product directory is opened, created, renamed, removed and
// chowned through package beneath: resolved under the root without following
// a symlink, so a symlink planted at var/www, var/www/<product>, releases/ or
// .staging is refused with an error naming it and nothing outside the root
// changes. The two links the package deals with are current, which it reads
// and replaces as a link, and an operator's shared -> volume, left alone.
//
// Every step is crash safe: a process killed at any point leaves current
// pointing at a complete release, and the next Install, Activate or Prune
// cleans up the debris. The package assumes one apply at a time per host
// (the agent's state-dir lock); in-process it also keeps Prune away from a
// release being installed.
package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// Defaults for a zero Manager field.
const (
	DefaultKeep     = 3
	DefaultMaxBytes = 2 << 30
	DefaultMaxFiles = 200000
	// DefaultMaxInodes bounds what extraction creates: files, links and
	// directories, those an entry's path makes implicitly included.
	DefaultMaxInodes = 200000
	// DefaultMaxDepth bounds the directories in an entry's path.
	DefaultMaxDepth = 64
	// DefaultMaxPathLen bounds an entry's path and a symlink's target, in
	// bytes.
	DefaultMaxPathLen = 1024
)

// MarkerName is the file written last into a release directory; its presence
// with the right sha256 is what makes a release "installed".
const MarkerName = ".nodeagent-release.json"

// Manager installs, activates and prunes releases.
type Manager struct {
	Root     string                 // host root (--root); product dirs are <Root>/var/www/<product>
	Store    nodeagent.ReleaseStore // opens release archives by URL
	Keep     int                    // releases kept per product (default 3), never the active one
	MaxBytes int64                  // unpacked size limit (default 2 GiB)
	MaxFiles int                    // entry count limit (default 200000)
	// MaxInodes, MaxDepth and MaxPathLen bound what an archive creates
	// (defaults DefaultMaxInodes, DefaultMaxDepth, DefaultMaxPathLen).
	MaxInodes  int
	MaxDepth   int
	MaxPathLen int
	// Owner and Group own shared/ (the web user); "" leaves root. Release
	// files stay root-owned and are never writable by group or others.
	Owner, Group string
	Logger       *slog.Logger
	Now          func() time.Time

	// afterStep, when set, is called after each crash-relevant step (tests
	// kill the process there).
	afterStep func(step string)

	mu         sync.Mutex
	installing map[string]int // "<product>/<id>" being installed by this process
}

// Marker is the content of a release's marker file.
type Marker struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	SHA256      string    `json:"sha256"`
	InstalledAt time.Time `json:"installed_at"`
	Bytes       int64     `json:"bytes"`
	Files       int       `json:"files"`
}

// Layout names the paths of one product directory.
type Layout struct {
	Base string // the product directory, joined onto the root

	root string // the manager's root
	host string // the product directory as a host path: /var/www/<product>
}

// Layout returns the layout of product under m.Root.
func (m *Manager) Layout(product string) Layout {
	host := path.Join("/var/www", product)
	return Layout{Base: beneath.Join(m.root(), host), root: m.root(), host: host}
}

// hp is the host path of elem inside the product directory, for the
// confined calls of package beneath.
func (l Layout) hp(elem ...string) string {
	return path.Join(append([]string{l.host}, elem...)...)
}

// Releases is the directory holding every unpacked release.
func (l Layout) Releases() string { return filepath.Join(l.Base, "releases") }

// Release is the directory of release id.
func (l Layout) Release(id string) string { return filepath.Join(l.Base, "releases", id) }

// Current is the symlink to the active release.
func (l Layout) Current() string { return filepath.Join(l.Base, "current") }

// Shared is the directory kept across releases.
func (l Layout) Shared() string { return filepath.Join(l.Base, "shared") }

// Staging holds downloads in progress.
func (l Layout) Staging() string { return filepath.Join(l.Base, ".staging") }

// currentTmp is the symlink built before it is renamed over current.
func (l Layout) currentTmp() string { return filepath.Join(l.Base, "current.tmp") }

// Marker is the marker file of release id.
func (l Layout) Marker(id string) string { return filepath.Join(l.Release(id), MarkerName) }

func (m *Manager) keep() int {
	if m.Keep > 0 {
		return m.Keep
	}
	return DefaultKeep
}

func (m *Manager) maxBytes() int64 {
	if m.MaxBytes > 0 {
		return m.MaxBytes
	}
	return DefaultMaxBytes
}

func (m *Manager) maxFiles() int {
	if m.MaxFiles > 0 {
		return m.MaxFiles
	}
	return DefaultMaxFiles
}

func (m *Manager) maxInodes() int {
	if m.MaxInodes > 0 {
		return m.MaxInodes
	}
	return DefaultMaxInodes
}

func (m *Manager) maxDepth() int {
	if m.MaxDepth > 0 {
		return m.MaxDepth
	}
	return DefaultMaxDepth
}

func (m *Manager) maxPathLen() int {
	if m.MaxPathLen > 0 {
		return m.MaxPathLen
	}
	return DefaultMaxPathLen
}

func (m *Manager) logger() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) step(name string) {
	if m.afterStep != nil {
		m.afterStep(name)
	}
}

// checkName refuses product names and release ids that are not a single
// plain path element.
func checkName(kind, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("invalid %s %q: must be a plain name without '/' or a leading '.'", kind, name)
	}
	return nil
}

// Active returns the release id current points at, "" when there is no
// current link.
func (m *Manager) Active(product string) (string, error) {
	if err := checkName("product", product); err != nil {
		return "", fmt.Errorf("release: active: %w", err)
	}
	l := m.Layout(product)
	target, err := beneath.Readlink(l.root, l.hp("current"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("release: active %s: %w", product, err)
	}
	dir, id := filepath.Split(filepath.Clean(target))
	if filepath.Clean(dir) != "releases" && filepath.Clean(dir) != l.Releases() {
		return "", fmt.Errorf("release: active %s: %s points at %s, not at a directory in %s", product, l.Current(), target, l.Releases())
	}
	return id, nil
}

// Installed reports whether release r of product is unpacked and verified:
// its marker, written last, records r's sha256.
func (m *Manager) Installed(product string, r nodeagent.Release) bool {
	if checkName("product", product) != nil || checkName("release id", r.ID) != nil {
		return false
	}
	mk, err := readMarker(m.Layout(product), r.ID)
	return err == nil && mk.ID == r.ID && strings.EqualFold(mk.SHA256, r.SHA256)
}

// readMarker reads the marker of release id, never through a symlink.
func readMarker(l Layout, id string) (Marker, error) {
	var mk Marker
	b, err := beneath.ReadFile(l.root, l.hp("releases", id, MarkerName))
	if err != nil {
		return mk, err
	}
	if err := json.Unmarshal(b, &mk); err != nil {
		return mk, fmt.Errorf("marker %s: %w", l.Marker(id), err)
	}
	return mk, nil
}
