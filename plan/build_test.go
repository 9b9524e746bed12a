package plan_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/hostsfile"
	"github.com/nodeagent/nodeagent/plan"
)

const (
	portsConf = "/etc/apache2/ports.conf"
	shopConf  = "/etc/apache2/sites-enabled/nodeagent-shop.conf"
	shopPHP   = "/etc/nodeagent/products/shop.php"
	mcConf    = "/etc/memcached.conf"
)

var (
	hostEntries = []nodeagent.HostEntry{
		{IP: "10.0.0.10", Names: []string{"db-a", "db-a.shop.internal"}},
		{IP: "10.0.0.10", Names: []string{"dbserver", "dbserver.shop.internal"}},
	}
	baseHosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
)

// me is the user and group the test's files belong to.
func me(t *testing.T) (string, string) {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	return u.Username, g.Name
}

// desired is a web node: apache (checked, reload), php-fpm (checked,
// reload), memcached (restart).
func desired(t *testing.T) *nodeagent.Desired {
	owner, group := me(t)
	return &nodeagent.Desired{
		Identity: nodeagent.Identity{Role: "web", Products: []string{"shop"}, Group: "shop-web", Why: "group shop-web"},
		Files: []nodeagent.File{
			{Path: shopConf, Content: []byte("<VirtualHost *:80>\nServerName shop.example.com\n</VirtualHost>\n"), Mode: 0o644,
				Owner: owner, Group: group, Services: []string{"apache"}, Sources: []string{"products.shop", "health"}},
			{Path: portsConf, Content: []byte("Listen 80\n"), Mode: 0o644,
				Owner: owner, Group: group, Services: []string{"apache"}, Sources: []string{"apache.port", "apache.bind"}},
			{Path: shopPHP, Content: []byte("<?php return ['db' => '10.0.0.10'];\n"), Mode: 0o640,
				Owner: owner, Group: group, Services: []string{"php-fpm"}, Sources: []string{"products.shop.database", "aliases.dbserver", "nodes"}},
			{Path: mcConf, Content: []byte("-m 64\n-p 11211\n"), Mode: 0o644,
				Owner: owner, Group: group, Services: []string{"memcached"}, Sources: []string{"roles.web.memcached"}},
		},
		Hosts: hostEntries,
		Services: []nodeagent.Service{
			{Name: "apache", Unit: "apache2", Reload: nodeagent.ActionReload, Checked: true},
			{Name: "memcached", Unit: "memcached", Reload: nodeagent.ActionRestart},
			{Name: "php-fpm", Unit: "php8.2-fpm", Reload: nodeagent.ActionReload, Checked: true},
		},
	}
}

// converged writes every desired file and the merged hosts file under a new
// root, so that the plan starts empty.
func converged(t *testing.T, d *nodeagent.Desired) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range d.Files {
		write(t, root, f.Path, string(f.Content), f.Mode)
	}
	hosts, _ := hostsfile.Merge([]byte(baseHosts), d.Hosts)
	write(t, root, "/etc/hosts", string(hosts), 0o644)
	writeUserDB(t, root)
	return root
}

// writeUserDB gives the root its own passwd and group (hostfs names owners
// from the root's user database): the test's own user and group, plus
// nobody/nogroup.
func writeUserDB(t *testing.T, root string) {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	owner, group := me(t)
	passwd := fmt.Sprintf("%s:x:%s:%s::/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n", owner, u.Uid, u.Gid)
	groups := fmt.Sprintf("%s:x:%s:\nnogroup:x:65534:\n", group, u.Gid)
	write(t, root, "/etc/passwd", passwd, 0o644)
	write(t, root, "/etc/group", groups, 0o644)
}

func write(t *testing.T, root, p, content string, mode fs.FileMode) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil { // umask-proof
		t.Fatal(err)
	}
}

// fileRow is what a test asserts about a planned file.
type fileRow struct {
	Path    string
	Existed bool
	Mode    fs.FileMode
	Reason  string
}

