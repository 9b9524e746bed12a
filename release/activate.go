package release

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// Activate makes release id the active release of product: shared/ is
// created if missing, then a symlink current.tmp -> releases/<id> is renamed
// over current (atomic) and the product directory is fsynced. It returns the
// release active before ("" for none); Activate(previous) is the rollback.
func (m *Manager) Activate(product, id string) (string, error) {
	prev, err := m.activate(product, id)
	if err != nil {
		return prev, fmt.Errorf("release: activate %s %s: %w", product, id, err)
	}
	return prev, nil
}

func (m *Manager) activate(product, id string) (string, error) {
	if err := checkName("product", product); err != nil {
		return "", err
	}
	if err := checkName("release id", id); err != nil {
		return "", err
	}
	l := m.Layout(product)
	if _, err := readMarker(l, id); err != nil {
		return "", fmt.Errorf("release is not installed (no valid marker): %w", err)
	}
	prev, err := m.Active(product)
	if err != nil {
		return "", fmt.Errorf("%w (move it away: current must be a symlink the agent owns)", err)
	}
	if err := m.ensureShared(l); err != nil {
		return prev, err
	}
	m.step("activate:shared")
	// current.tmp and current are links the agent makes: they are created,
	// renamed and replaced as links, through the product directory resolved
	// without following any symlink.
	base, err := beneath.OpenDir(l.root, l.host)
	if err != nil {
		return prev, err
	}
	defer base.Close()
	if err := base.Remove("current.tmp"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return prev, err
	}
	if prev == id {
		return prev, nil
	}
	if err := unix.Symlinkat(filepath.Join("releases", id), base.Fd(), "current.tmp"); err != nil {
		return prev, &fs.PathError{Op: "symlink", Path: l.currentTmp(), Err: err}
	}
	m.step("activate:link")
	if err := base.Rename("current.tmp", "current"); err != nil {
		base.Remove("current.tmp")
		return prev, err
	}
	m.step("activate:renamed")
	if err := base.Sync(); err != nil {
		return prev, err
	}
	m.logger().Info("release activated", nodeagent.LogKeyProduct, product, nodeagent.LogKeyRelease, id, nodeagent.LogKeyPrevious, prev)
	return prev, nil
}

// ensureShared creates shared/ (0755) and gives it to Owner:Group. A shared
// that is a symlink (to a network volume, say) is the operator's and left
// alone.
func (m *Manager) ensureShared(l Layout) error {
	base, err := beneath.OpenDir(l.root, l.host)
	if err != nil {
		return err
	}
	defer base.Close()
	fi, err := base.Lstat("shared")
	if errors.Is(err, fs.ErrNotExist) {
		if err := base.Mkdir("shared", 0o755); err != nil {
			return err
		}
		fi, err = base.Lstat("shared")
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 || (m.Owner == "" && m.Group == "") {
		return nil
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", l.Shared())
	}
	uid, gid := -1, -1
	if m.Owner != "" {
		if uid, err = lookupID(m.root(), "passwd", m.Owner); err != nil {
			return err
		}
	}
	if m.Group != "" {
		if gid, err = lookupID(m.root(), "group", m.Group); err != nil {
			return err
		}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && (uid == -1 || int(st.Uid) == uid) && (gid == -1 || int(st.Gid) == gid) {
		return nil
	}
	if err := unix.Fchownat(base.Fd(), "shared", uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s to %s:%s: %w", l.Shared(), m.Owner, m.Group, err)
	}
	return nil
}

func (m *Manager) root() string {
	if m.Root == "" {
		return "/"
	}
	return m.Root
}

// lookupID resolves a user (db "passwd") or group (db "group") name to its
// numeric id from <root>/etc/<db>, so an image build under --root sees the
// image's users. A number is taken as is.
func lookupID(root, db, name string) (int, error) {
	if id, err := strconv.Atoi(name); err == nil && id >= 0 {
		return id, nil
	}
	path := filepath.Join(root, "etc", db)
	f, err := os.Open(path)
	if err != nil {
		return -1, fmt.Errorf("look up %s %q: %w", db, name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 3 && fields[0] == name {
			id, err := strconv.Atoi(fields[2])
			if err != nil {
				return -1, fmt.Errorf("look up %s %q in %s: bad id %q: %w", db, name, path, fields[2], err)
			}
			return id, nil
		}
	}
	if err := sc.Err(); err != nil {
		return -1, fmt.Errorf("look up %s %q: %w", db, name, err)
	}
	return -1, fmt.Errorf("look up %s %q: not found in %s", db, name, path)
}

// Prune removes old releases of product: it keeps the newest Keep by install
// time plus the active one, never removes the active release or one being
// installed, and clears the debris of interrupted runs. It returns the ids
// removed.
func (m *Manager) Prune(product string) ([]string, error) {
	removed, err := m.prune(product)
	if err != nil {
		return removed, fmt.Errorf("release: prune %s: %w", product, err)
	}
	return removed, nil
}

func (m *Manager) prune(product string) ([]string, error) {
	if err := checkName("product", product); err != nil {
		return nil, err
	}
	l := m.Layout(product)
	// Unsure which release is in use: remove nothing.
	active, err := m.Active(product)
	if err != nil {
		return nil, err
	}
	if err := m.cleanDebris(l); err != nil {
		return nil, err
	}
	beneath.Remove(l.root, l.hp(".staging")) // only when empty
	names, err := beneath.ReadDirNames(l.root, l.hp("releases"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	type installed struct {
		id string
		at time.Time
	}
	var rels []installed
	for _, name := range names {
		at := time.Time{} // no marker: not ours to keep, oldest
		if mk, err := readMarker(l, name); err == nil {
			at = mk.InstalledAt
		}
		rels = append(rels, installed{id: name, at: at})
	}
	sort.Slice(rels, func(i, j int) bool {
		if !rels[i].at.Equal(rels[j].at) {
			return rels[i].at.After(rels[j].at)
		}
		return rels[i].id > rels[j].id
	})
	var removed []string
	for i, r := range rels {
		if i < m.keep() || r.id == active || m.busy(product+"/"+r.id) {
			continue
		}
		if err := m.discard(l, r.id); err != nil {
			return removed, err
		}
		removed = append(removed, r.id)
		m.logger().Info("release removed", nodeagent.LogKeyProduct, product, nodeagent.LogKeyRelease, r.id)
	}
	return removed, nil
}
