//go:build integration

package roles_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/roles"
)

// The real programs of this Debian machine check what Desire renders: a
// copy of /etc/apache2 with the rendered files dropped in must pass
// apache2ctl -t, a copy of /etc/php/<ver>/fpm must pass php-fpm -t, and the
// PHP files must run under php. No server is started.

const realPHP = "8.2" // the php-fpm installed here (Debian 12)

func need(t *testing.T, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		t.Fatalf("%s is required for the integration tests (apt-get install apache2 php8.2-fpm php-cli): %v", prog, err)
	}
	return p
}

func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// rootedTree copies the platform's Apache and PHP-FPM configuration under
// a temporary root, points their run, lock, log and include paths into it,
// and writes the desired files there.
func rootedTree(t *testing.T, d *nodeagent.Desired, root string) {
	t.Helper()
	for _, dir := range []string{"etc/php/" + realPHP, "run/php", "var/log/apache2", "run/apache2", "var/lock/apache2"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := run(t, nil, "cp", "-a", "/etc/apache2", filepath.Join(root, "etc")); err != nil {
		t.Fatalf("copy /etc/apache2: %v\n%s", err, out)
	}
	if out, err := run(t, nil, "cp", "-a", "/etc/php/"+realPHP+"/fpm", filepath.Join(root, "etc/php", realPHP)); err != nil {
		t.Fatalf("copy php-fpm config: %v\n%s", err, out)
	}
	envvars := filepath.Join(root, "etc/apache2/envvars")
	appendFile(t, envvars, strings.Join([]string{
		"",
		"export APACHE_PID_FILE=" + root + "/run/apache2/apache2.pid",
		"export APACHE_RUN_DIR=" + root + "/run/apache2",
		"export APACHE_LOCK_DIR=" + root + "/var/lock/apache2",
		"export APACHE_LOG_DIR=" + root + "/var/log/apache2",
		"",
	}, "\n"))
	fpmConf := filepath.Join(root, "etc/php", realPHP, "fpm/php-fpm.conf")
	b, err := os.ReadFile(fpmConf)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "include="):
			l = "include=" + filepath.Join(root, "etc/php", realPHP, "fpm/pool.d") + "/*.conf"
		case strings.HasPrefix(l, "pid ="):
			l = "pid = " + root + "/run/php/php-fpm.pid"
		case strings.HasPrefix(l, "error_log ="):
			l = "error_log = " + root + "/var/log/php-fpm.log"
		}
		lines = append(lines, l)
	}
	if err := os.WriteFile(fpmConf, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range d.Files {
		p := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Content, f.Mode); err != nil {
			t.Fatal(err)
		}
	}
}

