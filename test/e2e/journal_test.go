//go:build integration

package e2e_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// armTrap makes the agent die with SIGKILL at unit's action: "before" as
// the action starts (it does not happen), "after" once it is done (the
// agent never hears so). See wrapMain.
func (n *node) armTrap(t *testing.T, unit, action, when string) {
	t.Helper()
	if err := os.WriteFile(n.execLog+trapSuffix, []byte(unit+" "+action+" "+when+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mustBeKilled runs `nodeagent apply` that an armed trap kills.
func (n *node) mustBeKilled(t *testing.T) {
	t.Helper()
	r := n.agent(t, "apply")
	if r.code != 137 {
		t.Fatalf("apply with an armed trap: exit %d, want 137 (SIGKILL)\n%s", r.code, r)
	}
	if _, err := os.Stat(n.execLog + trapSuffix); err == nil {
		t.Fatal("the trap was not sprung")
	}
}

// setExec rewrites unit's exec command for action in the node's agent
// config (nil restores the harness's).
func (n *node) setExec(t *testing.T, unit, action string, argv []string) {
	t.Helper()
	b, err := os.ReadFile(n.config)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	execCfg := wrapCommands(t, n.root, n.execLog)
	u := execCfg[unit]
	if argv != nil {
		cmd := u.Reload
		cmd.Argv, cmd.Env = argv, nil
		if action != "reload" {
			t.Fatalf("setExec: only reload")
		}
	}
	execCfg[unit] = u
	cfg["exec"] = execCfg
	b, err = json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.config, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *node) journalLeft() bool {
	_, err := os.Stat(n.path(stateDir + "/apply.json"))
	return !errors.Is(err, os.ErrNotExist)
}

// editShop changes the shop product of the fleet's document.
func (f *fleet) editShop(edit func(p *productEdit)) {
	p := f.doc.Products[product]
	e := productEdit{aliases: p.ServerAliases, env: map[string]string{}}
	for k, v := range p.PHP.Env {
		e.env[k] = v
	}
	edit(&e)
	p.ServerAliases, p.PHP.Env = e.aliases, e.env
	f.doc.Products[product] = p
}

type productEdit struct {
	aliases []string
	env     map[string]string
}

// TestInterruptedApply kills the agent at each step of an apply (with
// SIGKILL, as a crash or the OOM killer would) and checks that the next
// apply converges what the services run, not only the files: Apache answers
// for a new alias, PHP-FPM shows the new environment and release.
func TestInterruptedApply(t *testing.T) {
	r1 := buildRelease(t, "shop", "2026.05.01-1")
	r2 := buildRelease(t, "shop", "2026.05.02-1")
	f, _, web := converge(t, r1)
	f.putRelease(t, r2)
	phpUnit := "php" + web.phpVersion(t) + "-fpm"
	envURL := web.apacheURL("/env.php")
	eventually(t, 15*time.Second, envURL, serverName, 200, "env e2e\n")

	t.Run("killed between the files and the reload", func(t *testing.T) {
		f.editShop(func(p *productEdit) {
			p.aliases = append(p.aliases, "new.shop.example")
			p.env["APP_ENV"] = "e2e-files"
		})
		f.publish(t)
		web.armTrap(t, "apache2", "reload", "before")
		web.mustBeKilled(t)
		// The new files are on disk and checked; nothing was reloaded.
		if code, _, _, _ := httpGet(web.apacheURL("/"), "new.shop.example"); code != 404 {
			t.Errorf("new alias answers %d before any reload, want 404 from the catch-all", code)
		}
		if !web.journalLeft() {
			t.Error("the killed apply left no journal")
		}

		dry := web.agent(t, "apply", "--dry-run")
		if dry.code != 0 {
			t.Fatalf("dry run failed:\n%s", dry)
		}
		services := planServices(dry.stdout)
		for _, want := range []string{"reload apache (apache2)", "reload php-fpm (" + phpUnit + ")"} {
			if !slices.Contains(services, want) {
				t.Errorf("dry run services %q lack %q:\n%s", services, want, dry.stdout)
			}
		}
		if !strings.Contains(dry.stdout, "owed by an interrupted apply") {
			t.Errorf("dry run does not say the actions are owed by an interrupted apply:\n%s", dry.stdout)
		}

		calls := len(web.execCalls(t))
		web.mustApply(t)
		if got := web.execCalls(t)[calls:]; !slices.Equal(got, []string{"apache2 reload", phpUnit + " reload"}) {
			t.Errorf("the next apply ran %v, want the two owed reloads", got)
		}
		eventually(t, 15*time.Second, web.apacheURL("/"), "new.shop.example", 200, "Welcome")
		eventually(t, 15*time.Second, envURL, serverName, 200, "env e2e-files\n")
		if web.journalLeft() {
			t.Error("journal still there after the apply converged")
		}
		if st, r := web.status(t); !st.Ready || st.Serial != f.doc.Serial || len(st.Owed) > 0 {
			t.Errorf("status %+v, want ready at serial %d with nothing owed\n%s", st, f.doc.Serial, r)
		}
	})

	t.Run("killed between the reload and the smoke checks", func(t *testing.T) {
		f.editShop(func(p *productEdit) { p.env["APP_ENV"] = "e2e-smoke" })
		f.publish(t)
		// PHP-FPM reloads, and the agent dies before it records that.
		web.armTrap(t, phpUnit, "reload", "after")
		web.mustBeKilled(t)
		eventually(t, 15*time.Second, envURL, serverName, 200, "env e2e-smoke\n")
		if st, _ := web.status(t); st.Serial == f.doc.Serial {
			t.Fatalf("status says serial %d applied, though no smoke check ran", st.Serial)
		}

		calls := len(web.execCalls(t))
		web.mustApply(t)
		// The reload is owed until recorded: done again, harmlessly.
		if got := web.execCalls(t)[calls:]; !slices.Equal(got, []string{phpUnit + " reload"}) {
			t.Errorf("the next apply ran %v, want the owed php-fpm reload", got)
		}
		eventually(t, 15*time.Second, envURL, serverName, 200, "env e2e-smoke\n")
		if st, r := web.status(t); !st.Ready || st.Serial != f.doc.Serial || len(st.Owed) > 0 {
			t.Errorf("status %+v, want ready at serial %d with nothing owed\n%s", st, f.doc.Serial, r)
		}
	})

	t.Run("killed during the release switch", func(t *testing.T) {
		f.setRelease(r2)
		f.publish(t)
		// current is switched; the agent dies as PHP-FPM's reload for the
		// new release starts.
		web.armTrap(t, phpUnit, "reload", "before")
		web.mustBeKilled(t)
		if got := web.currentRelease(t); got != "releases/"+r2.id {
			t.Fatalf("current -> %s, want the switch to %s done before the kill", got, r2.id)
		}
		dry := web.agent(t, "apply", "--dry-run")
		if !slices.Contains(planServices(dry.stdout), "reload php-fpm ("+phpUnit+")") || !strings.Contains(dry.stdout, "owed by an interrupted apply") {
			t.Errorf("dry run does not owe the php-fpm reload of the release switch:\n%s", dry)
		}

		calls := len(web.execCalls(t))
		web.mustApply(t)
		if got := web.execCalls(t)[calls:]; !slices.Equal(got, []string{phpUnit + " reload"}) {
			t.Errorf("the next apply ran %v, want the owed php-fpm reload", got)
		}
		eventually(t, 15*time.Second, envURL, serverName, 200, "release "+r2.id+"\n")
		if st, r := web.status(t); !st.Ready || st.Serial != f.doc.Serial || st.Release[product] != r2.id {
			t.Errorf("status %+v, want ready at serial %d on release %s\n%s", st, f.doc.Serial, r2.id, r)
		}
	})

	t.Run("killed before the smoke checks of a broken release", func(t *testing.T) {
		applied := f.doc.Serial
		broken := buildRelease(t, "shop-broken", "2026.05.03-1")
		f.putRelease(t, broken)
		f.setRelease(broken)
		f.publish(t)
		// The switch and PHP-FPM's reload happen; the agent dies before
		// its smoke checks would have failed.
		web.armTrap(t, phpUnit, "reload", "after")
		web.mustBeKilled(t)
		eventually(t, 15*time.Second, web.apacheURL("/"), serverName, 500, "database connection failed")

		// The next apply finishes the dead one, and its smoke checks judge
		// it: they fail, and the undo goes back to the release that passed.
		r := web.agent(t, "apply", "--smoke-deadline", "3s")
		if r.code != 1 {
			t.Fatalf("apply after the kill, broken release still wanted: exit %d, want 1\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, "switched back to release "+r2.id) {
			t.Errorf("apply does not say it switched back to %s:\n%s", r2.id, r.stderr)
		}
		if got := web.currentRelease(t); got != "releases/"+r2.id {
			t.Errorf("current -> %s, want releases/%s", got, r2.id)
		}
		eventually(t, 15*time.Second, web.apacheURL("/"), serverName, 200, "Welcome")
		eventually(t, 15*time.Second, envURL, serverName, 200, "release "+r2.id+"\n")
		if st, sr := web.status(t); !st.Ready || st.Serial != applied || len(st.Owed) > 0 {
			t.Errorf("status %+v, want ready at serial %d with nothing owed\n%s", st, applied, sr)
		}
		if web.journalLeft() {
			t.Error("journal still there after the undo")
		}

		f.setRelease(r2)
		f.publish(t)
		web.mustApply(t)
	})

	t.Run("failing php-fpm reload is undone and stays owed until it works", func(t *testing.T) {
		applied := f.doc.Serial
		oldEnv := f.doc.Products[product].PHP.Env["APP_ENV"]
		poolFile := web.path("etc/php/" + web.phpVersion(t) + "/fpm/pool.d/nodeagent-shop.conf")
		oldPool, err := os.ReadFile(poolFile)
		if err != nil {
			t.Fatal(err)
		}
		f.editShop(func(p *productEdit) { p.env["APP_ENV"] = "e2e-reload" })
		f.publish(t)
		web.setExec(t, phpUnit, "reload", []string{"/bin/sh", "-c", "echo php-fpm reload refused >&2; exit 1"})
		r := web.agent(t, "apply")
		if r.code != 1 {
			t.Fatalf("apply with a failing reload: exit %d, want 1\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, "php-fpm reload refused") || !strings.Contains(r.stderr, "still owed") {
			t.Errorf("apply does not report the failed reload and what is still owed:\n%s", r.stderr)
		}
		// The previous files are back, PHP-FPM never loaded the new ones,
		// and the node says so: serial not applied, reload owed.
		if now, _ := os.ReadFile(poolFile); string(now) != string(oldPool) {
			t.Errorf("pool file after the undo:\n%s\nwant the previous one:\n%s", now, oldPool)
		}
		eventually(t, 15*time.Second, envURL, serverName, 200, "env "+oldEnv+"\n")
		st, sr := web.status(t)
		if st.Serial != applied || !slices.Contains(st.Owed, "reload php-fpm ("+phpUnit+")") {
			t.Errorf("status %+v, want serial %d applied and the php-fpm reload owed\n%s", st, applied, sr)
		}
		if !st.Ready {
			t.Errorf("a failed push made the serving node unready: %+v", st)
		}

		// Fixed: the next apply does the owed reload, then the new apply.
		web.setExec(t, phpUnit, "reload", nil)
		web.mustApply(t)
		eventually(t, 15*time.Second, envURL, serverName, 200, "env e2e-reload\n")
		if st, r := web.status(t); !st.Ready || st.Serial != f.doc.Serial || len(st.Owed) > 0 {
			t.Errorf("status %+v, want ready at serial %d with nothing owed\n%s", st, f.doc.Serial, r)
		}
		if web.journalLeft() {
			t.Error("journal still there after the apply converged")
		}
	})

	t.Run("SIGTERM between the files and the reload is caught and undone", func(t *testing.T) {
		// apply catches signals only once it has something to change
		// (agent.Agent.BeforeChange); a stop asked while it changes the
		// node must still wind the apply down, not end the process.
		applied := f.doc.Serial
		f.editShop(func(p *productEdit) { p.aliases = append(p.aliases, "term.shop.example") })
		f.publish(t)
		web.armTrap(t, "apache2", "reload", "term")
		r := web.agent(t, "apply")
		if _, err := os.Stat(web.execLog + trapSuffix); err == nil {
			t.Fatal("the trap was not sprung")
		}
		if r.code != 1 {
			t.Fatalf("apply stopped with SIGTERM while changing the node: exit %d, want 1 (the signal caught, the apply wound down)\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, "undone: put back") || !strings.Contains(r.stderr, "stopped (terminated signal received)") {
			t.Errorf("apply does not say it was stopped by the signal and undid its change:\n%s", r.stderr)
		}
		// Wound down: the change undone from the journal, Apache back on
		// the previous config, nothing owed, still serving.
		eventually(t, 15*time.Second, web.apacheURL("/"), serverName, 200, "Welcome")
		if code, _, _, _ := httpGet(web.apacheURL("/"), "term.shop.example"); code != 404 {
			t.Errorf("the alias of the stopped apply answers %d, want 404 from the catch-all", code)
		}
		if web.journalLeft() {
			t.Error("the stopped apply left its journal")
		}
		if st, sr := web.status(t); !st.Ready || st.Serial != applied || len(st.Owed) > 0 {
			t.Errorf("status %+v, want ready at serial %d with nothing owed\n%s", st, applied, sr)
		}

		web.mustApply(t)
		eventually(t, 15*time.Second, web.apacheURL("/"), "term.shop.example", 200, "Welcome")
	})

	t.Run("same serial with different content is refused", func(t *testing.T) {
		good := topologyJSON(t, f.doc)
		edited := f.doc
		edited.Aliases = map[string]string{"dbserver": "db-b", "replserver": "db-a"}
		f.putTopology(t, topologyJSON(t, edited))
		defer f.putTopology(t, good)
		before := snapshot(t, web.root)
		r := web.agent(t, "apply")
		if r.code != 1 {
			t.Fatalf("apply of a changed document with the same serial: exit %d, want 1\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, "bump the serial") || !strings.Contains(r.stderr, "aliases.dbserver") {
			t.Errorf("message does not name the change and say to bump the serial:\n%s", r.stderr)
		}
		if diff := withoutPrefix(changed(before, snapshot(t, web.root), false), bookkeeping...); len(diff) > 0 {
			t.Errorf("refused document changed the node: %v", diff)
		}
	})

	t.Run("leftover temporary files are swept", func(t *testing.T) {
		left := []string{
			"etc/.hosts.nodeagent-1234567",
			"etc/nodeagent/products/.shop.php.nodeagent-7654321",
			stateDir + "/.status.json.tmp-424242",
			stateDir + "/.topology.json.tmp-1",
		}
		kept := []string{"etc/.hosts.keep", "etc/nodeagent/products/.shop.php.nodeagent-notours"}
		for _, p := range append(slices.Clone(left), kept...) {
			if err := os.WriteFile(web.path(p), []byte("half written"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		web.mustApply(t)
		for _, p := range left {
			if _, err := os.Stat(web.path(p)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s is still there after an apply: %v", p, err)
			}
		}
		for _, p := range kept {
			if _, err := os.Stat(web.path(p)); err != nil {
				t.Errorf("%s (not the agent's) was removed: %v", p, err)
			}
			os.Remove(web.path(p))
		}
	})

	t.Run("run killed mid-apply; the restarted run finishes it", func(t *testing.T) {
		run1 := web.startRun(t)
		eventually(t, 60*time.Second, "http://"+web.listen+"/ready", web.listen, 200, "")
		web.armTrap(t, "apache2", "reload", "before")
		f.editShop(func(p *productEdit) { p.aliases = append(p.aliases, "run.shop.example") })
		f.publish(t)
		if err := run1.waitKilled(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		if code, _, _, _ := httpGet(web.apacheURL("/"), "run.shop.example"); code != 404 {
			t.Errorf("new alias answers %d after run was killed before reloading, want 404", code)
		}

		run2 := web.startRun(t)
		defer run2.kill()
		eventually(t, 60*time.Second, web.apacheURL("/"), "run.shop.example", 200, "Welcome")
		eventually(t, 30*time.Second, "http://"+web.listen+"/ready", web.listen, 200, "serial "+itoa(int(f.doc.Serial))+" applied")
		if web.journalLeft() {
			t.Error("journal still there after run converged")
		}
	})

}

// runProc is a `nodeagent run` the test started.
type runProc struct {
	cmd    *exec.Cmd
	exited chan error
	stderr *bytes.Buffer
	done   bool
}

// startRun starts `nodeagent run` for the node; the test's cleanup kills
// it if it is still running.
func (n *node) startRun(t *testing.T) *runProc {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(nodeagentBin, "run", "--config", n.config)
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &runProc{cmd: cmd, exited: make(chan error, 1), stderr: &stderr}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(p.kill)
	return p
}

// waitKilled waits for run to die of SIGKILL (an armed trap), at most limit.
func (p *runProc) waitKilled(limit time.Duration) error {
	select {
	case err := <-p.exited:
		p.done = true
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				return nil
			}
		}
		return fmt.Errorf("run exited with %v, want killed by the trap\n%s", err, p.stderr)
	case <-time.After(limit):
		return fmt.Errorf("run was not killed by the trap within %s\n%s", limit, p.stderr)
	}
}

func (p *runProc) kill() {
	if p.done {
		return
	}
	p.done = true
	_ = p.cmd.Process.Kill()
	<-p.exited
}
