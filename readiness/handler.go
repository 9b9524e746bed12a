package readiness

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
)

// Mux returns a new ServeMux with the readiness endpoints; the caller may add
// more routes to it (GET /metrics):
//
//   - GET /ready: 200 {"ready":true,"reason":…} or 503 {"ready":false,"reason":…},
//     nothing else, so the endpoint leaks no detail;
//   - GET /live: 200 {"live":true} while the process serves;
//   - GET /status: the full Status as JSON; with statusLoopbackOnly, 403 for
//     clients that are not on a loopback address.
//
// The endpoints read the current state; they never run a check.
func (s *State) Mux(statusLoopbackOnly bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", s.serveReady)
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		if statusLoopbackOnly && !fromLoopback(r) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "/status is limited to loopback clients"})
			return
		}
		writeJSON(w, http.StatusOK, s.Snapshot())
	})
	return mux
}

// Handler returns the readiness endpoints as one handler (see Mux).
func (s *State) Handler(statusLoopbackOnly bool) http.Handler {
	return s.Mux(statusLoopbackOnly)
}

type readyBody struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason"`
}

func (s *State) serveReady(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	body := readyBody{Ready: s.st.Ready, Reason: s.st.Reason}
	s.mu.RUnlock()
	code := http.StatusOK
	if !body.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// fromLoopback reports whether the request came from a loopback address.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}
