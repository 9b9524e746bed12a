package service

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/nodeagent/nodeagent"
)

// CheckerInput configures a Checker.
type CheckerInput struct {
	// Root is the agent's --root: the tree whose configuration is checked.
	Root     string
	Instance nodeagent.Instance // OSFamily picks the layout, PHPVersion the php-fpm binary
	Run      Runner             // nil means ExecRunner
	// Overrides replace the built-in check of a logical service
	// (nodeagent.ServiceApache, …). A Signal in an override is refused.
	Overrides map[string]Command
}

// Checker validates a service's whole configuration tree with the service's
// own checker:
//
//   - apache, Debian: APACHE_CONFDIR=<root>/etc/apache2 apache2ctl -t
//   - apache, RHEL: httpd -t -d <root>/etc/httpd -f conf/httpd.conf
//   - php-fpm, Debian: php-fpm<ver> -t -y <root>/etc/php/<ver>/fpm/php-fpm.conf
//   - php-fpm, RHEL: php-fpm -t -y <root>/etc/php-fpm.conf
//   - memcached: nothing to check (its config is command-line flags).
//
// A refused configuration is an error carrying the checker's output (a
// *CommandError).
type Checker struct {
	in CheckerInput
}

var _ nodeagent.ConfigChecker = (*Checker)(nil)

// NewChecker returns a Checker.
func NewChecker(in CheckerInput) *Checker {
	if in.Run == nil {
		in.Run = ExecRunner
	}
	if in.Root == "" {
		in.Root = "/"
	}
	return &Checker{in: in}
}

// Check runs the checker of the logical service.
func (c *Checker) Check(ctx context.Context, service string) error {
	cmd, ok, err := c.command(service)
	if err != nil {
		return fmt.Errorf("check %s: %w", service, err)
	}
	if !ok {
		return nil
	}
	if _, err := run(ctx, c.in.Run, cmd.Env, cmd.Argv); err != nil {
		return fmt.Errorf("check %s: %w", service, err)
	}
	return nil
}

var errNoPHPVersion = errors.New("php version unknown (no php-fpm found on the host)")

// command is the check for service; ok is false when it has none.
func (c *Checker) command(service string) (Command, bool, error) {
	if o, ok := c.in.Overrides[service]; ok {
		if o.Signal != "" || len(o.Argv) == 0 {
			return Command{}, false, errors.New("override needs argv (a signal cannot check a config)")
		}
		return o, true, nil
	}
	root := c.in.Root
	rhel := c.in.Instance.OSFamily == nodeagent.OSRHEL
	switch service {
	case nodeagent.ServiceApache:
		if rhel {
			return Command{Argv: []string{"httpd", "-t", "-d", filepath.Join(root, "etc/httpd"), "-f", "conf/httpd.conf"}}, true, nil
		}
		return Command{
			Argv: []string{"apache2ctl", "-t"},
			Env:  []string{"APACHE_CONFDIR=" + filepath.Join(root, "etc/apache2")},
		}, true, nil
	case nodeagent.ServicePHPFPM:
		if rhel {
			return Command{Argv: []string{"php-fpm", "-t", "-y", filepath.Join(root, "etc/php-fpm.conf")}}, true, nil
		}
		v := c.in.Instance.PHPVersion
		if v == "" {
			return Command{}, false, errNoPHPVersion
		}
		return Command{Argv: []string{"php-fpm" + v, "-t", "-y", filepath.Join(root, "etc/php", v, "fpm/php-fpm.conf")}}, true, nil
	case nodeagent.ServiceMemcached:
		return Command{}, false, nil
	default:
		return Command{}, false, fmt.Errorf("unknown service %q", service)
	}
}