func rows(p *nodeagent.Plan) []fileRow {
	var out []fileRow
	for _, f := range p.Files {
		out = append(out, fileRow{f.Path, f.Existed, f.Mode, f.Reason})
	}
	return out
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(t *testing.T, root string, d *nodeagent.Desired)
		changes    []string
		prevSerial int64
		stopped    []string
		wantFiles  []fileRow
		wantSvc    []nodeagent.ServiceAction
	}{
		{
			name:       "converged node plans nothing",
			prevSerial: 41,
			changes:    []string{"nodes.db-a.az"}, // a change that touches no file's content
		},
		{
			name: "mode change",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				if err := os.Chmod(filepath.Join(root, shopPHP), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			prevSerial: 41,
			wantFiles:  []fileRow{{shopPHP, true, 0o640, "mode 0644 -> 0640"}},
			wantSvc:    []nodeagent.ServiceAction{{Service: "php-fpm", Unit: "php8.2-fpm", Kind: "reload", Reason: shopPHP + " changed"}},
		},
		{
			name: "new file",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				if err := os.Remove(filepath.Join(root, mcConf)); err != nil {
					t.Fatal(err)
				}
			},
			prevSerial: 41,
			wantFiles:  []fileRow{{mcConf, false, 0o644, "new file"}},
			wantSvc:    []nodeagent.ServiceAction{{Service: "memcached", Unit: "memcached", Kind: "restart", Reason: mcConf + " changed"}},
		},
		{
			name: "hand-edited file",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				write(t, root, portsConf, "Listen 8080\n", 0o644)
			},
			prevSerial: 41,
			changes:    []string{"products.shop.release.id"},
			wantFiles:  []fileRow{{portsConf, true, 0o644, "differs from desired (edited on the host?)"}},
			wantSvc:    []nodeagent.ServiceAction{{Service: "apache", Unit: "apache2", Kind: "reload", Reason: portsConf + " changed"}},
		},
		{
			name: "first apply over distro defaults",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				write(t, root, portsConf, "Listen 80\nListen 443\n", 0o644)
			},
			wantFiles: []fileRow{{portsConf, true, 0o644, "differs from desired"}},
			wantSvc:   []nodeagent.ServiceAction{{Service: "apache", Unit: "apache2", Kind: "reload", Reason: portsConf + " changed"}},
		},
		{
			name: "topology changes explain the files they feed",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				d.Files[0].Content = []byte("<VirtualHost *:80>\nServerName shop2.example.com\n</VirtualHost>\n")
				d.Files[2].Content = []byte("<?php return ['db' => '10.0.0.11'];\n")
				d.Hosts = []nodeagent.HostEntry{
					{IP: "10.0.0.10", Names: []string{"db-a", "db-a.shop.internal"}},
					{IP: "10.0.0.11", Names: []string{"dbserver", "dbserver.shop.internal"}},
				}
			},
			prevSerial: 41,
			changes:    []string{"aliases.dbserver", "products.shop.server_name", "products.shopping.server_name", "roles.web.products"},
			wantFiles: []fileRow{
				{shopConf, true, 0o644, "products.shop.server_name changed"},
				{"/etc/hosts", true, 0o644, "aliases.dbserver changed"},
				{shopPHP, true, 0o640, "aliases.dbserver changed"},
			},
			wantSvc: []nodeagent.ServiceAction{
				{Service: "apache", Unit: "apache2", Kind: "reload", Reason: shopConf + " changed"},
				{Service: "php-fpm", Unit: "php8.2-fpm", Kind: "reload", Reason: shopPHP + " changed"},
			},
		},
		{
			name: "a removed node entry explains a file fed by one of its fields",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				d.Files[2].Sources = []string{"nodes.db-b.ip"}
				d.Files[2].Content = []byte("<?php return ['db' => '10.0.0.10', 'replicas' => []];\n")
			},
			prevSerial: 41,
			changes:    []string{"nodes.db-b"},
			wantFiles:  []fileRow{{shopPHP, true, 0o640, "nodes.db-b changed"}},
			wantSvc:    []nodeagent.ServiceAction{{Service: "php-fpm", Unit: "php8.2-fpm", Kind: "reload", Reason: shopPHP + " changed"}},
		},
		{
			name: "content, mode and owner all differ",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				write(t, root, shopPHP, "<?php return [];\n", 0o644)
				d.Files[2].Owner, d.Files[2].Group = "nobody", "nogroup"
			},
			prevSerial: 41,
			changes:    []string{"products.shop.database.master"},
			wantFiles: []fileRow{{shopPHP, true, 0o640, "products.shop.database.master changed; mode 0644 -> 0640; owner " +
				strings.Join(mustMe(t), ":") + " -> nobody:nogroup"}},
			wantSvc: []nodeagent.ServiceAction{{Service: "php-fpm", Unit: "php8.2-fpm", Kind: "reload", Reason: shopPHP + " changed"}},
		},
		{
			name:       "stopped service starts with no file change",
			prevSerial: 41,
			stopped:    []string{"memcached"},
			wantSvc:    []nodeagent.ServiceAction{{Service: "memcached", Unit: "memcached", Kind: "start", Reason: "should run, is stopped"}},
		},
		{
			name: "stopped service with changed files is started, not reloaded; starts come first",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				write(t, root, portsConf, "Listen 81\n", 0o644)
				write(t, root, mcConf, "-m 32\n", 0o644)
			},
			prevSerial: 41,
			changes:    []string{"apache.port"},
			stopped:    []string{"php8.2-fpm", "apache2"},
			wantFiles: []fileRow{
				{portsConf, true, 0o644, "apache.port changed"},
				{mcConf, true, 0o644, "differs from desired (edited on the host?)"},
			},
			wantSvc: []nodeagent.ServiceAction{
				{Service: "apache", Unit: "apache2", Kind: "start", Reason: "should run, is stopped"},
				{Service: "php-fpm", Unit: "php8.2-fpm", Kind: "start", Reason: "should run, is stopped"},
				{Service: "memcached", Unit: "memcached", Kind: "restart", Reason: mcConf + " changed"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := desired(t)
			root := converged(t, d)
			if tt.edit != nil {
				tt.edit(t, root, d)
			}
			svc := &fakeServices{ActiveFunc: stopped(tt.stopped...)}
			p, err := plan.Build(context.Background(), plan.Input{
				Desired: d, Instance: nodeagent.Instance{ID: "i-0abc"}, FS: hostfs.FS{Root: root},
				Services: svc, Changes: tt.changes, Serial: 42, PreviousSerial: tt.prevSerial,
			})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if diff := cmp.Diff(tt.wantFiles, rows(p)); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSvc, p.Services); diff != "" {
				t.Errorf("services (-want +got):\n%s", diff)
			}
			if p.Empty() != (len(tt.wantFiles) == 0 && len(tt.wantSvc) == 0) {
				t.Errorf("Empty() = %v", p.Empty())
			}
			if p.Serial != 42 || p.PreviousSerial != tt.prevSerial || p.Identity.Role != "web" || p.Instance.ID != "i-0abc" {
				t.Errorf("header = serial %d prev %d identity %+v instance %+v", p.Serial, p.PreviousSerial, p.Identity, p.Instance)
			}
			// Planning reads only: the disk is as the case left it.
			for _, f := range p.Files {
				b, err := os.ReadFile(filepath.Join(root, f.Path))
				if f.Existed && (err != nil || string(b) != string(f.Old)) {
					t.Errorf("%s changed on disk during planning (%v)", f.Path, err)
				}
				if !f.Existed && !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s created during planning", f.Path)
				}
			}
		})
	}
}

