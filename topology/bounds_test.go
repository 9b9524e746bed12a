package topology_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/topology"
)

// TestLoadRefusesUnsafeInput covers the trust boundary of the document:
// every number has an upper bound named in the message, reserved host
// names and health paths are refused, and no string carries control or
// bidirectional characters or invalid UTF-8 (issue 11).
func TestLoadRefusesUnsafeInput(t *testing.T) {
	example := string(readTestdata(t, "example.json"))
	huge := int64(1) << 62
	tests := []struct {
		name   string
		raw    string
		mutate func(t *testing.T, d doc)
		want   []problem
	}{
		// Numbers: each bound is in the message.
		{name: "php max_children 2^62",
			mutate: func(t *testing.T, d doc) { d.set(t, huge, "products", "shop", "php", "max_children") },
			want:   []problem{{"products.shop.php.max_children", fmt.Sprintf("up to %d, got %d", topology.MaxPHPChildren, huge)}}},
		{name: "php max_children one over",
			mutate: func(t *testing.T, d doc) {
				d.set(t, topology.MaxPHPChildren+1, "products", "shop", "php", "max_children")
			},
			want: []problem{{"products.shop.php.max_children", "up to 4096"}}},
		{name: "memcached max_connections 2^62",
			mutate: func(t *testing.T, d doc) { d.set(t, huge, "roles", "cache", "memcached", "max_connections") },
			want:   []problem{{"roles.cache.memcached.max_connections", "up to 65536"}}},
		{name: "memcached memory_mb one over",
			mutate: func(t *testing.T, d doc) {
				d.set(t, topology.MaxMemcachedMB+1, "roles", "cache", "memcached", "memory_mb")
			},
			want: []problem{{"roles.cache.memcached.memory_mb", "up to 1048576"}}},
		{name: "apache max_request_workers 1e12",
			mutate: func(t *testing.T, d doc) { d.set(t, int64(1e12), "apache", "max_request_workers") },
			want:   []problem{{"apache.max_request_workers", "up to 20000, got 1000000000000"}}},
		{name: "apache port",
			mutate: func(t *testing.T, d doc) { d.set(t, 65536, "apache", "port") },
			want:   []problem{{"apache.port", "from 1 to 65535"}}},
		{name: "database port",
			mutate: func(t *testing.T, d doc) { d.set(t, huge, "products", "shop", "database", "port") },
			want:   []problem{{"products.shop.database.port", "from 1 to 65535"}}},
		{name: "cache port",
			mutate: func(t *testing.T, d doc) { d.set(t, 1<<20, "products", "shop", "cache", "port") },
			want:   []problem{{"products.shop.cache.port", "from 1 to 65535"}}},
		{name: "smoke max_latency_ms",
			mutate: func(t *testing.T, d doc) {
				d.set(t, []any{map[string]any{"name": "home", "path": "/", "max_latency_ms": huge}}, "products", "shop", "smoke")
			},
			want: []problem{{"products.shop.smoke[0].max_latency_ms", "up to 600000"}}},
		{name: "serial above 2^53-1",
			mutate: func(t *testing.T, d doc) { d.set(t, int64(1)<<53, "serial") },
			want:   []problem{{"serial", "from 1 to 9007199254740991"}}},

		// Reserved host names, for nodes and aliases.
		{name: "node named localhost",
			mutate: func(t *testing.T, d doc) {
				d.set(t, map[string]any{"ip": "10.0.9.9", "role": "db"}, "nodes", "localhost")
			},
			want: []problem{{"nodes.localhost", "reserved for this machine's own addresses"}}},
		{name: "alias named ip6-localhost",
			mutate: func(t *testing.T, d doc) { d.set(t, "db-a", "aliases", "ip6-localhost") },
			want:   []problem{{"aliases.ip6-localhost", "reserved"}}},
		{name: "alias named ip6-allnodes",
			mutate: func(t *testing.T, d doc) { d.set(t, "db-a", "aliases", "ip6-allnodes") },
			want:   []problem{{"aliases.ip6-allnodes", "reserved"}}},
		{name: "node named broadcasthost",
			mutate: func(t *testing.T, d doc) {
				d.set(t, map[string]any{"ip": "10.0.9.9", "role": "db"}, "nodes", "broadcasthost")
			},
			want: []problem{{"nodes.broadcasthost", "reserved"}}},
		{name: "domain localhost",
			mutate: func(t *testing.T, d doc) { d.set(t, "fleet.localhost", "domain") },
			want:   []problem{{"domain", "reserved for loopback names"}}},
		{name: "name plus domain over 253 characters",
			mutate: func(t *testing.T, d doc) {
				d.set(t, strings.Repeat(strings.Repeat("d", 60)+".", 3)+strings.Repeat("d", 52), "domain")
				d.set(t, map[string]any{"ip": "10.0.9.9", "role": "db"}, "nodes", strings.Repeat("n", 40))
			},
			want: []problem{
				{"domain", "must be 233 characters at most"},
				{"nodes." + strings.Repeat("n", 40), "is 276 characters; a host name is 253 at most"},
			}},
		{name: "long node name with a domain of allowed length",
			mutate: func(t *testing.T, d doc) {
				d.set(t, strings.Repeat(strings.Repeat("d", 60)+".", 3)+strings.Repeat("d", 49), "domain") // 232
				d.set(t, map[string]any{"ip": "10.0.9.9", "role": "db"}, "nodes", strings.Repeat("n", 40))
			},
			want: []problem{{"nodes." + strings.Repeat("n", 40), "a host name is 253 at most"}}},

		// Control and bidirectional characters, invalid UTF-8.
		{name: "right-to-left override in an env value",
			mutate: func(t *testing.T, d doc) { d.set(t, "prod\u202euction", "products", "shop", "php", "env", "APP_ENV") },
			want:   []problem{{"products.shop.php.env.APP_ENV", "bidirectional controls"}}},
		{name: "isolate in an env value",
			mutate: func(t *testing.T, d doc) { d.set(t, "a\u2066b\u2069", "products", "shop", "php", "env", "APP_ENV") },
			want:   []problem{{"products.shop.php.env.APP_ENV", "bidirectional controls"}}},
		{name: "left-to-right mark in a smoke check's expected text",
			mutate: func(t *testing.T, d doc) {
				d.set(t, []any{map[string]any{"name": "home", "path": "/", "contains": "Wel\u200ecome"}}, "products", "shop", "smoke")
			},
			want: []problem{{"products.shop.smoke[0].contains", "must not contain control characters"}}},
		{name: "DEL in a release url",
			mutate: func(t *testing.T, d doc) {
				d.set(t, "https://releases.example/shop\x7f.tar.gz", "products", "shop", "release", "url")
			},
			want: []problem{{"products.shop.release.url", "control characters"}}},
		{name: "bidi override in a release url",
			mutate: func(t *testing.T, d doc) {
				d.set(t, "https://releases.example/\u202eshop.tar.gz", "products", "shop", "release", "url")
			},
			want: []problem{{"products.shop.release.url", "control characters"}}},
		{name: "invalid utf-8 in a value is refused with its path, not replaced",
			raw:  strings.Replace(example, `"APP_ENV": "production"`, "\"APP_ENV\": \"prod\xffuction\"", 1),
			want: []problem{{"products.shop.php.env.APP_ENV", "invalid UTF-8"}}},
		{name: "invalid utf-8 in a key",
			raw:  strings.Replace(example, `"APP_ENV": "production"`, "\"APP\xc3\": \"production\"", 1),
			want: []problem{{"products.shop.php.env[\"APP\ufffd\"]", "key: invalid UTF-8"}}},
		{name: "lone surrogate escape",
			raw:  strings.Replace(example, `"APP_ENV": "production"`, `"APP_ENV": "prod\ud800"`, 1),
			want: []problem{{"products.shop.php.env.APP_ENV", "lone UTF-16 surrogate"}}},

		// Health paths that belong to someone else.
		{name: "health path /",
			mutate: func(t *testing.T, d doc) { d.set(t, "/", "health", "path") },
			want:   []problem{{"health.path", "would answer every request"}}},
		{name: "health path /server-status",
			mutate: func(t *testing.T, d doc) { d.set(t, "/server-status", "health", "path") },
			want:   []problem{{"health.path", "Require local"}}},
		{name: "health path under /server-info",
			mutate: func(t *testing.T, d doc) { d.set(t, "/server-info/x", "health", "path") },
			want:   []problem{{"health.path", "reserved"}}},
		{name: "health path /.htaccess",
			mutate: func(t *testing.T, d doc) { d.set(t, "/.htaccess", "health", "path") },
			want:   []problem{{"health.path", ".ht* files"}}},
		{name: "health path /.ht",
			mutate: func(t *testing.T, d doc) { d.set(t, "/.ht", "health", "path") },
			want:   []problem{{"health.path", "reserved"}}},
		{name: "health path under the PHP probe",
			mutate: func(t *testing.T, d doc) { d.set(t, "/.nodeagent/php-probe.php", "health", "path") },
			want:   []problem{{"health.path", "PHP probe"}}},
		{name: "health path with a trailing slash",
			mutate: func(t *testing.T, d doc) { d.set(t, "/health/", "health", "path") },
			want:   []problem{{"health.path", "clean path"}}},
		{name: "health path is the directory index",
			mutate: func(t *testing.T, d doc) { d.set(t, "/index.php", "health", "path") },
			want:   []problem{{"health.path", "directory index"}}},
		{name: "health path shadows a smoke-checked page",
			mutate: func(t *testing.T, d doc) {
				d.set(t, "/status", "health", "path")
				d.set(t, []any{map[string]any{"name": "status", "path": "/status/app?x=1"}}, "products", "shop", "smoke")
			},
			want: []problem{{"health.path", "shadows the application's"}}},

		// What apply refused after Load, now refused by Load itself.
		{name: "reserved env key DB_NAME",
			mutate: func(t *testing.T, d doc) { d.set(t, "other", "products", "shop", "php", "env", "DB_NAME") },
			want:   []problem{{"products.shop.php.env.DB_NAME", "reserved: nodeagent sets DB_NAME itself"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.raw)
			if tt.mutate != nil {
				d := exampleDoc(t)
				tt.mutate(t, d)
				data = d.bytes(t)
			}
			_, err := topology.Load(data, "bad.json", nodeagent.FormatOf("bad.json"))
			if err == nil {
				t.Fatal("Load accepted it")
			}
			var errs topology.Errors
			if !asErrors(err, &errs) {
				t.Fatalf("error is not topology.Errors: %v", err)
			}
			assertProblems(t, errs, tt.want)
		})
	}
}

// TestLoadAcceptsBoundsAndText: the bounds themselves, and text that is
// merely not ASCII, are fine.
func TestLoadAcceptsBoundsAndText(t *testing.T) {
	d := exampleDoc(t)
	d.set(t, topology.MaxPHPChildren, "products", "shop", "php", "max_children")
	d.set(t, "café ✓ 日本", "products", "shop", "php", "env", "GREETING")
	d.set(t, topology.MaxMemcachedConnections, "roles", "cache", "memcached", "max_connections")
	d.set(t, topology.MaxMemcachedMB, "roles", "cache", "memcached", "memory_mb")
	d.set(t, topology.MaxApacheWorkers, "apache", "max_request_workers")
	d.set(t, int64(topology.MaxSerial), "serial")
	d.set(t, "/healthz/lb", "health", "path")
	d.set(t, "/server-statusz", "health", "path")
	if _, err := topology.Load(d.bytes(t), "ok.json", nodeagent.FormatOf("ok.json")); err != nil {
		t.Fatalf("Load: %v", err)
	}
}
