//go:build integration

package e2e_test

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// converge makes a fleet with release r and converges its cache node and
// a web node of the shop-web group.
func converge(t *testing.T, r release) (f *fleet, cache, web *node) {
	t.Helper()
	f = newFleet(t, r)
	cache = f.newNode(t, "cache-1", 20, "")
	cache.mustApply(t)
	web = f.newNode(t, "web", 10, webGroup)
	web.mustApply(t)
	return f, cache, web
}

// checkConfigs runs the real config checkers on the node's tree.
func checkConfigs(t *testing.T, n *node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	apache := exec.CommandContext(ctx, "/usr/sbin/apache2ctl", "-t")
	apache.Env = append(os.Environ(), "APACHE_CONFDIR="+n.path("etc/apache2"))
	if out, err := apache.CombinedOutput(); err != nil {
		t.Errorf("apache2ctl -t refuses the rendered tree: %v\n%s", err, out)
	}
	ver := n.phpVersion(t)
	fpm := exec.CommandContext(ctx, "/usr/sbin/php-fpm"+ver, "-t", "-y", n.path("etc/php/"+ver+"/fpm/php-fpm.conf"))
	if out, err := fpm.CombinedOutput(); err != nil {
		t.Errorf("php-fpm%s -t refuses the rendered tree: %v\n%s", ver, err, out)
	}
}

var storedRE = regexp.MustCompile(`stored (e2e-[0-9a-f]+)=(value-[0-9a-f]+)`)

// checkServes proves the request path Apache -> PHP-FPM -> memcached: the
// home page stores a key through PHP's memcached client, and the test
// reads that key from the cache node's memcached directly.
func checkServes(t *testing.T, web, cache *node) {
	t.Helper()
	body := eventually(t, 15*time.Second, web.apacheURL("/"), serverName, 200, "Welcome")
	m := storedRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("home page does not report a stored key:\n%s", body)
	}
	addr := cache.ip + ":" + itoa(web.fleet.memcachedPort)
	got, ok, err := memcachedGet(addr, m[1])
	if err != nil || !ok || got != m[2] {
		t.Errorf("memcached at %s: get %s = %q, %t, %v; want %q (the value PHP stored through Apache)", addr, m[1], got, ok, err, m[2])
	}
	if !strings.Contains(body, "session handler memcached") {
		t.Errorf("sessions are not in memcached:\n%s", body)
	}
	// The session servers are names; the node's /etc/hosts must resolve each
	// to the cache node.
	pm := regexp.MustCompile(`session path (\S+)`).FindStringSubmatch(body)
	if pm == nil {
		t.Fatalf("home page does not report the session path:\n%s", body)
	}
	hosts, err := os.ReadFile(web.path("etc/hosts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, server := range strings.Split(pm[1], ",") {
		name, port, _ := strings.Cut(server, ":")
		if port != itoa(web.fleet.memcachedPort) {
			t.Errorf("session server %s: want port %d", server, web.fleet.memcachedPort)
		}
		if name != cache.ip && !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(cache.ip)+`\s.*\b`+regexp.QuoteMeta(name)+`\b`).Match(hosts) {
			t.Errorf("session server %s does not resolve to the cache node %s in the node's /etc/hosts:\n%s", server, cache.ip, hosts)
		}
	}
}

