package render_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/render"
)

// sectionRE finds the container sections of an Apache config and their
// argument: <Location "/x">, <LocationMatch "^/x$">, <Directory "/d">.
var sectionRE = regexp.MustCompile(`(?m)^\s*<(Location|LocationMatch|Directory|DirectoryMatch|Files|FilesMatch)\s+"([^"]*)">\s*$`)

// TestHealthGrantsOnlyItsPath: the only URL-space grant a rendered vhost
// makes is for exactly the health path, so it can never override the
// Require local that mod_status and mod_info put on /server-status and
// /server-info, the probe's Require local, or grant anything under the
// health path (issue 11).
func TestHealthGrantsOnlyItsPath(t *testing.T) {
	for _, hp := range []string{"/nodeagent-health", "/lb/health.txt"} {
		h := render.Health{Path: hp, ReadyFile: health.ReadyFile}
		vd := vhost()
		vd.Health = h
		product, err := render.ProductVhost(vd)
		if err != nil {
			t.Fatal(err)
		}
		def, err := render.DefaultVhost(render.DefaultVhostData{Platform: nodeagent.OSDebian, Port: 80, Health: h})
		if err != nil {
			t.Fatal(err)
		}
		for name, conf := range map[string]string{"product vhost": string(product), "default vhost": string(def)} {
			t.Run(name+" "+hp, func(t *testing.T) {
				grants := 0
				for _, sec := range sections(conf) {
					if !strings.Contains(sec.body, "Require all granted") {
						continue
					}
					switch sec.kind {
					case "Directory":
						if sec.arg != vd.DocumentRoot {
							t.Errorf("<Directory %q> grants all; only the docroot may", sec.arg)
						}
						continue
					case "LocationMatch":
					default:
						t.Errorf("<%s %q> grants all: a prefix match grants everything under it", sec.kind, sec.arg)
						continue
					}
					grants++
					re, err := regexp.Compile(sec.arg)
					if err != nil {
						t.Fatalf("<LocationMatch %q>: %v", sec.arg, err)
					}
					if !re.MatchString(hp) {
						t.Errorf("<LocationMatch %q> does not match the health path %s", sec.arg, hp)
					}
					for _, other := range []string{"/server-status", "/server-info", "/.nodeagent/php-probe.php", hp + "/x", hp + "x", "/", "/.htpasswd"} {
						if re.MatchString(other) {
							t.Errorf("<LocationMatch %q> grants %s too", sec.arg, other)
						}
					}
				}
				if grants != 1 {
					t.Errorf("%d health grants, want exactly 1:\n%s", grants, conf)
				}
			})
		}
	}
}

type section struct{ kind, arg, body string }

// sections returns every container section with its body (sections are
// not nested in nodeagent's vhosts).
func sections(conf string) []section {
	var out []section
	for _, m := range sectionRE.FindAllStringSubmatchIndex(conf, -1) {
		kind, arg := conf[m[2]:m[3]], conf[m[4]:m[5]]
		rest := conf[m[1]:]
		end := strings.Index(rest, "</"+kind+">")
		if end < 0 {
			end = len(rest)
		}
		// Apache unescapes \\ and \" inside a quoted argument only; the
		// regex is passed on as written.
		out = append(out, section{kind: kind, arg: arg, body: rest[:end]})
	}
	return out
}
