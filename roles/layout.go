package roles

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nodeagent/nodeagent"
)

// layout is where one OS family keeps the files nodeagent manages, and the
// users its services run as.
type layout struct {
	apacheListen  string
	apacheGlobal  string
	defaultVhost  string
	vhostDir      string // product vhosts: <dir>/nodeagent-<p>.conf
	poolDir       string // product pools: <dir>/nodeagent-<p>.conf
	socketDir     string // PHP-FPM sockets, created by the php-fpm unit (RuntimeDirectory)
	memcached     string
	webUser       string // Apache's user: the pools run as it and own their sockets
	memcachedUser string
}

// isMajorMinor reports whether v is a PHP version as /etc/php names it:
// ^[0-9]+\.[0-9]+$.
func isMajorMinor(v string) bool {
	digits := func(s string) bool {
		return s != "" && strings.Trim(s, "0123456789") == ""
	}
	major, minor, ok := strings.Cut(v, ".")
	return ok && digits(major) && digits(minor)
}

// layoutFor returns the instance's layout. php-fpm on Debian lives under
// /etc/php/<version>, so there the PHP version must be known when the role
// runs php-fpm.
func layoutFor(inst nodeagent.Instance, needPHP bool) (layout, error) {
	switch inst.OSFamily {
	case nodeagent.OSDebian:
		if needPHP {
			if inst.PHPVersion == "" {
				return layout{}, errors.New("roles: php-fpm is not installed under the root: no PHP version found (no /etc/php/<version>/fpm); install php-fpm in the image or use a role without php-fpm")
			}
			if !isMajorMinor(inst.PHPVersion) {
				return layout{}, fmt.Errorf("roles: php version %q is not major.minor", inst.PHPVersion)
			}
		}
		return layout{
			apacheListen:  "/etc/apache2/ports.conf",
			apacheGlobal:  "/etc/apache2/conf-enabled/nodeagent.conf",
			defaultVhost:  "/etc/apache2/sites-enabled/00-nodeagent-default.conf",
			vhostDir:      "/etc/apache2/sites-enabled",
			poolDir:       "/etc/php/" + inst.PHPVersion + "/fpm/pool.d",
			socketDir:     "/run/php",
			memcached:     "/etc/memcached.conf",
			webUser:       "www-data",
			memcachedUser: "memcache",
		}, nil
	case nodeagent.OSRHEL:
		return layout{
			apacheListen:  "/etc/httpd/conf.d/nodeagent-listen.conf",
			apacheGlobal:  "/etc/httpd/conf.d/nodeagent.conf",
			defaultVhost:  "/etc/httpd/conf.d/00-nodeagent-default.conf",
			vhostDir:      "/etc/httpd/conf.d",
			poolDir:       "/etc/php-fpm.d",
			socketDir:     "/run/php-fpm",
			memcached:     "/etc/sysconfig/memcached",
			webUser:       "apache",
			memcachedUser: "memcached",
		}, nil
	}
	return layout{}, fmt.Errorf("roles: unknown os family %q (want %s or %s)", inst.OSFamily, nodeagent.OSDebian, nodeagent.OSRHEL)
}

// Unit maps a logical service (nodeagent.ServiceApache, ServicePHPFPM,
// ServiceMemcached) to the instance's platform unit: apache2 or httpd,
// php<version>-fpm or php-fpm, memcached.
func Unit(inst nodeagent.Instance, service string) (string, error) {
	_, err := layoutFor(inst, service == nodeagent.ServicePHPFPM)
	if err != nil {
		return "", err
	}
	debian := inst.OSFamily == nodeagent.OSDebian
	switch service {
	case nodeagent.ServiceApache:
		if debian {
			return "apache2", nil
		}
		return "httpd", nil
	case nodeagent.ServicePHPFPM:
		if debian {
			return "php" + inst.PHPVersion + "-fpm", nil
		}
		return "php-fpm", nil
	case nodeagent.ServiceMemcached:
		return "memcached", nil
	}
	return "", fmt.Errorf("roles: unknown service %q (known: %s, %s, %s)", service, nodeagent.ServiceApache, nodeagent.ServicePHPFPM, nodeagent.ServiceMemcached)
}
