//go:build integration

package harness_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/test/harness"
)

// command and unit mirror the JSON shape ServiceCommands promises (the
// service package's ExecConfig).
type command struct {
	Argv   []string `json:"argv"`
	Env    []string `json:"env"`
	Signal string   `json:"signal"`
}

type unit struct {
	Pidfile string   `json:"pidfile"`
	Start   *command `json:"start"`
	Stop    *command `json:"stop"`
	Reload  *command `json:"reload"`
	Restart *command `json:"restart"`
	Status  *command `json:"status"`
}

func decodeCommands(t *testing.T, root string) map[string]unit {
	t.Helper()
	b, err := json.Marshal(harness.ServiceCommands(root))
	if err != nil {
		t.Fatalf("marshal service commands: %v", err)
	}
	units := map[string]unit{}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&units); err != nil {
		t.Fatalf("decode service commands %s: %v", b, err)
	}
	return units
}

func TestNodeRootIsPatchedIntoTheRoot(t *testing.T) {
	root := harness.NodeRoot(t)
	tests := []struct {
		file    string
		want    []string
		notWant []string
	}{
		{"etc/apache2/envvars", []string{
			"export APACHE_PID_FILE=" + root + "/run/apache2/apache2.pid",
			"export APACHE_RUN_DIR=" + root + "/run/apache2",
			"export APACHE_LOCK_DIR=" + root + "/run/lock/apache2",
			"export APACHE_LOG_DIR=" + root + "/var/log/apache2",
		}, []string{"=/var/run/apache2", "=/var/log/apache2"}},
		{"etc/php/8.2/fpm/php-fpm.conf", []string{
			"pid = " + root + "/run/php/php8.2-fpm.pid",
			"error_log = " + root + "/var/log/php8.2-fpm.log",
			"include=" + root + "/etc/php/8.2/fpm/pool.d/*.conf",
		}, []string{"\npid = /run", "include=/etc"}},
		{"etc/memcached.conf", []string{
			"logfile " + root + "/var/log/memcached.log",
			"-P " + root + "/run/memcached/memcached.pid",
		}, []string{"\nlogfile /var"}},
		{"etc/os-release", []string{"ID="}, nil},
		{"etc/passwd", []string{"www-data:"}, nil},
		{"etc/group", []string{"www-data:"}, nil},
		{"etc/hosts", []string{"localhost"}, nil},
		{"proc/meminfo", []string{"MemTotal:"}, nil},
		{"etc/apache2/sites-enabled/000-default.conf", []string{"<VirtualHost *:80>"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(root, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("%s lacks %q", tt.file, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(string(b), w) {
					t.Errorf("%s still has %q", tt.file, w)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(root, "etc/php/8.2/fpm/pool.d/www.conf")); !os.IsNotExist(err) {
		t.Errorf("default pool www.conf still there (err %v)", err)
	}
	// Absolute links into a copied tree point at the copy.
	links, _ := filepath.Glob(filepath.Join(root, "etc/php/8.2/fpm/conf.d/*.ini"))
	if len(links) == 0 {
		t.Fatal("no conf.d links copied")
	}
	for _, l := range links {
		if dest, err := os.Readlink(l); err == nil && !strings.HasPrefix(dest, root+"/") {
			t.Errorf("%s -> %s, want a target inside the root", l, dest)
		}
	}
	units := decodeCommands(t, root)
	for _, name := range []string{"apache2", "php8.2-fpm", "memcached"} {
		u, ok := units[name]
		if !ok {
			t.Errorf("no commands for %s", name)
			continue
		}
		if !strings.HasPrefix(u.Pidfile, root+"/") {
			t.Errorf("%s pidfile %q not under the root", name, u.Pidfile)
		}
		if u.Start == nil || len(u.Start.Argv) == 0 {
			t.Errorf("%s has no start argv", name)
		}
	}
}

// services is a minimal stand-in for the exec driver: it runs the
// configured commands the way the driver is specified to.
type services struct {
	t     *testing.T
	units map[string]unit
}

func (s services) pid(name string) (int, bool) {
	b, err := os.ReadFile(s.units[name].Pidfile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && harness.Alive(pid)
}

func (s services) run(name, action string, c *command) {
	s.t.Helper()
	if c == nil {
		s.t.Fatalf("%s: no %s command", name, action)
	}
	if c.Signal != "" {
		pid, ok := s.pid(name)
		if !ok {
			s.t.Fatalf("%s %s: no live pid", name, action)
		}
		sig := map[string]syscall.Signal{"TERM": syscall.SIGTERM, "USR2": syscall.SIGUSR2, "HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1}[c.Signal]
		if sig == 0 {
			s.t.Fatalf("%s %s: unexpected signal %q", name, action, c.Signal)
		}
		if err := syscall.Kill(pid, sig); err != nil {
			s.t.Fatalf("%s %s: %v", name, action, err)
		}
		if action == "stop" {
			waitFor(s.t, name+" to exit", func() bool { return !harness.Alive(pid) })
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("%s %s: %v: %v\n%s", name, action, c.Argv, err, out)
	}
}

func (s services) start(name string) int {
	s.t.Helper()
	s.run(name, "start", s.units[name].Start)
	var pid int
	waitFor(s.t, name+" pidfile", func() bool {
		p, ok := s.pid(name)
		pid = p
		return ok
	})
	return pid
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// familyOf lists pid and every live process below it.
func familyOf(pid int) []int {
	out := []int{pid}
	entries, _ := os.ReadDir("/proc")
	parents := map[int]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 1 {
			parents[p], _ = strconv.Atoi(fields[1])
		}
	}
	for p, pp := range parents {
		for depth := 0; pp > 1 && depth < 10; depth++ {
			if pp == pid {
				out = append(out, p)
				break
			}
			pp = parents[pp]
		}
	}
	return out
}

func TestServiceCommandsRunRealServices(t *testing.T) {
	root := harness.NodeRoot(t)
	httpPort, mcPort := harness.FreePort(t), harness.FreePort(t)
	sock := root + "/run/php/harness.sock"
	docroot := root + "/srv/www"

	writeFile(t, root+"/etc/apache2/ports.conf", fmt.Sprintf("Listen 127.0.0.1:%d\n", httpPort))
	for _, m := range []string{"proxy.load", "proxy_fcgi.load"} {
		if err := os.Symlink("../mods-available/"+m, root+"/etc/apache2/mods-enabled/"+m); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	writeFile(t, root+"/etc/apache2/sites-enabled/harness.conf", fmt.Sprintf(`<VirtualHost 127.0.0.1:%[1]d>
	ServerName harness.test
	DocumentRoot %[2]s
	<Directory %[2]s>
		Require all granted
	</Directory>
	<FilesMatch "\.php$">
		SetHandler "proxy:unix:%[3]s|fcgi://localhost"
	</FilesMatch>
</VirtualHost>
`, httpPort, docroot, sock))
	writeFile(t, root+"/etc/php/8.2/fpm/pool.d/harness.conf", fmt.Sprintf(`[harness]
user = www-data
group = www-data
listen = %s
listen.owner = www-data
listen.group = www-data
pm = static
pm.max_children = 2
`, sock))
	writeFile(t, docroot+"/index.php", fmt.Sprintf(`<?php
$m = new Memcached();
$m->addServer('127.0.0.1', %d);
$v = bin2hex(random_bytes(4));
if (!$m->set('harness', $v)) { http_response_code(500); echo 'set failed: ', $m->getResultMessage(); exit; }
echo 'php-ok pid=', getmypid(), ' memcached=', $m->get('harness') === $v ? 'ok' : 'mismatch';
`, mcPort))
	conf, err := os.ReadFile(root + "/etc/memcached.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf = []byte(strings.Replace(string(conf), "\n-p 11211\n", fmt.Sprintf("\n-p %d\n", mcPort), 1))
	if !strings.Contains(string(conf), fmt.Sprintf("-p %d", mcPort)) {
		t.Fatal("memcached.conf has no -p 11211 line to replace")
	}
	writeFile(t, root+"/etc/memcached.conf", string(conf))

	s := services{t: t, units: decodeCommands(t, root)}
	pids := map[string]int{}
	for _, name := range []string{"memcached", "php8.2-fpm", "apache2"} {
		pids[name] = s.start(name)
	}

	url := fmt.Sprintf("http://127.0.0.1:%d/index.php", httpPort)
	get := func(what string) string {
		t.Helper()
		var body string
		var last error
		waitFor(t, what, func() bool {
			resp, err := http.Get(url)
			if err != nil {
				last = err
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			last = fmt.Errorf("status %d: %s", resp.StatusCode, b)
			return resp.StatusCode == http.StatusOK && strings.Contains(body, "memcached=ok")
		})
		if last != nil && !strings.Contains(body, "memcached=ok") {
			t.Fatalf("%s: %v", what, last)
		}
		return body
	}
	first := get("Apache -> PHP-FPM -> memcached")
	if !strings.HasPrefix(first, "php-ok pid=") {
		t.Fatalf("unexpected body %q", first)
	}

	t.Run("reload and restart", func(t *testing.T) {
		s := services{t: t, units: s.units}
		s.run("apache2", "reload", s.units["apache2"].Reload)
		s.run("php8.2-fpm", "reload", s.units["php8.2-fpm"].Reload)
		// memcached has no restart command: the driver stops then starts.
		if s.units["memcached"].Restart != nil {
			t.Errorf("memcached restart = %+v, want none (stop + start)", s.units["memcached"].Restart)
		}
		s.run("memcached", "stop", s.units["memcached"].Stop)
		newMC := s.start("memcached")
		if newMC == pids["memcached"] {
			t.Errorf("memcached pid %d unchanged after stop + start", newMC)
		}
		pids["memcached"] = newMC
		get("after reloads and a memcached restart")
		if p, ok := s.pid("apache2"); !ok || p != pids["apache2"] {
			t.Errorf("apache2 pid %d (live %v) after graceful, want %d", p, ok, pids["apache2"])
		}
		if _, ok := s.pid("php8.2-fpm"); !ok {
			t.Error("php-fpm not running after USR2")
		}
	})

	// Every process of the three services, then StopServices.
	var all []int
	for name := range pids {
		p, ok := s.pid(name)
		if !ok {
			t.Fatalf("%s not running before stop", name)
		}
		all = append(all, familyOf(p)...)
	}
	if len(all) < 5 {
		t.Errorf("only %d processes (%v): expected masters plus workers", len(all), all)
	}
	if err := harness.StopServices(root); err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if harness.Alive(p) {
			t.Errorf("pid %d still alive after StopServices", p)
		}
	}
	if left := harness.ProcessesNaming(root); len(left) > 0 {
		t.Errorf("processes still naming the root: %v", left)
	}
	if _, err := http.Get(url); err == nil {
		t.Error("Apache still answers after StopServices")
	}
}
