package plan_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/plan"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

func TestFormat(t *testing.T) {
	hostsOld := "127.0.0.1\tlocalhost\n# BEGIN nodeagent managed block (do not edit)\n10.0.0.10\tdb-a\n10.0.0.10\tdbserver\n# END nodeagent managed block\n"
	hostsNew := "127.0.0.1\tlocalhost\n# BEGIN nodeagent managed block (do not edit)\n10.0.0.10\tdb-a\n10.0.0.11\tdbserver\n# END nodeagent managed block\n"
	header := nodeagent.Plan{
		Instance:       nodeagent.Instance{ID: "i-0abc123", PrivateIP: "10.0.1.5"},
		Identity:       nodeagent.Identity{Role: "web", Products: []string{"shop", "blog"}, Group: "shop-web", Why: "group shop-web"},
		Serial:         42,
		PreviousSerial: 41,
	}
	full := header
	full.Files = []nodeagent.FileChange{
		{
			File: nodeagent.File{Path: "/etc/apache2/sites-enabled/nodeagent-shop.conf", Mode: 0o644, Services: []string{"apache"},
				Content: []byte(lines(1, 12, map[int]string{3: "ServerName shop2.example.com\n", 11: "Header set X-Node web\n"}))},
			Old: []byte(lines(1, 12, nil)), Existed: true, Reason: "products.shop.server_name changed",
		},
		{
			File: nodeagent.File{Path: "/etc/hosts", Mode: 0o644, Owner: "root", Group: "root", Content: []byte(hostsNew)},
			Old:  []byte(hostsOld), Existed: true, Reason: "aliases.dbserver changed",
		},
		{
			File:   nodeagent.File{Path: "/etc/memcached.conf", Mode: 0o644, Content: []byte("-m 64\n-p 11211\n-l 10.0.1.5")},
			Reason: "new file",
		},
		{
			File: nodeagent.File{Path: "/etc/nodeagent/products/shop.php", Mode: 0o640, Group: "www-data",
				Content: []byte("<?php\nreturn [\n  'db' => '10.0.0.11',\n  'password' => 's3cret',\n];\n")},
			Old: []byte("<?php\nreturn [\n  'db' => '10.0.0.10',\n  'password' => 's3cret',\n];\n"), Existed: true,
			Reason: "aliases.dbserver changed; mode 0644 -> 0640",
		},
		{
			File: nodeagent.File{Path: "/etc/php/8.2/fpm/pool.d/nodeagent-shop.conf", Mode: 0o644, Content: []byte("[shop]\n")},
			Old:  []byte("[shop]\n"), Existed: true, Reason: "owner www-data:www-data -> root:root",
		},
	}
	full.Services = []nodeagent.ServiceAction{
		{Service: "memcached", Unit: "memcached", Kind: nodeagent.ActionStart, Reason: "should run, is stopped"},
		{Service: "apache", Unit: "apache2", Kind: nodeagent.ActionReload, Reason: "/etc/apache2/sites-enabled/nodeagent-shop.conf changed"},
	}
	full.Releases = []nodeagent.ReleaseAction{
		{Product: "shop", From: "2024-05-01", To: "2024-05-02", Download: true, Reason: "products.shop.release.id changed"},
		{Product: "blog", To: "v7", Reason: "not active yet"},
	}
	full.Lifecycle = &nodeagent.LifecycleAction{
		Hook:   nodeagent.LifecycleHook{Group: "shop-web", Hook: "launch", InstanceID: "i-0abc123"},
		Result: nodeagent.LifecycleContinue, Reason: "node is ready",
	}
	first := header
	first.PreviousSerial = 0

	tests := []struct {
		name string
		plan nodeagent.Plan
	}{
		{"full", full},
		{"empty", header},
		{"first_apply_empty", first},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := plan.Format(&b, &tt.plan); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("Format mismatch (go test -update rewrites %s):\n got:\n%s\nwant:\n%s", golden, b.Bytes(), want)
			}
		})
	}
}
