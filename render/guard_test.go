package render_test

import (
	"errors"
	"testing"

	"github.com/nodeagent/nodeagent/render"
)

func TestGuards(t *testing.T) {
	guards := map[string]func(string) error{
		"ApacheToken":  render.ApacheToken,
		"PHPString":    render.PHPString,
		"FPMValue":     render.FPMValue,
		"FPMKey":       render.FPMKey,
		"MemcachedArg": render.MemcachedArg,
	}
	tests := []struct {
		name  string
		value string
		ok    map[string]bool // guards that accept the value; the rest refuse it
	}{
		{"plain name", "www.shop.example", map[string]bool{"ApacheToken": true, "PHPString": true, "FPMValue": true, "FPMKey": true, "MemcachedArg": true}},
		{"path", "/var/www/shop/current", map[string]bool{"ApacheToken": true, "PHPString": true, "FPMValue": true, "MemcachedArg": true}},
		{"empty", "", map[string]bool{"PHPString": true}},
		{"newline", "a\nb", nil},
		{"carriage return", "a\rb", nil},
		{"NUL", "a\x00b", nil},
		{"tab", "a\tb", nil},
		{"unicode line separator", "a\u2028b", nil},
		{"invalid utf-8", "a\xffb", nil},
		{"double quote", `a"b`, map[string]bool{"PHPString": true}},
		{"single quote", "it's", map[string]bool{"PHPString": true, "FPMValue": true}},
		{"backslash", `a\b`, map[string]bool{"PHPString": true}},
		{"close vhost", "</VirtualHost>", map[string]bool{"PHPString": true, "FPMValue": true, "MemcachedArg": true}},
		{"include smuggled on a new line", "x\n Include /etc/shadow", nil},
		{"space", "a b", map[string]bool{"PHPString": true, "FPMValue": true}},
		{"apache variable", "${APACHE_LOG_DIR}", map[string]bool{"PHPString": true}},
		{"ini variable", "a${HOME}", map[string]bool{"PHPString": true}},
		{"hash", "a#b", map[string]bool{"ApacheToken": true, "PHPString": true, "FPMValue": true}},
		{"dollar", "a$b", map[string]bool{"ApacheToken": true, "PHPString": true, "FPMValue": true}},
		{"semicolon and ampersand", "a;b&c", map[string]bool{"ApacheToken": true, "PHPString": true, "FPMValue": true, "MemcachedArg": true}},
	}
	for _, tt := range tests {
		for name, guard := range guards {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				err := guard(tt.value)
				if tt.ok[name] {
					if err != nil {
						t.Fatalf("%s(%q) = %v, want accepted", name, tt.value, err)
					}
					return
				}
				if !errors.Is(err, render.ErrUnsafe) {
					t.Fatalf("%s(%q) = %v, want ErrUnsafe", name, tt.value, err)
				}
			})
		}
	}
}

func TestPHPQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `'plain'`},
		{"it's", `'it\'s'`},
		{`C:\dir\`, `'C:\\dir\\'`},
		{`\'`, `'\\\''`},
		{"", `''`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := render.PHPQuote(tt.in); got != tt.want {
				t.Errorf("PHPQuote(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
