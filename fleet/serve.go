package fleet

import (
	"bytes"
	"compress/gzip"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nodeagent/nodeagent"
)

// Marshal is the one JSON encoding of a Snapshot: `fleet status --json`
// prints it and `fleet serve` answers /api/fleet with it.
func Marshal(s *Snapshot) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("fleet: encode snapshot: %w", err)
	}
	return append(b, '\n'), nil
}

//go:embed web
var webFS embed.FS

// DefaultRefresh is how often `fleet serve` reloads the fleet, and how
// often the page asks for it.
const DefaultRefresh = 5 * time.Second

// Snapshotter loads a Snapshot; *Loader is one.
type Snapshotter interface {
	Load(ctx context.Context) (*Snapshot, error)
}

// Server is the control panel: a read-only web page over the latest
// Snapshot, which it reloads every Refresh on its own (so any number of
// open pages cost S3 one load per Refresh). It is safe for concurrent use.
type Server struct {
	Loader  Snapshotter
	Refresh time.Duration // default DefaultRefresh
	Logger  *slog.Logger

	mu       sync.RWMutex
	body, gz []byte // the latest Snapshot, encoded once per load
	loadErr  string // the latest load's error, "" after a good one
	loaded   bool
}

func (s *Server) refresh() time.Duration {
	if s.Refresh > 0 {
		return s.Refresh
	}
	return DefaultRefresh
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Load loads the fleet once and keeps it for the page.
func (s *Server) Load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(s.refresh()*4, 30*time.Second))
	defer cancel()
	snap, err := s.Loader.Load(ctx)
	var body []byte
	if err == nil {
		body, err = Marshal(snap)
	}
	if err != nil {
		s.mu.Lock()
		s.loadErr = err.Error()
		s.mu.Unlock()
		return err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	_, _ = zw.Write(body)
	_ = zw.Close()
	s.mu.Lock()
	s.body, s.gz, s.loadErr, s.loaded = body, gz.Bytes(), "", true
	s.mu.Unlock()
	return nil
}

// Run reloads the fleet every Refresh until ctx ends. A failed load is
// logged and shown on the page; the page keeps the last good data.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.refresh())
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.Load(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				s.logger().Warn("fleet not reloaded; the page shows the last good load", nodeagent.LogKeyError, err.Error())
			}
			failing = true
			continue
		}
		if failing {
			s.logger().Info("fleet reloaded again")
		}
		failing = false
	}
}

// Handler serves the page (/), its assets (/static/…) and the Snapshot
// (/api/fleet, with X-Nodeagent-Refresh saying how often to ask and
// X-Nodeagent-Load-Error the latest load's failure). Only GET and HEAD;
// only requests whose Host is an IP address or localhost (a DNS-rebinding
// page cannot read it); no inline script (Content-Security-Policy).
func (s *Server) Handler() http.Handler {
	static, _ := fs.Sub(webFS, "web")
	files := http.FileServerFS(static)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/fleet", s.serveSnapshot)
	index, _ := fs.ReadFile(static, "index.html")
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(index)
	})
	mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "read-only: GET and HEAD only", http.StatusMethodNotAllowed)
			return
		}
		if !localHost(r.Host) {
			http.Error(w, "fleet serve answers requests for an IP address or localhost only (open it as http://127.0.0.1:PORT/, or through an SSH tunnel)", http.StatusMisdirectedRequest)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// localHost reports whether a Host header names an IP address or
// localhost.
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return net.ParseIP(host) != nil || strings.EqualFold(host, "localhost")
}

func (s *Server) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	body, gz, loadErr, loaded := s.body, s.gz, s.loadErr, s.loaded
	s.mu.RUnlock()
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Nodeagent-Refresh", strconv.Itoa(max(1, int(s.refresh().Seconds()))))
	if loadErr != "" {
		h.Set("X-Nodeagent-Load-Error", strings.Map(func(r rune) rune {
			if r < 0x20 || r > 0x7e {
				return ' '
			}
			return r
		}, loadErr))
	}
	if !loaded {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "fleet not loaded yet: %s\n", loadErr)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Vary", "Accept-Encoding")
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Length", strconv.Itoa(len(gz)))
		_, _ = w.Write(gz)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}
