package hostfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// userDB is one of the host's colon-separated databases: /etc/passwd
// (name:x:uid:gid:...) or /etc/group (name:x:gid:members). Both keep the
// name in field 0 and the id in field 2.
type userDB struct {
	path string // host path: "/etc/passwd" or "/etc/group"
	kind string // "user" or "group", for messages
}

var (
	passwdDB = userDB{path: "/etc/passwd", kind: "user"}
	groupDB  = userDB{path: "/etc/group", kind: "group"}
)

// entries reads the database under f's root. A missing file reads as
// empty: a bare tree (a test root, an image without /etc yet) still knows
// root as 0 through the fallbacks below.
//
// A parsed database is kept until the file changes (inode, size or mtime),
// so a plan of hundreds of files reads /etc/passwd once, not per file.
func (db userDB) entries(f FS) (map[string]uint32, map[uint32]string, error) {
	full := f.Path(db.path)
	var key parsedKey
	if fi, err := os.Stat(full); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			key = parsedKey{path: full, ino: st.Ino, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
			parsedMu.Lock()
			p, hit := parsed[full]
			parsedMu.Unlock()
			if hit && p.key == key {
				return p.byName, p.byID, nil
			}
		}
	}
	byName, byID, err := db.parse(full)
	if err == nil && key.path != "" {
		parsedMu.Lock()
		parsed[full] = parsedDB{key: key, byName: byName, byID: byID}
		parsedMu.Unlock()
	}
	return byName, byID, err
}

// parsedKey identifies one version of a user database file.
type parsedKey struct {
	path  string
	ino   uint64
	size  int64
	mtime int64
}

type parsedDB struct {
	key    parsedKey
	byName map[string]uint32
	byID   map[uint32]string
}

var (
	parsedMu sync.Mutex
	parsed   = map[string]parsedDB{}
)

func (db userDB) parse(full string) (map[string]uint32, map[uint32]string, error) {
	data, err := readRegular(full, true)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("read %s: %w", db.path, err)
	}
	byName := map[string]uint32{}
	byID := map[uint32]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) < 3 || fields[0] == "" {
			continue
		}
		id, err := strconv.ParseUint(fields[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := byName[fields[0]]; !dup {
			byName[fields[0]] = uint32(id)
		}
		if _, dup := byID[uint32(id)]; !dup {
			byID[uint32(id)] = fields[0]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", db.path, err)
	}
	return byName, byID, nil
}

// id resolves a name to its id in the host's database. "" and "root"
// (when the database does not list it) are 0; a name the database does not
// know that is all digits is taken as a numeric id.
func (db userDB) id(f FS, name string) (uint32, error) {
	if name == "" {
		return 0, nil
	}
	byName, _, err := db.entries(f)
	if err != nil {
		return 0, err
	}
	if id, ok := byName[name]; ok {
		return id, nil
	}
	if name == "root" {
		return 0, nil
	}
	if id, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(id), nil
	}
	return 0, fmt.Errorf("%s %q not in %s: %w", db.kind, name, db.path, ErrUnknownOwner)
}

// nameOf resolves an id to its name in a database's byID map; an id the
// database does not list is "root" for 0 and the number otherwise.
func nameOf(byID map[uint32]string, id uint32) string {
	if name, ok := byID[id]; ok {
		return name
	}
	if id == 0 {
		return "root"
	}
	return strconv.FormatUint(uint64(id), 10)
}

// Owner returns the names of the user and group owning the host file p
// (not following a final symlink), from the host's passwd and group under
// Root, for change detection. An id the host does not name comes back as
// its number.
func (f FS) Owner(p string) (user, group string, err error) { return f.Reader().Owner(p) }