func appendFile(t *testing.T, file, text string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func TestRealPrograms(t *testing.T) {
	apachectl, fpm, php := need(t, "apache2ctl"), need(t, "php-fpm"+realPHP), need(t, "php")
	for _, name := range []string{"web-debian", "web-private-svcroot", "web-sessions-files"} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			in := loadInput(t, filepath.Join("testdata", name))
			in.ServiceRoot = root
			in.Instance.PHPVersion = realPHP
			d, err := roles.Desire(in)
			if err != nil {
				t.Fatal(err)
			}
			rootedTree(t, d, root)
			apacheEnv := []string{"APACHE_CONFDIR=" + filepath.Join(root, "etc/apache2")}

			t.Run("apache2ctl -t", func(t *testing.T) {
				out, err := run(t, apacheEnv, apachectl, "-t")
				if err != nil || !strings.Contains(out, "Syntax OK") {
					t.Fatalf("apache2ctl -t refused the rendered config: %v\n%s", err, out)
				}
				out, err = run(t, apacheEnv, apachectl, "-S")
				if err != nil {
					t.Fatalf("apache2ctl -S: %v\n%s", err, out)
				}
				if !strings.Contains(out, "default server nodeagent-default.invalid") {
					t.Errorf("the nodeagent catch-all is not the default virtual host:\n%s", out)
				}
				for _, p := range in.Identity.Products {
					if sn := in.Topology.Products[p].ServerName; !strings.Contains(out, "namevhost "+sn) {
						t.Errorf("no name-based virtual host %s:\n%s", sn, out)
					}
				}
				out, err = run(t, apacheEnv, apachectl, "-M")
				if err != nil {
					t.Fatalf("apache2ctl -M: %v\n%s", err, out)
				}
				for _, m := range []string{"proxy_module", "proxy_fcgi_module", "rewrite_module", "setenvif_module"} {
					if !strings.Contains(out, m) {
						t.Errorf("module %s not loaded:\n%s", m, out)
					}
				}
			})

			t.Run("php-fpm -t", func(t *testing.T) {
				conf := filepath.Join(root, "etc/php", realPHP, "fpm/php-fpm.conf")
				out, err := run(t, nil, fpm, "-tt", "-y", conf)
				if err != nil || !strings.Contains(out, "test is successful") {
					t.Fatalf("php-fpm -t refused the rendered pools: %v\n%s", err, out)
				}
				for _, p := range in.Identity.Products {
					if !strings.Contains(out, "["+p+"]") {
						t.Errorf("pool %s not loaded:\n%s", p, out)
					}
					for k, v := range in.Topology.Products[p].PHP.Env {
						if !strings.Contains(out, "env["+k+"] = "+v+"\n") {
							t.Errorf("pool %s: env[%s] is not %q as parsed by php-fpm:\n%s", p, k, v, out)
						}
					}
				}
			})

			t.Run("php app config and probe", func(t *testing.T) {
				for _, p := range in.Identity.Products {
					file := filepath.Join(root, roles.AppConfigDir, p+".php")
					out, err := run(t, nil, php, "-r", `echo json_encode(require $argv[1]);`, file)
					if err != nil {
						t.Fatalf("php %s: %v\n%s", file, err, out)
					}
					var got struct {
						Product  string `json:"product"`
						Database struct {
							Master struct {
								Host, Node, IP string
								Port           int
							} `json:"master"`
							Name string `json:"name"`
						} `json:"database"`
						Env map[string]string `json:"env"`
					}
					if err := json.Unmarshal([]byte(out), &got); err != nil {
						t.Fatalf("app config %s did not return an array: %v\n%s", file, err, out)
					}
					pr := in.Topology.Products[p]
					if got.Product != p || got.Database.Master.Host != pr.Database.Master || got.Database.Name != pr.Database.Name {
						t.Errorf("app config %s: got %+v", file, got)
					}
					for k, v := range pr.PHP.Env {
						if got.Env[k] != v {
							t.Errorf("app config %s: env %s = %q, want %q", file, k, got.Env[k], v)
						}
					}
				}
				out, err := run(t, nil, php, filepath.Join(root, roles.ProbeFile(in.StateDir)))
				if err != nil || !strings.HasPrefix(out, "nodeagent-php-ok "+realPHP) {
					t.Errorf("probe printed %q (%v), want nodeagent-php-ok %s…", out, err, realPHP)
				}
			})

			// The check must be able to fail: a directive smuggled past the
			// guards would be refused by the same commands.
			t.Run("refuses broken config", func(t *testing.T) {
				bad := filepath.Join(root, "etc/apache2/sites-enabled/zz-broken.conf")
				if err := os.WriteFile(bad, []byte("<VirtualHost *:80>\nNoSuchDirective on\n</VirtualHost>\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				defer os.Remove(bad)
				if out, err := run(t, apacheEnv, apachectl, "-t"); err == nil {
					t.Errorf("apache2ctl -t accepted a broken vhost:\n%s", out)
				}
				badPool := filepath.Join(root, "etc/php", realPHP, "fpm/pool.d/zz-broken.conf")
				if err := os.WriteFile(badPool, []byte("[broken]\npm = sideways\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				defer os.Remove(badPool)
				if out, err := run(t, nil, fpm, "-t", "-y", filepath.Join(root, "etc/php", realPHP, "fpm/php-fpm.conf")); err == nil {
					t.Errorf("php-fpm -t accepted a broken pool:\n%s", out)
				}
			})
		})
	}
}
