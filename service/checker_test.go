package service_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/service"
)

func TestCheckerCommands(t *testing.T) {
	debian := nodeagent.Instance{OSFamily: nodeagent.OSDebian, PHPVersion: "8.2"}
	rhel := nodeagent.Instance{OSFamily: nodeagent.OSRHEL, PHPVersion: "8.3"}
	tests := []struct {
		name      string
		inst      nodeagent.Instance
		service   string
		overrides map[string]service.Command
		want      [][]string // env entries first, then argv
		wantErr   string
	}{
		{name: "apache debian", inst: debian, service: "apache",
			want: [][]string{{"APACHE_CONFDIR=/srv/node/etc/apache2", "apache2ctl", "-t"}}},
		{name: "apache rhel", inst: rhel, service: "apache",
			want: [][]string{{"httpd", "-t", "-d", "/srv/node/etc/httpd", "-f", "conf/httpd.conf"}}},
		{name: "php-fpm debian", inst: debian, service: "php-fpm",
			want: [][]string{{"php-fpm8.2", "-t", "-y", "/srv/node/etc/php/8.2/fpm/php-fpm.conf"}}},
		{name: "php-fpm rhel", inst: rhel, service: "php-fpm",
			want: [][]string{{"php-fpm", "-t", "-y", "/srv/node/etc/php-fpm.conf"}}},
		{name: "memcached has no check", inst: debian, service: "memcached"},
		{name: "php-fpm debian without version", inst: nodeagent.Instance{OSFamily: nodeagent.OSDebian}, service: "php-fpm",
			wantErr: "check php-fpm: php version unknown"},
		{name: "unknown service", inst: debian, service: "nginx", wantErr: `check nginx: unknown service "nginx"`},
		{name: "override", inst: debian, service: "apache",
			overrides: map[string]service.Command{"apache": {Argv: []string{"/usr/sbin/apache2", "-t", "-d", "/x"}, Env: []string{"A=1"}}},
			want:      [][]string{{"A=1", "/usr/sbin/apache2", "-t", "-d", "/x"}}},
		{name: "signal override refused", inst: debian, service: "apache",
			overrides: map[string]service.Command{"apache": {Signal: "HUP"}},
			wantErr:   "check apache: override needs argv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			c := service.NewChecker(service.CheckerInput{Root: "/srv/node", Instance: tt.inst, Run: r.run, Overrides: tt.overrides})
			err := c.Check(context.Background(), tt.service)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if diff := cmp.Diff(tt.want, r.calls); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckerRefusalCarriesOutput(t *testing.T) {
	r := &recorder{fail: map[string]bool{"apache2ctl -t": true}}
	c := service.NewChecker(service.CheckerInput{Root: "/", Instance: nodeagent.Instance{OSFamily: nodeagent.OSDebian}, Run: r.run})
	err := c.Check(context.Background(), "apache")
	if err == nil {
		t.Fatal("Check passed, want the refusal")
	}
	for _, s := range []string{"check apache", "APACHE_CONFDIR=/etc/apache2 apache2ctl -t", "exit status 1", "unit is not running"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("err = %q, want it to contain %q", err, s)
		}
	}
	var ce *service.CommandError
	if !errors.As(err, &ce) || ce.Output() != "unit is not running" {
		t.Errorf("CommandError output = %v, want the checker's output", ce)
	}
}