func TestCoreApply(t *testing.T) {
	r1 := buildRelease(t, "shop", "2026.01.01-1")
	f, cache, web := converge(t, r1)
	ver := web.phpVersion(t)
	phpUnit := "php" + ver + "-fpm"

	t.Run("converged node serves through real Apache, PHP-FPM and memcached", func(t *testing.T) {
		checkConfigs(t, web)
		for _, tc := range []struct {
			n    *node
			unit string
		}{{web, "apache2"}, {web, phpUnit}, {cache, "memcached"}} {
			if tc.n.pid(t, tc.unit) == 0 {
				t.Errorf("%s is not running on %s", tc.unit, tc.n.name)
			}
		}
		for _, rel := range []string{
			"etc/apache2/ports.conf",
			"etc/apache2/sites-enabled/nodeagent-shop.conf",
			"etc/php/" + ver + "/fpm/pool.d/nodeagent-shop.conf",
			"etc/nodeagent/products/shop.php",
		} {
			b, err := os.ReadFile(web.path(rel))
			if err != nil {
				t.Errorf("web node lacks %s: %v", rel, err)
				continue
			}
			if !strings.Contains(string(b), "Managed by nodeagent") {
				t.Errorf("%s is not nodeagent's:\n%s", rel, b)
			}
		}
		ports, _ := os.ReadFile(web.path("etc/apache2/ports.conf"))
		if want := "Listen " + web.ip + ":" + itoa(f.apachePort); !strings.Contains(string(ports), want) {
			t.Errorf("ports.conf lacks %q:\n%s", want, ports)
		}
		mc, _ := os.ReadFile(cache.path("etc/memcached.conf"))
		if !strings.Contains(string(mc), cache.ip) || !strings.Contains(string(mc), itoa(f.memcachedPort)) {
			t.Errorf("memcached.conf does not listen on %s:%d:\n%s", cache.ip, f.memcachedPort, mc)
		}
		checkServes(t, web, cache)
		body := eventually(t, 10*time.Second, web.apacheURL("/db.php"), serverName, 200, "master db-a")
		if !strings.Contains(body, f.doc.Nodes["db-a"].IP+":3306") {
			t.Errorf("db.php does not show db-a's address:\n%s", body)
		}
		// The PHP probe the smoke check uses answers through the pool.
		eventually(t, 10*time.Second, web.apacheURL("/.nodeagent/php-probe.php"), serverName, 200, "nodeagent-php-ok")
	})

	t.Run("second apply changes nothing", func(t *testing.T) {
		before := snapshot(t, web.root)
		pids := map[string]int{"apache2": web.pid(t, "apache2"), phpUnit: web.pid(t, phpUnit)}
		calls := len(web.execCalls(t))

		dry := web.agent(t, "apply", "--dry-run")
		if dry.code != 0 {
			t.Fatalf("dry run failed:\n%s", dry)
		}
		if !strings.Contains(dry.stdout, "\nno changes\n") {
			t.Errorf("dry run of a converged node does not say \"no changes\":\n%s", dry.stdout)
		}
		web.mustApply(t)

		after := snapshot(t, web.root)
		// The state dir's bookkeeping (applied.json with its timestamp, the
		// last-good copy, the ELB health file) may be rewritten; every
		// config, release and probe file must be left alone.
		if diff := withoutPrefix(changed(before, after, true), bookkeeping...); len(diff) > 0 {
			t.Errorf("second apply touched files: %v", diff)
		}
		if diff := withoutPrefix(changed(before, after, true)); len(diff) > 0 {
			t.Logf("state dir bookkeeping rewritten by the second apply: %v", diff)
		}
		for unit, pid := range pids {
			if now := web.pid(t, unit); now != pid {
				t.Errorf("%s pid %d -> %d: restarted by an apply that had nothing to do", unit, pid, now)
			}
		}
		if got := web.execCalls(t)[calls:]; len(got) > 0 {
			t.Errorf("second apply ran service commands %v, want none", got)
		}
	})

	t.Run("database master moves: hosts and app config change, php-fpm reloads", func(t *testing.T) {
		f.doc.Aliases["dbserver"] = "db-b"
		f.publish(t)

		dry := web.agent(t, "apply", "--dry-run")
		if dry.code != 0 {
			t.Fatalf("dry run failed:\n%s", dry)
		}
		files := planFiles(dry.stdout)
		want := []string{"/etc/hosts", "/etc/nodeagent/products/shop.php"}
		if !slices.Equal(slices.Sorted(maps.Keys(files)), want) {
			t.Errorf("dry run plans files %v, want exactly %v:\n%s", slices.Sorted(maps.Keys(files)), want, dry.stdout)
		}
		for path, reason := range files {
			if !strings.Contains(reason, "aliases.dbserver") {
				t.Errorf("reason for %s does not name aliases.dbserver: %q", path, reason)
			}
		}
		if !regexp.MustCompile(`(?m)^-.*`+regexp.QuoteMeta(f.doc.Nodes["db-a"].IP)).MatchString(dry.stdout) ||
			!regexp.MustCompile(`(?m)^\+.*`+regexp.QuoteMeta(f.doc.Nodes["db-b"].IP)).MatchString(dry.stdout) {
			t.Errorf("dry run diff does not move the master from db-a's to db-b's address:\n%s", dry.stdout)
		}
		services := planServices(dry.stdout)
		if !slices.Equal(services, []string{"reload php-fpm (" + phpUnit + ")"}) {
			t.Errorf("dry run service actions %q, want only the php-fpm reload:\n%s", services, dry.stdout)
		}

		before := snapshot(t, web.root)
		calls := len(web.execCalls(t))
		apachePid := web.pid(t, "apache2")
		web.mustApply(t)
		after := snapshot(t, web.root)
		diff := withoutPrefix(changed(before, after, true), bookkeeping...)
		if want := []string{"~etc/hosts", "~etc/nodeagent/products/shop.php"}; !slices.Equal(diff, want) {
			t.Errorf("apply changed %v, want exactly %v", diff, want)
		}
		if got := web.execCalls(t)[calls:]; !slices.Equal(got, []string{phpUnit + " reload"}) {
			t.Errorf("apply ran service commands %v, want exactly [%s reload]", got, phpUnit)
		}
		if now := web.pid(t, "apache2"); now != apachePid {
			t.Errorf("apache2 pid %d -> %d: restarted though none of its files changed", apachePid, now)
		}
		hosts, _ := os.ReadFile(web.path("etc/hosts"))
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(f.doc.Nodes["db-b"].IP) + `\s.*\bdbserver\b`).Match(hosts) {
			t.Errorf("/etc/hosts does not point dbserver at db-b:\n%s", hosts)
		}
		body := eventually(t, 15*time.Second, web.apacheURL("/db.php"), serverName, 200, "master db-b")
		if !strings.Contains(body, f.doc.Nodes["db-b"].IP+":3306") {
			t.Errorf("db.php does not show db-b's address:\n%s", body)
		}
		checkServes(t, web, cache)
	})
}

// bookkeeping are the state dir files an apply may rewrite even when it
// changes nothing on the node.
var bookkeeping = []string{stateDir + "/applied.json", stateDir + "/topology.json", stateDir + "/health/ready"}

// planFiles parses plan.Format output: file path -> reason.
func planFiles(out string) map[string]string {
	files := map[string]string{}
	re := regexp.MustCompile(`(?m)^[~+] (/\S+) \(mode [^)]*\): (.*)$`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		files[m[1]] = m[2]
	}
	return files
}

// planServices parses plan.Format output: "reload php-fpm (php8.2-fpm)".
func planServices(out string) []string {
	_, rest, ok := strings.Cut(out, "\nservices:\n")
	if !ok {
		return nil
	}
	var list []string
	for _, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		action, _, _ := strings.Cut(strings.TrimSpace(line), ":")
		list = append(list, action)
	}
	return list
}

// fileBytes reads the node's managed files for byte-for-byte comparisons.
func fileBytes(t *testing.T, n *node, rels ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, rel := range rels {
		b, err := os.ReadFile(filepath.Join(n.root, rel))
		if err != nil {
			t.Fatalf("read %s: %v", rel, err)
		}
		out[rel] = string(b)
	}
	return out
}