func mustMe(t *testing.T) []string {
	o, g := me(t)
	return []string{o, g}
}

func TestBuildHostsKeepsForeignLines(t *testing.T) {
	d := desired(t)
	root := converged(t, d)
	foreign := "127.0.0.1 localhost\n# added by hand\n192.168.1.5   printer printer.lan\n"
	write(t, root, "/etc/hosts", foreign, 0o600)

	p, err := plan.Build(context.Background(), plan.Input{Desired: d, FS: hostfs.FS{Root: root}, Services: &fakeServices{}, Serial: 2, PreviousSerial: 1})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hostsfile.Merge([]byte(foreign), hostEntries)
	if diff := cmp.Diff([]fileRow{{"/etc/hosts", true, 0o600, "managed block missing (edited on the host?)"}}, rows(p)); diff != "" {
		t.Fatalf("files (-want +got):\n%s", diff)
	}
	got := p.Files[0]
	if string(got.Content) != string(want) || !strings.HasPrefix(string(got.Content), foreign) {
		t.Errorf("hosts content = %q, want the foreign lines kept byte for byte, then the block", got.Content)
	}
	if string(got.Old) != foreign || len(got.Services) != 0 || len(p.Services) != 0 {
		t.Errorf("Old = %q, Services = %v, actions = %v", got.Old, got.Services, p.Services)
	}
}

