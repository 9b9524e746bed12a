package harness

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// Trees and files NodeRoot copies from this machine.
var (
	rootTrees = []string{"/etc/apache2", "/etc/php"}
	rootFiles = []string{
		"/etc/memcached.conf", "/etc/hosts", "/etc/os-release", "/etc/passwd", "/etc/group",
		"/proc/meminfo",
	}
	rootDirs = []string{"run/lock", "run/php", "run/memcached", "var/log/apache2", "var/lib", "srv", "tmp"}
)

// NodeRoot makes a node root: copies of this machine's /etc/apache2,
// /etc/php, /etc/memcached.conf, /etc/hosts, /etc/os-release, /etc/passwd,
// /etc/group and /proc/meminfo, patched so the real services run inside it:
//
//   - apache2 envvars: run, lock, log dirs and pid file under <root>/run and
//     <root>/var/log (the default site is left as it is);
//   - php-fpm.conf of every PHP version: pid, error_log and the pool.d
//     include under the root; the package's default pool www.conf removed
//     (its socket would collide with the system's);
//   - memcached.conf: logfile and -P pid file under the root.
//
// The root is a short path (unix socket paths must stay under 108 bytes)
// readable by www-data, the services' user. Its cleanup stops every service
// started under it (StopServices) and removes it. It also makes the test
// process the reaper of the daemons it starts (see startReaper).
func NodeRoot(t testing.TB) string {
	t.Helper()
	startReaper()
	root, err := os.MkdirTemp("", "nodeagent-root-")
	if err != nil {
		t.Fatalf("harness: node root: %v", err)
	}
	t.Cleanup(func() {
		if err := StopServices(root); err != nil {
			t.Errorf("harness: %v", err)
		}
		if err := os.RemoveAll(root); err != nil {
			t.Errorf("harness: remove node root: %v", err)
		}
	})
	if err := makeNodeRoot(root); err != nil {
		t.Fatalf("harness: node root: %v", err)
	}
	return root
}

func makeNodeRoot(root string) error {
	if err := os.Chmod(root, 0o755); err != nil {
		return err
	}
	for _, d := range rootDirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for _, tree := range rootTrees {
		if err := copyTree(tree, filepath.Join(root, tree), root); err != nil {
			return err
		}
	}
	for _, f := range rootFiles {
		if err := copyFile(f, filepath.Join(root, f)); err != nil {
			return err
		}
	}
	if err := patchApache(root); err != nil {
		return err
	}
	if err := patchPHP(root); err != nil {
		return err
	}
	return patchMemcached(root)
}

// copyTree copies src to dst keeping modes and symlinks; an absolute link
// into one of the copied trees is re-pointed at the copy.
func copyTree(src, dst, root string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			for _, tree := range rootTrees {
				if filepath.IsAbs(link) && (link == tree || strings.HasPrefix(link, tree+"/")) {
					link = filepath.Join(root, link)
				}
			}
			return os.Symlink(link, target)
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		default:
			return copyFile(path, target)
		}
	})
}

// copyFile copies the content of src (following links) to dst.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, info.Mode().Perm()|0o444)
}

// patchFile rewrites the lines of path matching each pattern (the whole
// line) to the given replacement; every pattern must match at least once.
func patchFile(path string, edits map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	keys := make([]string, 0, len(edits))
	for k := range edits {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, pattern := range keys {
		re := regexp.MustCompile(`(?m)^` + pattern + `$`)
		if !re.MatchString(s) {
			return fmt.Errorf("patch %s: no line matches %q", path, pattern)
		}
		repl := edits[pattern]
		s = re.ReplaceAllLiteralString(s, repl)
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// apacheEnv is where NodeRoot puts Apache's runtime paths.
func apacheEnv(root string) map[string]string {
	return map[string]string{
		"APACHE_PID_FILE": filepath.Join(root, "run/apache2/apache2.pid"),
		"APACHE_RUN_DIR":  filepath.Join(root, "run/apache2"),
		"APACHE_LOCK_DIR": filepath.Join(root, "run/lock/apache2"),
		"APACHE_LOG_DIR":  filepath.Join(root, "var/log/apache2"),
	}
}

func patchApache(root string) error {
	edits := map[string]string{}
	for k, v := range apacheEnv(root) {
		edits[`export `+k+`=.*`] = `export ` + k + `=` + v
	}
	return patchFile(filepath.Join(root, "etc/apache2/envvars"), edits)
}

// phpVersions lists the PHP versions with an FPM config under root, oldest
// first ("8.2").
func phpVersions(root string) []string {
	confs, _ := filepath.Glob(filepath.Join(root, "etc/php/*/fpm/php-fpm.conf"))
	var vs []string
	for _, c := range confs {
		vs = append(vs, filepath.Base(filepath.Dir(filepath.Dir(c))))
	}
	sort.Strings(vs)
	return vs
}

func phpFPMPidfile(root, ver string) string {
	return filepath.Join(root, "run/php/php"+ver+"-fpm.pid")
}

func patchPHP(root string) error {
	vers := phpVersions(root)
	if len(vers) == 0 {
		return fmt.Errorf("no etc/php/*/fpm/php-fpm.conf (run `make deps`)")
	}
	for _, v := range vers {
		fpm := filepath.Join(root, "etc/php", v, "fpm")
		err := patchFile(filepath.Join(fpm, "php-fpm.conf"), map[string]string{
			`pid = .*`:       "pid = " + phpFPMPidfile(root, v),
			`error_log = .*`: "error_log = " + filepath.Join(root, "var/log/php"+v+"-fpm.log"),
			`include=.*`:     "include=" + filepath.Join(fpm, "pool.d/*.conf"),
		})
		if err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(fpm, "pool.d/www.conf")); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// memcachedPidfile is the pid file ServiceCommands has start-memcached
// write.
func memcachedPidfile(root string) string { return filepath.Join(root, "run/memcached.pid") }

func patchMemcached(root string) error {
	return patchFile(filepath.Join(root, "etc/memcached.conf"), map[string]string{
		`logfile .*`: "logfile " + filepath.Join(root, "var/log/memcached.log"),
		`-P .*`:      "-P " + filepath.Join(root, "run/memcached/memcached.pid"),
	})
}
