//go:build integration

package service_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/service"
)

// apacheTree copies the host's /etc/apache2 under a temporary root, with
// envvars pointing run, lock and log dirs into the temporary tree.
func apacheTree(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("apache2ctl"); err != nil {
		t.Fatalf("apache2ctl is not installed (apt-get install apache2): %v", err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", "/etc/apache2", filepath.Join(root, "etc")).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/apache2: %v: %s", err, out)
	}
	var env strings.Builder
	for _, d := range []struct{ name, dir string }{
		{"APACHE_RUN_DIR", "run/apache2"}, {"APACHE_LOCK_DIR", "lock/apache2"}, {"APACHE_LOG_DIR", "log/apache2"},
	} {
		p := filepath.Join(root, "var", d.dir)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&env, "export %s=%s\n", d.name, p)
	}
	fmt.Fprintf(&env, "export APACHE_PID_FILE=%s\n", filepath.Join(root, "var/run/apache2/apache2.pid"))
	f, err := os.OpenFile(filepath.Join(root, "etc/apache2/envvars"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(env.String()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestCheckerRealApache(t *testing.T) {
	root := apacheTree(t)
	c := service.NewChecker(service.CheckerInput{Root: root, Instance: nodeagent.Instance{OSFamily: nodeagent.OSDebian}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := c.Check(ctx, nodeagent.ServiceApache); err != nil {
		t.Fatalf("good tree refused: %v", err)
	}

	broken := filepath.Join(root, "etc/apache2/conf-enabled/broken.conf")
	if err := os.WriteFile(broken, []byte("NoSuchDirective on\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.Check(ctx, nodeagent.ServiceApache)
	if err == nil {
		t.Fatal("broken tree accepted")
	}
	var ce *service.CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *CommandError", err)
	}
	for _, s := range []string{"check apache", "NoSuchDirective", "broken.conf"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("err = %q, want it to contain %q", err, s)
		}
	}
	// The check read the temporary tree, not the host's /etc/apache2.
	if _, statErr := os.Stat("/etc/apache2/conf-enabled/broken.conf"); statErr == nil {
		t.Fatal("test wrote into the host's /etc/apache2")
	}
}