func TestBuildMissingHostsFile(t *testing.T) {
	d := desired(t)
	root := converged(t, d)
	if err := os.Remove(filepath.Join(root, "etc/hosts")); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(context.Background(), plan.Input{Desired: d, FS: hostfs.FS{Root: root}, Services: &fakeServices{}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]fileRow{{"/etc/hosts", false, 0o644, "new file"}}, rows(p)); diff != "" {
		t.Fatalf("files (-want +got):\n%s", diff)
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, root string, d *nodeagent.Desired)
		svc  *fakeServices
		want []string
	}{
		{
			name: "hosts as a whole file",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				d.Files = append(d.Files, nodeagent.File{Path: "/etc/hosts", Content: []byte("x\n")})
			},
			want: []string{"plan: /etc/hosts", "Desired.Hosts"},
		},
		{
			name: "duplicate path",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) { d.Files = append(d.Files, d.Files[0]) },
			want: []string{"plan: " + shopConf, "desired twice"},
		},
		{
			name: "symlink is not replaced",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				p := filepath.Join(root, portsConf)
				if err := errors.Join(os.Remove(p), os.Symlink("/etc/elsewhere.conf", p)); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"plan: " + portsConf, "is a symlink, not a regular file"},
		},
		// The files are read concurrently; the error is still the first
		// in file order.
		{
			name: "first of many failures",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				symlink(t, root, portsConf)
				for i := range 40 {
					p := fmt.Sprintf("/etc/nodeagent/many/%02d.conf", i)
					symlink(t, root, p)
					d.Files = append(d.Files, nodeagent.File{Path: p, Content: []byte("x\n")})
				}
			},
			want: []string{"plan: " + portsConf, "is a symlink, not a regular file"},
		},
		{
			name: "failure before a duplicate",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				symlink(t, root, portsConf)
				d.Files = append(d.Files, d.Files[0])
			},
			want: []string{"plan: " + portsConf, "is a symlink, not a regular file"},
		},
		{
			name: "duplicate before a failure",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				d.Files = append(d.Files, d.Files[0])
				symlink(t, root, "/etc/nodeagent/late.conf")
				d.Files = append(d.Files, nodeagent.File{Path: "/etc/nodeagent/late.conf", Content: []byte("x\n")})
			},
			want: []string{"plan: " + shopConf, "desired twice"},
		},
		{
			name: "hosts file fails after the files",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) {
				symlink(t, root, "/etc/hosts")
				symlink(t, root, portsConf)
			},
			want: []string{"plan: " + portsConf, "is a symlink, not a regular file"},
		},
		{
			name: "hosts file is not replaced",
			edit: func(t *testing.T, root string, d *nodeagent.Desired) { symlink(t, root, "/etc/hosts") },
			want: []string{"plan: /etc/hosts", "is a symlink, not a regular file"},
		},
		{
			name: "service state unknown",
			svc: &fakeServices{ActiveFunc: func(context.Context, string) (bool, error) {
				return false, errors.New("dbus: connection refused")
			}},
			want: []string{"plan: is apache (apache2) running", "connection refused"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := desired(t)
			root := converged(t, d)
			if tt.edit != nil {
				tt.edit(t, root, d)
			}
			svc := tt.svc
			if svc == nil {
				svc = &fakeServices{}
			}
			_, err := plan.Build(context.Background(), plan.Input{Desired: d, FS: hostfs.FS{Root: root}, Services: svc})
			if err == nil {
				t.Fatal("Build succeeded")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %q, want it to contain %q", err, s)
				}
			}
		})
	}
}

// symlink puts a symlink at host path p under root, replacing what is
// there.
func symlink(t *testing.T, root, p string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/elsewhere.conf", full); err != nil {
		t.Fatal(err)
	}
}
