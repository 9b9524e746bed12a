package topology_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/topology"
)

// problem is an expected field error: the exact path and a reason substring.
type problem struct{ path, reason string }

func TestLoadInvalid(t *testing.T) {
	example := string(readTestdata(t, "example.json"))
	blog := func() map[string]any {
		return map[string]any{
			"server_name": "www.shop.example",
			"database":    map[string]any{"master": "db-a", "name": "blog"},
		}
	}
	tests := []struct {
		name   string
		file   string // default "bad.json"
		raw    string // the document as text, or
		mutate func(t *testing.T, d doc)
		want   []problem // every field error, in order
		text   string    // or: a substring of a non-field error
	}{
		{
			name:   "unknown field with its path",
			mutate: func(t *testing.T, d doc) { d.set(t, map[string]any{"id": "x"}, "products", "shop", "relase") },
			want:   []problem{{"products.shop.relase", "unknown field"}},
		},
		{
			name:   "field in the wrong letter case",
			mutate: func(t *testing.T, d doc) { d.set(t, 7, "Serial") },
			want:   []problem{{"Serial", "unknown field"}},
		},
		{
			name: "trailing data",
			raw:  example + "\n{\"schema\": 1}\n",
			text: "unexpected data after the document",
		},
		{
			name: "broken syntax names line and column",
			raw:  "{\n  \"schema\": 1,\n  \"serial\" 42\n}",
			text: "line 3, column",
		},
		{
			name: "empty document",
			raw:  "  \n",
			want: []problem{{"", "empty document"}},
		},
		{
			name: "duplicate key",
			raw:  strings.Replace(example, `"db-b":`, `"db-a":`, 1),
			want: []problem{{"nodes.db-a", "duplicate key"}},
		},
		{
			name:   "wrong type",
			mutate: func(t *testing.T, d doc) { d.set(t, "42", "serial") },
			want:   []problem{{"serial", "must be a number, got a string"}},
		},
		{
			name:   "fractional port",
			mutate: func(t *testing.T, d doc) { d.set(t, 80.5, "apache", "port") },
			want:   []problem{{"apache.port", "must be a whole number"}},
		},
		{
			name:   "schema 2",
			mutate: func(t *testing.T, d doc) { d.set(t, 2, "schema") },
			want:   []problem{{"schema", "must be 1, got 2"}},
		},
		{
			name:   "missing serial",
			mutate: func(t *testing.T, d doc) { d.del(t, "serial") },
			want:   []problem{{"serial", "missing or 0"}},
		},
		{
			name:   "bad domain",
			mutate: func(t *testing.T, d doc) { d.set(t, "internal_net", "domain") },
			want:   []problem{{"domain", "must be a DNS name"}},
		},
		{
			name: "newline and directive smuggled into server_name",
			mutate: func(t *testing.T, d doc) {
				d.set(t, "www.shop.example\nInclude /etc/shadow", "products", "shop", "server_name")
			},
			want: []problem{{"products.shop.server_name", `got "www.shop.example\nInclude /etc/shadow"`}},
		},
		{
			name:   "quote smuggled into server_name",
			mutate: func(t *testing.T, d doc) { d.set(t, `www.shop.example"`, "products", "shop", "server_name") },
			want:   []problem{{"products.shop.server_name", "must be a DNS name"}},
		},
		{
			name: "directive smuggled into a server alias",
			mutate: func(t *testing.T, d doc) {
				d.set(t, []any{"shop.example </VirtualHost>"}, "products", "shop", "server_aliases")
			},
			want: []problem{{"products.shop.server_aliases[0]", "must be a DNS name"}},
		},
		{
			name: "newline smuggled into a node name",
			mutate: func(t *testing.T, d doc) {
				d.set(t, map[string]any{"ip": "10.0.9.9", "role": "db"}, "nodes", "db-c\n10.6.6.6 bank.example")
			},
			want: []problem{{`nodes["db-c\n10.6.6.6 bank.example"]`, "node name must be a DNS label"}},
		},
		{
			name:   "quote in a node name",
			mutate: func(t *testing.T, d doc) { d.set(t, map[string]any{"ip": "10.0.9.9", "role": "db"}, "nodes", `db"c`) },
			want:   []problem{{`nodes["db\"c"]`, "node name must be a DNS label"}},
		},
		{
			name:   "upper case node name",
			mutate: func(t *testing.T, d doc) { d.set(t, map[string]any{"ip": "10.0.9.9", "role": "db"}, "nodes", "DB-C") },
			want:   []problem{{"nodes.DB-C", "node name must be a DNS label"}},
		},
		{
			name: "newline and directive smuggled into an env value",
			mutate: func(t *testing.T, d doc) {
				d.set(t, "production\nphp_admin_value[open_basedir] = /", "products", "shop", "php", "env", "APP_ENV")
			},
			want: []problem{{"products.shop.php.env.APP_ENV", "must not contain control characters"}},
		},
		{
			name: "quote in an env value",
			mutate: func(t *testing.T, d doc) {
				d.set(t, `production" php_value[x]="y`, "products", "shop", "php", "env", "APP_ENV")
			},
			want: []problem{{"products.shop.php.env.APP_ENV", "double quotes"}},
		},
		{
			name:   "backslash in an env value",
			mutate: func(t *testing.T, d doc) { d.set(t, `a\`, "products", "shop", "php", "env", "APP_ENV") },
			want:   []problem{{"products.shop.php.env.APP_ENV", "backslashes"}},
		},
		{
			name:   "bad env key",
			mutate: func(t *testing.T, d doc) { d.set(t, "x", "products", "shop", "php", "env", "APP-ENV") },
			want:   []problem{{"products.shop.php.env.APP-ENV", "environment variable name"}},
		},
		{
			name:   "alias to an unknown node",
			mutate: func(t *testing.T, d doc) { d.set(t, "db-z", "aliases", "dbserver") },
			want:   []problem{{"aliases.dbserver", `points at unknown node "db-z"`}},
		},
		{
			name:   "alias to an alias",
			mutate: func(t *testing.T, d doc) { d.set(t, "dbserver", "aliases", "primary") },
			want:   []problem{{"aliases.primary", `points at alias "dbserver"; an alias must point at a node`}},
		},
		{
			name:   "alias with a node's name",
			mutate: func(t *testing.T, d doc) { d.set(t, "db-b", "aliases", "db-a") },
			want:   []problem{{"aliases.db-a", "both a node and an alias"}},
		},
		{
			name:   "unresolved database master",
			mutate: func(t *testing.T, d doc) { d.set(t, "dbmaster", "products", "shop", "database", "master") },
			want:   []problem{{"products.shop.database.master", `"dbmaster" is neither a node nor an alias`}},
		},
		{
			name:   "no database master",
			mutate: func(t *testing.T, d doc) { d.del(t, "products", "shop", "database", "master") },
			want:   []problem{{"products.shop.database.master", "every product needs a database master"}},
		},
		{
			name: "unresolved replica",
			mutate: func(t *testing.T, d doc) {
				d.set(t, []any{"replserver", "db-q"}, "products", "shop", "database", "replicas")
			},
			want: []problem{{"products.shop.database.replicas[1]", `"db-q" is neither a node nor an alias`}},
		},
		{
			name:   "unresolved cache node",
			mutate: func(t *testing.T, d doc) { d.set(t, []any{"cache-1", "cache-9"}, "products", "shop", "cache", "nodes") },
			want:   []problem{{"products.shop.cache.nodes[1]", `"cache-9" is neither a node nor an alias`}},
		},
		{
			name: "cache node that does not run memcached",
			mutate: func(t *testing.T, d doc) {
				d.set(t, []any{"cache-1", "dbserver"}, "products", "shop", "cache", "nodes")
			},
			want: []problem{{"products.shop.cache.nodes[1]", `node db-a has role "db", which does not run memcached`}},
		},
		{
			name:   "sessions memcached without cache",
			mutate: func(t *testing.T, d doc) { d.del(t, "products", "shop", "cache") },
			want:   []problem{{"products.shop.sessions", "memcached sessions need cache nodes"}},
		},
		{
			name:   "cache without nodes",
			mutate: func(t *testing.T, d doc) { d.set(t, []any{}, "products", "shop", "cache", "nodes") },
			want: []problem{
				{"products.shop.cache.nodes", "at least one memcached node"},
				{"products.shop.sessions", "memcached sessions need cache nodes"},
			},
		},
		{
			name:   "unknown sessions handler",
			mutate: func(t *testing.T, d doc) { d.set(t, "redis", "products", "shop", "sessions") },
			want:   []problem{{"products.shop.sessions", `must be "files" or "memcached", got "redis"`}},
		},
		{
			name:   "short sha256",
			mutate: func(t *testing.T, d doc) { d.set(t, "abc123", "products", "shop", "release", "sha256") },
			want:   []problem{{"products.shop.release.sha256", "must be 64 lowercase hex characters"}},
		},
		{
			name: "upper case sha256",
			mutate: func(t *testing.T, d doc) {
				d.set(t, strings.Repeat("AB", 32), "products", "shop", "release", "sha256")
			},
			want: []problem{{"products.shop.release.sha256", "must be 64 lowercase hex characters"}},
		},
		{
			name: "release url over plain http",
			mutate: func(t *testing.T, d doc) {
				d.set(t, "http://releases.example/shop.tar.gz", "products", "shop", "release", "url")
			},
			want: []problem{{"products.shop.release.url", "must be s3://bucket/key, https://host/path or file:///absolute/path"}},
		},
		{
			name: "release url with credentials",
			mutate: func(t *testing.T, d doc) {
				d.set(t, "https://u:p@releases.example/shop.tar.gz", "products", "shop", "release", "url")
			},
			want: []problem{{"products.shop.release.url", "must not carry credentials"}},
		},
		{
			name:   "release url s3 without key",
			mutate: func(t *testing.T, d doc) { d.set(t, "s3://releases/", "products", "shop", "release", "url") },
			want:   []problem{{"products.shop.release.url", "must name an object key"}},
		},
		{
			name:   "release id dot dot",
			mutate: func(t *testing.T, d doc) { d.set(t, "..", "products", "shop", "release", "id") },
			want:   []problem{{"products.shop.release.id", "not . or .."}},
		},
		{
			name:   "bad ip",
			mutate: func(t *testing.T, d doc) { d.set(t, "10.0.1.300", "nodes", "db-a", "ip") },
			want:   []problem{{"nodes.db-a.ip", `must be an IPv4 or IPv6 address without a zone, got "10.0.1.300"`}},
		},
		{
			name:   "ip with a zone",
			mutate: func(t *testing.T, d doc) { d.set(t, "fe80::1%eth0", "nodes", "db-a", "ip") },
			want:   []problem{{"nodes.db-a.ip", "without a zone"}},
		},
		{
			name:   "unspecified ip",
			mutate: func(t *testing.T, d doc) { d.set(t, "0.0.0.0", "nodes", "db-a", "ip") },
			want:   []problem{{"nodes.db-a.ip", "must be a unicast address"}},
		},
		{
			name:   "unknown node role",
			mutate: func(t *testing.T, d doc) { d.set(t, "dbs", "nodes", "db-a", "role") },
			want:   []problem{{"nodes.db-a.role", `unknown role "dbs" (known: cache, db, web)`}},
		},
		{
			name:   "bad instance id",
			mutate: func(t *testing.T, d doc) { d.set(t, "i-XYZ", "nodes", "db-a", "instance_id") },
			want:   []problem{{"nodes.db-a.instance_id", "must look like i-0123456789abcdef0"}},
		},
		{
			name:   "duplicate instance id",
			mutate: func(t *testing.T, d doc) { d.set(t, "i-0a1b2c3d4e5f60001", "nodes", "db-b", "instance_id") },
			want:   []problem{{"nodes.db-b.instance_id", "i-0a1b2c3d4e5f60001 is also the instance id of nodes.db-a"}},
		},
		{
			name:   "bad az",
			mutate: func(t *testing.T, d doc) { d.set(t, "us-east-1", "nodes", "db-a", "az") },
			want:   []problem{{"nodes.db-a.az", "availability zone"}},
		},
		{
			name:   "duplicate server_name across products names both",
			mutate: func(t *testing.T, d doc) { d.set(t, blog(), "products", "blog") },
			want:   []problem{{"products.shop.server_name", "www.shop.example is already claimed by products.blog.server_name"}},
		},
		{
			name: "server alias claimed by another product",
			mutate: func(t *testing.T, d doc) {
				b := blog()
				b["server_name"] = "shop.example"
				d.set(t, b, "products", "blog")
			},
			want: []problem{{"products.shop.server_aliases[0]", "shop.example is already claimed by products.blog.server_name"}},
		},
		{
			name:   "unknown service",
			mutate: func(t *testing.T, d doc) { d.set(t, []any{"apache", "php-fpm", "nginx"}, "roles", "web", "services") },
			want:   []problem{{"roles.web.services[2]", `unknown service "nginx"`}},
		},
		{
			name:   "service listed twice",
			mutate: func(t *testing.T, d doc) { d.set(t, []any{"apache", "php-fpm", "apache"}, "roles", "web", "services") },
			want:   []problem{{"roles.web.services[2]", "apache is listed twice"}},
		},
		{
			name:   "products on a role without php-fpm",
			mutate: func(t *testing.T, d doc) { d.set(t, []any{"apache"}, "roles", "web", "services") },
			want:   []problem{{"roles.web.products", "must run apache and php-fpm"}},
		},
		{
			name:   "role with an unknown product",
			mutate: func(t *testing.T, d doc) { d.set(t, []any{"shop", "blog"}, "roles", "web", "products") },
			want:   []problem{{"roles.web.products[1]", `unknown product "blog" (known: shop)`}},
		},
		{
			name:   "memcached settings on a role without memcached",
			mutate: func(t *testing.T, d doc) { d.set(t, map[string]any{"memory_mb": 64}, "roles", "db", "memcached") },
			want:   []problem{{"roles.db.memcached", "does not run memcached"}},
		},
		{
			name:   "negative memcached memory",
			mutate: func(t *testing.T, d doc) { d.set(t, -1, "roles", "cache", "memcached", "memory_mb") },
			want:   []problem{{"roles.cache.memcached.memory_mb", "got -1"}},
		},
		{
			name:   "memcached port out of range",
			mutate: func(t *testing.T, d doc) { d.set(t, 70000, "roles", "cache", "memcached", "port") },
			want:   []problem{{"roles.cache.memcached.port", "must be a port from 1 to 65535"}},
		},
		{
			name:   "group with an unknown role",
			mutate: func(t *testing.T, d doc) { d.set(t, "webs", "groups", "shop-web", "role") },
			want:   []problem{{"groups.shop-web.role", `unknown role "webs"`}},
		},
		{
			name:   "bad group name",
			mutate: func(t *testing.T, d doc) { d.set(t, map[string]any{"role": "web"}, "groups", "shop web") },
			want:   []problem{{`groups["shop web"]`, "Auto Scaling group name must be 1-255 characters"}},
		},
		{
			name:   "bad hook name",
			mutate: func(t *testing.T, d doc) { d.set(t, "launch hook", "groups", "shop-web", "launch_hook") },
			want:   []problem{{"groups.shop-web.launch_hook", "lifecycle hook name"}},
		},
		{
			name:   "docroot escaping the release",
			mutate: func(t *testing.T, d doc) { d.set(t, "../../etc", "products", "shop", "docroot") },
			want:   []problem{{"products.shop.docroot", "no '..'"}},
		},
		{
			name:   "absolute docroot",
			mutate: func(t *testing.T, d doc) { d.set(t, "/var/www", "products", "shop", "docroot") },
			want:   []problem{{"products.shop.docroot", "no leading '/'"}},
		},
		{
			name:   "database name with a hyphen",
			mutate: func(t *testing.T, d doc) { d.set(t, "shop-db", "products", "shop", "database", "name") },
			want:   []problem{{"products.shop.database.name", "1-64 letters, digits or '_'"}},
		},
		{
			name:   "php memory limit with a unit word",
			mutate: func(t *testing.T, d doc) { d.set(t, "256MB", "products", "shop", "php", "memory_limit") },
			want:   []problem{{"products.shop.php.memory_limit", `got "256MB"`}},
		},
		{
			name: "smoke checks: duplicate name, bad path, bad status",
			mutate: func(t *testing.T, d doc) {
				d.set(t, []any{
					map[string]any{"name": "home", "path": "/"},
					map[string]any{"name": "home", "path": "/a b", "status": 700},
				}, "products", "shop", "smoke")
			},
			want: []problem{
				{"products.shop.smoke[1].name", "used by another check"},
				{"products.shop.smoke[1].path", "no whitespace"},
				{"products.shop.smoke[1].status", "from 100 to 599"},
			},
		},
		{
			name: "smoke checks: location without a redirect status, location with a space",
			mutate: func(t *testing.T, d doc) {
				d.set(t, []any{
					map[string]any{"name": "home", "path": "/", "location": "https://www.shop.example/"},
					map[string]any{"name": "tls", "path": "/", "status": 301, "location": "https://www.shop.example/a b"},
					map[string]any{"name": "moved", "path": "/old", "status": 302, "location": "/new"},
				}, "products", "shop", "smoke")
			},
			want: []problem{
				{"products.shop.smoke[0].location", "set status to a 3xx code such as 301 (status is 200)"},
				{"products.shop.smoke[1].location", "no whitespace"},
			},
		},
		{
			name:   "health path without a slash",
			mutate: func(t *testing.T, d doc) { d.set(t, "health", "health", "path") },
			want:   []problem{{"health.path", "must start with /"}},
		},
		{
			name:   "unknown apache bind",
			mutate: func(t *testing.T, d doc) { d.set(t, "public", "apache", "bind") },
			want:   []problem{{"apache.bind", `must be "all" or "private"`}},
		},
		{
			name:   "reports prefix not s3",
			mutate: func(t *testing.T, d doc) { d.set(t, map[string]any{"reports": "https://b/reports/"}, "fleet") },
			want:   []problem{{"fleet.reports", "s3://bucket/prefix/"}},
		},
		{
			name:   "reports prefix without a trailing slash",
			mutate: func(t *testing.T, d doc) { d.set(t, map[string]any{"reports": "s3://fleet-config/reports"}, "fleet") },
			want:   []problem{{"fleet.reports", "must end in /"}},
		},
		{
			name:   "reports bucket not a bucket name",
			mutate: func(t *testing.T, d doc) { d.set(t, map[string]any{"reports": "s3://Fleet_Config/reports/"}, "fleet") },
			want:   []problem{{"fleet.reports", "bucket must be"}},
		},
		{
			name:   "unknown fleet field",
			mutate: func(t *testing.T, d doc) { d.set(t, map[string]any{"report": "s3://b/r/"}, "fleet") },
			want:   []problem{{"fleet.report", "unknown field"}},
		},
		{
			name: "unknown field in yaml",
			file: "bad.yaml",
			raw:  "schema: 1\nserial: 1\nroles:\n  web:\n    services: [apache]\n    servces: [php-fpm]\n",
			want: []problem{{"roles.web.servces", "unknown field"}},
		},
		{
			name: "duplicate key in yaml",
			file: "bad.yml",
			raw:  "schema: 1\nserial: 1\nserial: 2\n",
			text: "already set",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.raw)
			if tt.mutate != nil {
				d := exampleDoc(t)
				tt.mutate(t, d)
				data = d.bytes(t)
			}
			file := tt.file
			if file == "" {
				file = "bad.json"
			}
			top, err := topology.Load(data, file, nodeagent.FormatOf(file))
			if err == nil {
				t.Fatalf("Load accepted it: %+v", top)
			}
			if !strings.Contains(err.Error(), file) {
				t.Errorf("message %q does not name the document %s", err, file)
			}
			var errs topology.Errors
			if tt.text != "" {
				if !strings.Contains(err.Error(), tt.text) {
					t.Errorf("message %q does not contain %q", err, tt.text)
				}
				return
			}
			if !errors.As(err, &errs) {
				t.Fatalf("error is not topology.Errors: %v", err)
			}
			assertProblems(t, errs, tt.want)
		})
	}
}

func assertProblems(t *testing.T, errs topology.Errors, want []problem) {
	t.Helper()
	if len(errs) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		if errs[i].Path != w.path || !strings.Contains(errs[i].Reason, w.reason) {
			t.Errorf("problem %d = %q: %q, want %q: …%s…", i, errs[i].Path, errs[i].Reason, w.path, w.reason)
		}
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	d := exampleDoc(t)
	d.set(t, 0, "serial")
	d.set(t, "10.0.1", "nodes", "db-b", "ip")
	d.set(t, "db-x", "aliases", "replserver")
	d.set(t, "xyz", "products", "shop", "release", "sha256")
	d.set(t, "www.shop.example\n", "products", "shop", "server_name")
	d.set(t, "a\x00b", "products", "shop", "php", "env", "SECRET")
	d.set(t, 0, "apache", "max_request_workers")
	d.set(t, -5, "apache", "max_request_workers")

	_, err := topology.Load(d.bytes(t), "many.json", nodeagent.FormatOf("many.json"))
	var errs topology.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load = %v, want topology.Errors", err)
	}
	assertProblems(t, errs, []problem{
		{"aliases.replserver", "unknown node"},
		{"apache.max_request_workers", "got -5"},
		{"nodes.db-b.ip", "IPv4 or IPv6"},
		{"products.shop.php.env.SECRET", "control characters"},
		{"products.shop.release.sha256", "64 lowercase hex"},
		{"products.shop.server_name", "DNS name"},
		{"serial", "missing or 0"},
	})
	// One line per problem, so an operator sees them all.
	if got := strings.Count(err.Error(), "\n") + 1; got != len(errs) {
		t.Errorf("message has %d lines for %d problems:\n%s", got, len(errs), err)
	}
}

func TestDecodeReportsEveryShapeProblem(t *testing.T) {
	raw := `{"schema": 1, "serial": "one", "nodez": {}, "nodes": {"a": {"ip": 10, "role": "db", "zone": "x"}}, "roles": []}`
	_, err := topology.Decode([]byte(raw), "shape.json", nodeagent.FormatOf("shape.json"))
	var errs topology.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Decode = %v, want topology.Errors", err)
	}
	assertProblems(t, errs, []problem{
		{"nodes.a.ip", "must be a string, got a number"},
		{"nodes.a.zone", "unknown field"},
		{"nodez", "unknown field"},
		{"roles", "must be an object, got a list"},
		{"serial", "must be a number, got a string"},
	})
}

func TestIsYAMLByName(t *testing.T) {
	yaml := readTestdata(t, "example.yaml")
	for _, name := range []string{"t.yaml", "T.YML", "s3://b/topology.yaml", "https://h/topology.yml?versionId=3"} {
		t.Run(name, func(t *testing.T) {
			if _, err := topology.Load(yaml, name, nodeagent.FormatOf(name)); err != nil {
				t.Errorf("Load(%s): %v", name, err)
			}
		})
	}
	t.Run("yaml under a json name", func(t *testing.T) {
		_, err := topology.Load(yaml, "topology.json", nodeagent.FormatOf("topology.json"))
		if err == nil {
			t.Fatal("YAML accepted as JSON")
		}
		if !strings.Contains(err.Error(), "line 1") {
			t.Errorf("message %q does not say where", err)
		}
	})
	t.Run("byte order mark", func(t *testing.T) {
		data := append([]byte("\xef\xbb\xbf"), readTestdata(t, "example.json")...)
		if _, err := topology.Load(data, "bom.json", nodeagent.FormatOf("bom.json")); err != nil {
			t.Errorf("Load with BOM: %v", err)
		}
	})
}
