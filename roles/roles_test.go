package roles_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/render"
	"github.com/nodeagent/nodeagent/roles"
)

func TestUnit(t *testing.T) {
	debian := nodeagent.Instance{OSFamily: nodeagent.OSDebian, PHPVersion: "8.2"}
	rhel := nodeagent.Instance{OSFamily: nodeagent.OSRHEL}
	tests := []struct {
		name    string
		inst    nodeagent.Instance
		service string
		want    string
		wantErr string
	}{
		{"debian apache", debian, nodeagent.ServiceApache, "apache2", ""},
		{"debian php-fpm", debian, nodeagent.ServicePHPFPM, "php8.2-fpm", ""},
		{"debian memcached", debian, nodeagent.ServiceMemcached, "memcached", ""},
		{"rhel apache", rhel, nodeagent.ServiceApache, "httpd", ""},
		{"rhel php-fpm", rhel, nodeagent.ServicePHPFPM, "php-fpm", ""},
		{"rhel memcached", rhel, nodeagent.ServiceMemcached, "memcached", ""},
		{"debian php-fpm without php", nodeagent.Instance{OSFamily: nodeagent.OSDebian}, nodeagent.ServicePHPFPM, "", "php-fpm is not installed"},
		{"bad php version", nodeagent.Instance{OSFamily: nodeagent.OSDebian, PHPVersion: "8.2\n"}, nodeagent.ServicePHPFPM, "", "not major.minor"},
		{"unknown service", debian, "nginx", "", `unknown service "nginx"`},
		{"unknown os", nodeagent.Instance{OSFamily: "plan9"}, nodeagent.ServiceApache, "", "unknown os family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := roles.Unit(tt.inst, tt.service)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unit() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Unit() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestDesireErrors feeds Desire inputs it must refuse, including values
// that bypass topology validation and must still be stopped by the render
// guards before they reach a file.
func TestDesireErrors(t *testing.T) {
	tests := []struct {
		name       string
		mutate     func(in *roles.Input)
		wantErr    string
		wantUnsafe bool
	}{
		{"unknown role", func(in *roles.Input) { in.Identity.Role = "nope" }, `unknown role "nope" (roles: cache, db, web)`, false},
		{"no topology", func(in *roles.Input) { in.Topology = nil }, "no topology", false},
		{"alias shadows a node", func(in *roles.Input) { in.Topology.Aliases["db-a"] = "db-b" }, "duplicate host name db-a: both nodes.db-a and aliases.db-a", false},
		{"own name shadows a node", func(in *roles.Input) {
			in.Topology.Nodes[in.Instance.ID] = nodeagent.Node{IP: "10.9.9.9", Role: "db"}
		}, "duplicate host name i-0fedcba9876543210", false},
		{"alias to a missing node", func(in *roles.Input) { in.Topology.Aliases["ghost"] = "db-z" }, `aliases.ghost: node "db-z" is not in nodes`, false},
		{"bad node ip", func(in *roles.Input) {
			in.Topology.Nodes["db-a"] = nodeagent.Node{IP: "10.0.1.10\n1.2.3.4 evil", Role: "db"}
		}, "nodes.db-a: ip", false},
		{"debian web without php", func(in *roles.Input) { in.Instance.PHPVersion = "" }, "php-fpm is not installed under the root", false},
		{"unknown os", func(in *roles.Input) { in.Instance.OSFamily = "plan9" }, "unknown os family", false},
		{"unknown service", func(in *roles.Input) {
			r := in.Topology.Roles["web"]
			r.Services = append(r.Services, "nginx")
			in.Topology.Roles["web"] = r
		}, `roles.web.services: unknown service "nginx"`, false},
		{"relative service root", func(in *roles.Input) { in.ServiceRoot = "tmp/x" }, `service root "tmp/x" must be a clean absolute path`, false},
		{"unclean state dir", func(in *roles.Input) { in.StateDir = "/var/lib/../nodeagent" }, "state dir", false},
		{"rhel bind private on port 80", func(in *roles.Input) {
			in.Instance.OSFamily = nodeagent.OSRHEL
			in.Topology.Apache.Bind = nodeagent.BindPrivate
		}, `clashes with "Listen 80"`, false},
		{"reserved env", func(in *roles.Input) { in.Topology.Products["shop"].PHP.Env["DB_NAME"] = "x" }, "products.shop.php.env.DB_NAME: reserved", false},
		{"server alias smuggles a directive", func(in *roles.Input) {
			p := in.Topology.Products["shop"]
			p.ServerAliases = []string{"shop.example\n    Include /etc/shadow"}
			in.Topology.Products["shop"] = p
		}, "field ServerAliases[0]", true},
		{"server name closes the vhost", func(in *roles.Input) {
			p := in.Topology.Products["shop"]
			p.ServerName = "x</VirtualHost>"
			in.Topology.Products["shop"] = p
		}, "field ServerName", true},
		{"env value with a newline", func(in *roles.Input) {
			in.Topology.Products["shop"].PHP.Env["APP_ENV"] = "prod\nphp_admin_value[open_basedir] = /"
		}, "field Env[APP_ENV]", true},
		{"env value with a quote", func(in *roles.Input) { in.Topology.Products["shop"].PHP.Env["APP_ENV"] = `prod"` }, "field Env[APP_ENV]", true},
		{"memory limit with a newline", func(in *roles.Input) {
			p := in.Topology.Products["shop"]
			p.PHP.MemoryLimit = "256M\nuser = root"
			in.Topology.Products["shop"] = p
		}, "field MemoryLimit", true},
		{"health path with a space", func(in *roles.Input) { in.Topology.Health.Path = "/health Include /etc/shadow" }, "field Health.Path", true},
		{"service root with a quote", func(in *roles.Input) { in.ServiceRoot = `/tmp/x"y` }, "field Listen", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := loadInput(t, filepath.Join("testdata", "web-debian"))
			tt.mutate(&in)
			d, err := roles.Desire(in)
			if err == nil {
				t.Fatalf("Desire accepted the input; files: %d", len(d.Files))
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if got := errors.Is(err, render.ErrUnsafe); got != tt.wantUnsafe {
				t.Errorf("errors.Is(err, render.ErrUnsafe) = %v, want %v (%v)", got, tt.wantUnsafe, err)
			}
		})
	}
}

// TestExplicitValuesWin checks that the document's sizes beat the derived
// ones, and that a derived size follows the machine's memory.
func TestExplicitValuesWin(t *testing.T) {
	tests := []struct {
		name   string
		dir    string
		mutate func(in *roles.Input)
		file   string
		want   string
	}{
		{"memcached memory_mb", "cache-debian", func(in *roles.Input) { in.Topology.Roles["cache"].Memcached.MemoryMB = 300 }, "/etc/memcached.conf", "\n-m 300\n"},
		{"memcached derived from memory", "cache-debian", func(in *roles.Input) { in.Instance.MemoryBytes = 8 * gib }, "/etc/memcached.conf", "\n-m 5555\n"},
		{"php max_children", "web-debian", func(in *roles.Input) {
			p := in.Topology.Products["shop"]
			p.PHP.MaxChildren = 7
			in.Topology.Products["shop"] = p
		}, "/etc/php/8.2/fpm/pool.d/nodeagent-shop.conf", "\npm.max_children = 7\n"},
		{"apache max_request_workers is rounded up to 25", "web-debian", func(in *roles.Input) { in.Topology.Apache.MaxRequestWorkers = 401 }, "/etc/apache2/conf-enabled/nodeagent.conf", "ServerLimit 17\n    ThreadsPerChild 25\n    MaxRequestWorkers 425\n"},
		{"rhel listen on another port", "web-rhel", func(in *roles.Input) { in.Topology.Apache.Port = 8080 }, "/etc/httpd/conf.d/nodeagent-listen.conf", "\nListen 8080\n"},
		{"ipv6 private bind", "web-debian", func(in *roles.Input) {
			in.Instance.PrivateIP = "fd00::5"
			in.Topology.Apache.Bind = nodeagent.BindPrivate
		}, "/etc/apache2/sites-enabled/nodeagent-shop.conf", "<VirtualHost [fd00::5]:80>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := loadInput(t, filepath.Join("testdata", tt.dir))
			tt.mutate(&in)
			d, err := roles.Desire(in)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range d.Files {
				if f.Path == tt.file {
					if !strings.Contains(string(f.Content), tt.want) {
						t.Errorf("%s does not contain %q:\n%s", f.Path, tt.want, f.Content)
					}
					return
				}
			}
			t.Fatalf("no file %s", tt.file)
		})
	}
}
