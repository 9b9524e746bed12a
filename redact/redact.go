// Package redact is the one place where secrets are taken out of URLs and
// of text that may carry them, before the text reaches a log line, an error
// message on stderr, status.json, /status or a file on disk.
//
// A URL keeps its scheme, host and path (what an operator needs to know
// which object failed) and loses its userinfo (user:password@, a token as
// user name) and its query string and fragment, where presigned URLs carry
// X-Amz-Signature, X-Amz-Credential and X-Amz-Security-Token:
//
//	https://u:p@host/shop.tar.gz?X-Amz-Signature=abc  ->  https://REDACTED@host/shop.tar.gz?REDACTED
package redact

import (
	"context"
	"log/slog"
	"strings"
)

// Marker replaces what was taken out.
const Marker = "REDACTED"

// URL returns raw with its userinfo, query string and fragment replaced by
// Marker. A string that is not a URL (no "://") comes back unchanged.
func URL(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	return raw[:i+3] + rest(raw[i+3:])
}

// rest redacts what follows "scheme://".
func rest(s string) string {
	// The authority ends at the first '/', '?' or '#'; userinfo is what
	// comes before its last '@'.
	end := strings.IndexAny(s, "/?#")
	if end < 0 {
		end = len(s)
	}
	var b strings.Builder
	if at := strings.LastIndexByte(s[:end], '@'); at >= 0 {
		b.WriteString(Marker + "@")
		s = s[at+1:]
	}
	if q := strings.IndexAny(s, "?#"); q >= 0 {
		b.WriteString(s[:q])
		b.WriteByte(s[q])
		b.WriteString(Marker)
		return b.String()
	}
	b.WriteString(s)
	return b.String()
}

// Text returns s with every URL in it redacted as URL does. A URL starts
// at its scheme ("https://", "s3://", ...) and ends at whitespace, a quote,
// '<', '>' or '`', so URLs quoted in Go errors (Get "https://...": ...) and
// in JSON are found.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s // the common case: nothing to do, nothing allocated
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + 3 + strings.IndexFunc(s[i+3:], urlEnd)
		if end < i+3 {
			end = len(s)
		}
		b.WriteString(s[:i+3])
		b.WriteString(rest(s[i+3 : end]))
		s = s[end:]
	}
}

func urlEnd(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '"', '\'', '<', '>', '`', '\\':
		return true
	}
	return false
}

// Error returns err with its message redacted; errors.Is and errors.As
// still see err. nil stays nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	return redacted{err}
}

type redacted struct{ err error }

func (r redacted) Error() string { return Text(r.err.Error()) }
func (r redacted) Unwrap() error { return r.err }

// Handler wraps h so that every record's message and every attribute
// value that is a string, an error or a fmt.Stringer is redacted before h
// sees it; groups are walked. The process's logger goes through it, so no
// log line carries a URL's secrets whoever logs it.
func Handler(h slog.Handler) slog.Handler { return handler{h} }

type handler struct{ next slog.Handler }

func (h handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h handler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = attr(a)
	}
	return handler{h.next.WithAttrs(clean)}
}

func (h handler) WithGroup(name string) slog.Handler { return handler{h.next.WithGroup(name)} }

// attr redacts one attribute.
func attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); strings.Contains(s, "://") {
			return slog.String(a.Key, Text(s))
		}
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = attr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, Text(x.Error()))
		case interface{ String() string }:
			return slog.String(a.Key, Text(x.String()))
		case []string:
			clean := make([]string, len(x))
			for i, s := range x {
				clean[i] = Text(s)
			}
			return slog.Any(a.Key, clean)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
