package metadata

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nodeagent/nodeagent"
)

// HostFacts are what the host itself says about the machine.
type HostFacts struct {
	MemoryBytes int64 // MemTotal from the running host's /proc/meminfo
	// MemorySource says where MemoryBytes came from, for the log.
	MemorySource string
	OSFamily     string // nodeagent.OSDebian or nodeagent.OSRHEL
	OSID         string // ID= from /etc/os-release
	PHPVersion   string // highest /etc/php/X.Y/fpm on Debian; "" on RHEL or without PHP-FPM
}

// Host paths, joined onto the root, except MeminfoPath and BootIDPath,
// which are read beneath the running host's procfs (see ReadHostFacts).
const (
	MeminfoPath      = "/proc/meminfo"
	BootIDPath       = "/proc/sys/kernel/random/boot_id"
	OSReleasePath    = "/etc/os-release"
	OSReleaseUsrPath = "/usr/lib/os-release" // os-release(5) fallback
	PHPDir           = "/etc/php"
)

// osFamilies maps an os-release ID (or an ID_LIKE entry) to a family.
var osFamilies = map[string]string{
	"debian":    nodeagent.OSDebian,
	"ubuntu":    nodeagent.OSDebian,
	"rhel":      nodeagent.OSRHEL,
	"centos":    nodeagent.OSRHEL,
	"fedora":    nodeagent.OSRHEL,
	"amzn":      nodeagent.OSRHEL,
	"rocky":     nodeagent.OSRHEL,
	"almalinux": nodeagent.OSRHEL,
}

// ErrUnsupportedOS is returned (wrapped) when os-release names no known family.
var ErrUnsupportedOS = errors.New("unsupported OS: want ID or ID_LIKE of debian, ubuntu (debian family) or rhel, centos, fedora, amzn, rocky, almalinux (rhel family)")

// DefaultProc is where the running host's procfs is mounted.
const DefaultProc = "/proc"

// ReadHostFacts reads the OS family and PHP version from files under root,
// and the memory from the running host's procfs at proc ("" means
// DefaultProc). Memory is a fact of the machine that runs, never of the
// tree under root: an image mounted at /mnt/image has no /proc, and the
// instance that boots the image has the memory of the host that builds it
// only when both are of one instance type.
func ReadHostFacts(root, proc string) (HostFacts, error) {
	if root == "" {
		root = "/"
	}
	if proc == "" {
		proc = DefaultProc
	}
	var f HostFacts
	var err error
	meminfo := filepath.Join(proc, "meminfo")
	if f.MemoryBytes, err = readMemTotal(meminfo); err != nil {
		return HostFacts{}, err
	}
	f.MemorySource = meminfo + " of the running host"
	if f.OSID, f.OSFamily, err = readOSRelease(root); err != nil {
		return HostFacts{}, err
	}
	if f.OSFamily == nodeagent.OSDebian {
		if f.PHPVersion, err = highestPHP(filepath.Join(root, PHPDir)); err != nil {
			return HostFacts{}, err
		}
	}
	return f, nil
}

func readMemTotal(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("metadata: read memory size: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("metadata: %s: MemTotal line %q: %w", path, strings.TrimSpace(line), errMemTotal)
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kb <= 0 {
			return 0, fmt.Errorf("metadata: %s: MemTotal line %q: %w", path, strings.TrimSpace(line), errMemTotal)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("metadata: %s: %w", path, errNoMemTotal)
}

var (
	errMemTotal   = errors.New("want \"MemTotal: <n> kB\"")
	errNoMemTotal = errors.New("no MemTotal line")
)

// readOSRelease returns ID and the family from <root>/etc/os-release, or
// <root>/usr/lib/os-release when the former does not exist.
func readOSRelease(root string) (id, family string, err error) {
	path := filepath.Join(root, OSReleasePath)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if b2, err2 := os.ReadFile(filepath.Join(root, OSReleaseUsrPath)); err2 == nil {
			path, b, err = filepath.Join(root, OSReleaseUsrPath), b2, nil
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("metadata: read OS family: %w", err)
	}
	vars := parseOSRelease(b)
	id = vars["ID"]
	candidates := append([]string{id}, strings.Fields(vars["ID_LIKE"])...)
	for _, c := range candidates {
		if fam, ok := osFamilies[c]; ok {
			return id, fam, nil
		}
	}
	return "", "", fmt.Errorf("metadata: %s: ID=%q ID_LIKE=%q: %w", path, id, vars["ID_LIKE"], ErrUnsupportedOS)
}

// parseOSRelease parses os-release(5): KEY=value lines, values optionally
// quoted with " or ', comments and blank lines ignored.
func parseOSRelease(b []byte) map[string]string {
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
			v = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`").Replace(v)
		}
		vars[strings.TrimSpace(k)] = strings.ToLower(v)
	}
	return vars
}

// highestPHP returns the highest X.Y with dir/X.Y/fpm present, comparing
// numerically (8.10 > 8.9); "" when there is none.
func highestPHP(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("metadata: find PHP version: %w", err)
	}
	best, bestMajor, bestMinor := "", -1, -1
	for _, e := range entries {
		major, minor, ok := parsePHPVersion(e.Name())
		if !ok {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, e.Name(), "fpm"))
		if err != nil || !fi.IsDir() {
			continue
		}
		if major > bestMajor || (major == bestMajor && minor > bestMinor) {
			best, bestMajor, bestMinor = e.Name(), major, minor
		}
	}
	return best, nil
}

func parsePHPVersion(name string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(name, ".")
	if !found {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(a)
	minor, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || major < 0 || minor < 0 || strings.HasPrefix(a, "+") || strings.HasPrefix(b, "+") {
		return 0, 0, false
	}
	return major, minor, true
}

// ReadBootID reads the kernel's boot id (a random UUID the kernel draws at
// every boot) beneath the running host's procfs at proc ("" means
// DefaultProc): never under --root, because the boot that matters is the
// running one.
func ReadBootID(proc string) (string, error) {
	if proc == "" {
		proc = DefaultProc
	}
	path := filepath.Join(proc, "sys/kernel/random/boot_id")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("metadata: read the boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("metadata: read the boot id: %s is empty", path)
	}
	return id, nil
}
