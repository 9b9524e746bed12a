package render_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/render"
)

var health = render.Health{Path: "/nodeagent-health", ReadyFile: "/var/lib/nodeagent/health/ready"}

func vhost() render.VhostData {
	return render.VhostData{
		Platform: nodeagent.OSDebian, Product: "shop", Port: 80,
		ServerName: "www.shop.example", ServerAliases: []string{"shop.example"},
		DocumentRoot: "/var/www/shop/current/public", Socket: "/run/php/nodeagent-shop.sock",
		ProbeFile: "/var/lib/nodeagent/probe/php-probe.php", Health: health,
	}
}

func pool() render.PoolData {
	return render.PoolData{
		Product: "shop", User: "www-data", Group: "www-data", Listen: "/run/php/nodeagent-shop.sock",
		MaxChildren: 8, StartServers: 2, MinSpare: 1, MaxSpare: 2, MaxRequests: 500, MemoryLimit: "128M",
		Env:             []render.EnvVar{{Name: "APP_ENV", Value: "production"}},
		SessionSavePath: "cache-1:11211",
	}
}

func appConfig() render.AppConfigData {
	s := render.Server{Host: "dbserver", Node: "db-a", IP: "10.0.1.10", Port: 3306}
	return render.AppConfigData{
		Product: "shop", DatabaseMaster: s, Replicas: []render.Server{s}, DatabaseName: "shop",
		CacheServers: []render.Server{{Host: "cache-1", Node: "cache-1", IP: "10.0.1.20", Port: 11211}},
		Sessions:     "memcached", Env: []render.EnvVar{{Name: "APP_ENV", Value: "production"}},
	}
}

func memcached() render.MemcachedData {
	return render.MemcachedData{Platform: nodeagent.OSDebian, MemoryMB: 64, Port: 11211, MaxConnections: 1024,
		User: "memcache", ListenIP: "10.0.1.20", PIDFile: "/run/memcached/memcached.pid"}
}

// The values the guards exist for.
const (
	newline = "a\nb"
	quote   = `a"b`
	closing = "</VirtualHost>"
	include = "x\n Include /etc/shadow"
)

var allBad = []string{newline, quote, closing, include}

