package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// harnessTB lets this program call package harness, whose helpers take a
// testing.TB, outside a test. It implements exactly the methods harness
// calls (Helper, Fatal[f], Error[f], Log[f], TempDir, Cleanup, Name,
// Failed): Fatal panics with a harnessFatal that call turns back into an
// error, Cleanup collects functions that close runs last-in first-out,
// like a test's end. The embedded testing.TB stays nil, so a harness change
// that starts calling another method fails loudly (a nil-method panic)
// rather than silently.
type harnessTB struct {
	testing.TB

	tmp string    // TempDir makes its directories here
	log io.Writer // Error and Log output

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// harnessFatal is the panic value of a harness Fatal.
type harnessFatal struct{ msg string }

func newHarnessTB(tmp string, log io.Writer) *harnessTB {
	return &harnessTB{tmp: tmp, log: log}
}

// call runs f (a harness call) and returns its Fatal as an error.
func (h *harnessTB) call(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			hf, ok := r.(harnessFatal)
			if !ok {
				panic(r)
			}
			err = errors.New(hf.msg)
		}
	}()
	f()
	return nil
}

// close runs the collected cleanups, last first; a Fatal in one is
// logged and the rest still run.
func (h *harnessTB) close() {
	for {
		h.mu.Lock()
		n := len(h.cleanups)
		if n == 0 {
			h.mu.Unlock()
			return
		}
		f := h.cleanups[n-1]
		h.cleanups = h.cleanups[:n-1]
		h.mu.Unlock()
		if err := h.call(f); err != nil {
			fmt.Fprintf(h.log, "cleanup: %v\n", err)
		}
	}
}

func (h *harnessTB) Helper()      {}
func (h *harnessTB) Name() string { return "nodeagent-demo" }

func (h *harnessTB) Failed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failed
}

func (h *harnessTB) Fatalf(format string, args ...any) {
	h.fail()
	panic(harnessFatal{fmt.Sprintf(format, args...)})
}

func (h *harnessTB) Fatal(args ...any) {
	h.fail()
	panic(harnessFatal{fmt.Sprint(args...)})
}

func (h *harnessTB) FailNow() { h.Fatal("failed") }

func (h *harnessTB) Errorf(format string, args ...any) {
	h.fail()
	fmt.Fprintf(h.log, format+"\n", args...)
}

func (h *harnessTB) Error(args ...any) {
	h.fail()
	fmt.Fprintln(h.log, args...)
}

func (h *harnessTB) Logf(format string, args ...any) { fmt.Fprintf(h.log, format+"\n", args...) }
func (h *harnessTB) Log(args ...any)                 { fmt.Fprintln(h.log, args...) }

func (h *harnessTB) TempDir() string {
	if err := os.MkdirAll(h.tmp, 0o755); err != nil {
		h.Fatalf("demo: temp dir: %v", err)
	}
	dir, err := os.MkdirTemp(h.tmp, "h-")
	if err != nil {
		h.Fatalf("demo: temp dir: %v", err)
	}
	h.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (h *harnessTB) Cleanup(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, f)
}

func (h *harnessTB) fail() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed = true
}
