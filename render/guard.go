package render

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrUnsafe means a value could break out of the syntax of the file it
// would be rendered into.
var ErrUnsafe = errors.New("unsafe for the file's syntax")

// FieldError says which data field of which file refused a value.
type FieldError struct {
	File  string // "apache vhost shop", "php-fpm pool shop", …
	Field string // "ServerAliases[1]"
	Err   error
}

func (e *FieldError) Error() string {
	return "render " + e.File + ": field " + e.Field + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// ApacheToken checks a value written as one argument of an Apache
// directive (a name, a path, an address): not empty, valid UTF-8, and no
// whitespace, control characters, quotes, backslashes, angle brackets
// (which open and close sections such as </VirtualHost>) or ${ (variable
// expansion).
func ApacheToken(s string) error {
	if s == "" {
		return fmt.Errorf("apache token: empty: %w", ErrUnsafe)
	}
	if err := scan(s, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune("\"'\\<>", r)
	}); err != nil {
		return fmt.Errorf("apache token: %w", err)
	}
	if strings.Contains(s, "${") {
		return fmt.Errorf("apache token %q: contains ${: %w", s, ErrUnsafe)
	}
	return nil
}

// PHPString checks a value written as a single-quoted PHP string literal
// (see PHPQuote): valid UTF-8 and no control characters. Quotes and
// backslashes are fine; PHPQuote escapes them.
func PHPString(s string) error {
	if err := scan(s, func(rune) bool { return false }); err != nil {
		return fmt.Errorf("php string: %w", err)
	}
	return nil
}

// PHPQuote returns s as a single-quoted PHP string literal, with \ and '
// escaped. Only values that passed PHPString may be quoted.
func PHPQuote(s string) string {
	return "'" + phpEscaper.Replace(s) + "'"
}

var phpEscaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

// FPMValue checks a value written double-quoted in a PHP-FPM ini file:
// not empty (php-fpm refuses an empty value), valid UTF-8 and no control
// characters (a quoted ini value may span
// lines), double quotes, backslashes (ini escapes) or ${ (ini variable
// expansion).
func FPMValue(s string) error {
	if s == "" {
		return fmt.Errorf("php-fpm value: empty (php-fpm refuses empty values): %w", ErrUnsafe)
	}
	if err := scan(s, func(r rune) bool { return r == '"' || r == '\\' }); err != nil {
		return fmt.Errorf("php-fpm value: %w", err)
	}
	if strings.Contains(s, "${") {
		return fmt.Errorf("php-fpm value %q: contains ${: %w", s, ErrUnsafe)
	}
	return nil
}

// FPMKey checks a PHP-FPM pool name or the key of env[…]: not empty and
// only ASCII letters, digits, '_', '-' and '.'.
func FPMKey(s string) error {
	if s == "" {
		return fmt.Errorf("php-fpm key: empty: %w", ErrUnsafe)
	}
	for _, r := range s {
		if !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("_-.", r))) {
			return fmt.Errorf("php-fpm key %q: contains %s: %w", s, describe(r), ErrUnsafe)
		}
	}
	return nil
}

// MemcachedArg checks one memcached option argument, as written in
// /etc/memcached.conf (one option per line, '#' starts a comment) and in
// /etc/sysconfig/memcached (a systemd environment file expanded into the
// command line): not empty and no whitespace, control characters, quotes,
// backslashes, '#', '$' or '`'.
func MemcachedArg(s string) error {
	if s == "" {
		return fmt.Errorf("memcached argument: empty: %w", ErrUnsafe)
	}
	if err := scan(s, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune("\"'\\#$`", r)
	}); err != nil {
		return fmt.Errorf("memcached argument: %w", err)
	}
	return nil
}

// scan refuses invalid UTF-8, control characters, Unicode line and
// paragraph separators, and every rune bad reports.
func scan(s string, bad func(rune) bool) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q: not valid UTF-8: %w", s, ErrUnsafe)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || bad(r) {
			return fmt.Errorf("%q: contains %s: %w", s, describe(r), ErrUnsafe)
		}
	}
	return nil
}

func describe(r rune) string {
	switch {
	case r == '\n':
		return "a newline"
	case r == '\r':
		return "a carriage return"
	case r == 0:
		return "a NUL byte"
	case r == '"':
		return "a double quote"
	case r == '\'':
		return "a single quote"
	case r == '\\':
		return "a backslash"
	case r == '<' || r == '>':
		return "an angle bracket"
	case r == '\u2028' || r == '\u2029':
		return "a Unicode line separator"
	case unicode.IsControl(r):
		return fmt.Sprintf("control character %U", r)
	case unicode.IsSpace(r):
		return "whitespace"
	}
	return fmt.Sprintf("%q", r)
}

// checker collects the first refused field of one file's data.
type checker struct {
	file string
	err  error
}

func (c *checker) check(field, value string, guard func(string) error) {
	if c.err != nil {
		return
	}
	if err := guard(value); err != nil {
		c.err = &FieldError{File: c.file, Field: field, Err: err}
	}
}

func (c *checker) each(field string, values []string, guard func(string) error) {
	for i, v := range values {
		c.check(fmt.Sprintf("%s[%d]", field, i), v, guard)
	}
}

// require records a field whose value is out of range.
func (c *checker) require(ok bool, field, format string, args ...any) {
	if c.err != nil || ok {
		return
	}
	c.err = &FieldError{File: c.file, Field: field, Err: fmt.Errorf(format, args...)}
}