// TestFieldGuards sets each string field of each file's data to each bad
// value: the render must fail naming the field, or, where the file's
// syntax makes the value harmless (a PHP single-quoted string), render it
// escaped.
func TestFieldGuards(t *testing.T) {
	type field struct {
		name    string
		refused []string // of allBad; the others must render
		render  func(v string) ([]byte, error)
		escape  func(string) string // how an accepted value appears; nil: as is
	}
	apache := func(name string, set func(*render.VhostData, string)) field {
		return field{name, allBad, func(v string) ([]byte, error) { d := vhost(); set(&d, v); return render.ProductVhost(d) }, nil}
	}
	fpm := func(name string, refused []string, set func(*render.PoolData, string)) field {
		return field{name, refused, func(v string) ([]byte, error) { d := pool(); set(&d, v); return render.FPMPool(d) }, nil}
	}
	php := func(name string, set func(*render.AppConfigData, string)) field {
		return field{name, []string{newline, include}, func(v string) ([]byte, error) { d := appConfig(); set(&d, v); return render.AppConfig(d) }, render.PHPQuote}
	}
	mc := func(name string, refused []string, set func(*render.MemcachedData, string)) field {
		return field{name, refused, func(v string) ([]byte, error) { d := memcached(); set(&d, v); return render.Memcached(d) }, nil}
	}
	fpmValue := []string{newline, quote, include}
	fields := []field{
		{"IP", allBad, func(v string) ([]byte, error) {
			return render.ApacheListen(render.ListenData{Platform: nodeagent.OSDebian, Port: 80, IP: v})
		}, nil},
		{"IP", allBad, func(v string) ([]byte, error) {
			return render.DefaultVhost(render.DefaultVhostData{Platform: nodeagent.OSDebian, Port: 80, IP: v, Health: health})
		}, nil},
		{"Platform", allBad, func(v string) ([]byte, error) {
			return render.ApacheGlobal(render.ApacheGlobalData{Platform: v, MaxRequestWorkers: 50, ThreadsPerChild: 25})
		}, nil},
		apache("Product", func(d *render.VhostData, v string) { d.Product = v }),
		apache("ServerName", func(d *render.VhostData, v string) { d.ServerName = v }),
		apache("ServerAliases[0]", func(d *render.VhostData, v string) { d.ServerAliases = []string{v} }),
		apache("DocumentRoot", func(d *render.VhostData, v string) { d.DocumentRoot = v }),
		apache("Socket", func(d *render.VhostData, v string) { d.Socket = v }),
		apache("ProbeFile", func(d *render.VhostData, v string) { d.ProbeFile = v }),
		apache("Health.Path", func(d *render.VhostData, v string) { d.Health.Path = v }),
		apache("Health.ReadyFile", func(d *render.VhostData, v string) { d.Health.ReadyFile = v }),
		fpm("Product", allBad, func(d *render.PoolData, v string) { d.Product = v }),
		fpm("User", allBad, func(d *render.PoolData, v string) { d.User = v }),
		fpm("Group", allBad, func(d *render.PoolData, v string) { d.Group = v }),
		fpm("Listen", fpmValue, func(d *render.PoolData, v string) { d.Listen = v }),
		fpm("MemoryLimit", fpmValue, func(d *render.PoolData, v string) { d.MemoryLimit = v }),
		fpm("Env[0].Name", allBad, func(d *render.PoolData, v string) { d.Env[0].Name = v }),
		fpm("Env[APP_ENV]", fpmValue, func(d *render.PoolData, v string) { d.Env[0].Value = v }),
		fpm("SessionSavePath", fpmValue, func(d *render.PoolData, v string) { d.SessionSavePath = v }),
		php("Product", func(d *render.AppConfigData, v string) { d.Product = v }),
		php("DatabaseMaster.Host", func(d *render.AppConfigData, v string) { d.DatabaseMaster.Host = v }),
		php("Replicas[0].Node", func(d *render.AppConfigData, v string) { d.Replicas[0].Node = v }),
		php("DatabaseName", func(d *render.AppConfigData, v string) { d.DatabaseName = v }),
		php("CacheServers[0].Host", func(d *render.AppConfigData, v string) { d.CacheServers[0].Host = v }),
		php("Sessions", func(d *render.AppConfigData, v string) { d.Sessions = v }),
		php("Env[0].Name", func(d *render.AppConfigData, v string) { d.Env[0].Name = v }),
		php("Env[APP_ENV]", func(d *render.AppConfigData, v string) { d.Env[0].Value = v }),
		{"DatabaseMaster.IP", allBad, func(v string) ([]byte, error) { d := appConfig(); d.DatabaseMaster.IP = v; return render.AppConfig(d) }, nil},
		mc("User", fpmValue, func(d *render.MemcachedData, v string) { d.User = v }),
		mc("ListenIP", allBad, func(d *render.MemcachedData, v string) { d.ListenIP = v }),
		mc("PIDFile", fpmValue, func(d *render.MemcachedData, v string) { d.PIDFile = v }),
	}
	for _, f := range fields {
		for _, bad := range allBad {
			t.Run(f.name+"/"+strings.ReplaceAll(bad, "\n", `\n`), func(t *testing.T) {
				escape := f.escape
				if escape == nil {
					escape = func(s string) string { return s }
				}
				out, err := f.render(bad)
				refused := false
				for _, r := range f.refused {
					refused = refused || r == bad
				}
				if !refused {
					if err != nil {
						t.Fatalf("refused %q, harmless in this file: %v", bad, err)
					}
					if escaped := escape(bad); !bytes.Contains(out, []byte(escaped)) {
						t.Fatalf("output does not hold %q escaped as %s:\n%s", bad, escaped, out)
					}
					return
				}
				var fe *render.FieldError
				if !errors.As(err, &fe) || !errors.Is(err, render.ErrUnsafe) {
					t.Fatalf("got %v (output %q), want a FieldError wrapping ErrUnsafe", err, out)
				}
				if fe.Field != f.name {
					t.Errorf("error names field %q, want %q: %v", fe.Field, f.name, err)
				}
			})
		}
	}
}

func TestRangeChecks(t *testing.T) {
	tests := []struct {
		name   string
		render func() ([]byte, error)
		field  string
	}{
		{"port 0", func() ([]byte, error) { return render.ApacheListen(render.ListenData{Platform: nodeagent.OSDebian}) }, "Port"},
		{"workers not a multiple of threads", func() ([]byte, error) {
			return render.ApacheGlobal(render.ApacheGlobalData{Platform: nodeagent.OSRHEL, MaxRequestWorkers: 130, ThreadsPerChild: 25})
		}, "MaxRequestWorkers"},
		{"spares above max_children", func() ([]byte, error) { d := pool(); d.MaxSpare = 9; return render.FPMPool(d) }, "MaxSpare"},
		{"start below min spare", func() ([]byte, error) { d := pool(); d.StartServers = 0; return render.FPMPool(d) }, "StartServers"},
		{"empty env value", func() ([]byte, error) { d := pool(); d.Env[0].Value = ""; return render.FPMPool(d) }, "Env[APP_ENV]"},
		{"health path not absolute", func() ([]byte, error) { d := vhost(); d.Health.Path = "health"; return render.ProductVhost(d) }, "Health.Path"},
		{"memcached memory 0", func() ([]byte, error) { d := memcached(); d.MemoryMB = 0; return render.Memcached(d) }, "MemoryMB"},
		{"unknown platform", func() ([]byte, error) { d := memcached(); d.Platform = "plan9"; return render.Memcached(d) }, "Platform"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.render()
			var fe *render.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("got %v, want a FieldError for %s", err, tt.field)
			}
		})
	}
}

// TestOutputs renders every file for both platforms: each starts with the
// managed-by comment (after <?php in PHP files), renders identical bytes
// twice, and holds what its platform needs.
func TestOutputs(t *testing.T) {
	type out struct {
		name     string
		render   func() ([]byte, error)
		contains []string
		comment  string
	}
	var cases []out
	for _, p := range []string{nodeagent.OSDebian, nodeagent.OSRHEL} {
		mod, logs, listen := "/usr/lib/apache2/modules/mod_proxy_fcgi.so", "${APACHE_LOG_DIR}/nodeagent-shop-error.log", "Listen 80\n"
		mcLine := "-l 10.0.1.20\n"
		if p == nodeagent.OSRHEL {
			mod, logs, listen = " modules/mod_proxy_fcgi.so", "logs/nodeagent-shop-error.log", "listens on port 80 through the Listen directive of conf/httpd.conf"
			mcLine = "OPTIONS=\"-l 10.0.1.20 -U 0\"\n"
		}
		cases = append(cases,
			out{p + " listen", func() ([]byte, error) { return render.ApacheListen(render.ListenData{Platform: p, Port: 80}) }, []string{listen}, "#"},
			out{p + " listen private ipv6", func() ([]byte, error) {
				return render.ApacheListen(render.ListenData{Platform: p, Port: 80, IP: "fd00::5"})
			}, []string{"Listen [fd00::5]:80\n"}, "#"},
			out{p + " global", func() ([]byte, error) {
				return render.ApacheGlobal(render.ApacheGlobalData{Platform: p, MaxRequestWorkers: 250, ThreadsPerChild: 25})
			}, []string{mod, "<IfModule !proxy_fcgi_module>", "ServerLimit 10\n    ThreadsPerChild 25\n    MaxRequestWorkers 250\n"}, "#"},
			out{p + " default vhost", func() ([]byte, error) {
				return render.DefaultVhost(render.DefaultVhostData{Platform: p, Port: 80, Health: health})
			}, []string{"<VirtualHost *:80>", `RewriteCond "/var/lib/nodeagent/health/ready" !-f`, `RewriteRule "^/nodeagent-health$" - [R=503,L]`, `RewriteRule "!^/nodeagent-health$" - [R=404,L]`, `Alias "/nodeagent-health" "/var/lib/nodeagent/health/ready"`}, "#"},
			out{p + " product vhost", func() ([]byte, error) { d := vhost(); d.Platform = p; return render.ProductVhost(d) }, []string{
				"ServerAlias shop.example\n", `SetHandler "proxy:unix:/run/php/nodeagent-shop.sock|fcgi://localhost"`,
				`Alias "/.nodeagent/php-probe.php" "/var/lib/nodeagent/probe/php-probe.php"`, "Require local", logs,
				`RewriteRule "^/nodeagent-health$" - [R=503,L]`}, "#"},
			out{p + " memcached", func() ([]byte, error) { d := memcached(); d.Platform = p; return render.Memcached(d) }, []string{mcLine}, "#"},
		)
	}
	cases = append(cases,
		out{"pool", func() ([]byte, error) { return render.FPMPool(pool()) }, []string{
			"[shop]\n", `listen = "/run/php/nodeagent-shop.sock"`, "listen.mode = 0660\n", "pm.max_children = 8\n",
			`env[APP_ENV] = "production"`, "php_value[session.save_handler] = memcached\n", `php_value[session.save_path] = "cache-1:11211"`}, ";"},
		out{"pool with file sessions", func() ([]byte, error) { d := pool(); d.SessionSavePath = ""; return render.FPMPool(d) }, []string{"catch_workers_output = yes\n"}, ";"},
		out{"app config", func() ([]byte, error) { return render.AppConfig(appConfig()) }, []string{
			"'master' => ['host' => 'dbserver', 'node' => 'db-a', 'ip' => '10.0.1.10', 'port' => 3306]", "'APP_ENV' => 'production',"}, "<?php\n//"},
		out{"probe", render.PHPProbe, []string{"echo 'nodeagent-php-ok ', PHP_VERSION;"}, "<?php\n//"},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			first, err := c.render()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(first, []byte(c.comment+" Managed by nodeagent")) {
				t.Errorf("does not start with the managed-by comment:\n%s", first)
			}
			for _, s := range c.contains {
				if !bytes.Contains(first, []byte(s)) {
					t.Errorf("missing %q in:\n%s", s, first)
				}
			}
			if !bytes.HasSuffix(first, []byte("\n")) {
				t.Error("does not end with a newline")
			}
			again, _ := c.render()
			if !bytes.Equal(first, again) {
				t.Error("two renders of the same data differ")
			}
		})
	}
}
