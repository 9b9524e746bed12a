package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/nodeagent/nodeagent/test/harness"
)

// stateFile, in the demo's directory, lets `-stop` find a running demo and
// what it started.
const stateFile = "demo.json"

// state is what a running demo has started.
type state struct {
	PID        int               `json:"pid"`
	Executable string            `json:"executable"` // the demo binary, to tell a reused pid apart
	NodeRoots  map[string]string `json:"node_roots"` // node name -> root directory
}

func readState(dir string) (state, error) {
	var s state
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return s, fmt.Errorf("read demo state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("read demo state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return s, nil
}

func writeState(dir string, s state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("write demo state: %w", err)
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write demo state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("write demo state: %w", err)
	}
	return nil
}

// running reports whether s.PID is a live demo process: the pid is alive
// and runs the executable the state names.
func (s state) running() bool {
	if s.PID <= 1 || s.PID == os.Getpid() || !harness.Alive(s.PID) {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", s.PID))
	return err == nil && exe == s.Executable
}

// processesUnder lists the live processes other than this one whose
// command line names a path under dir: the agents (their --config), the
// metadata mocks (their -c config) and MinIO (its data directory).
func processesUnder(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	needle := []byte(dir + "/")
	var found []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !harness.Alive(pid) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, needle) {
			found = append(found, pid)
		}
	}
	slices.Sort(found)
	return found
}

// terminate sends SIGTERM to pids, waits up to wait for them to go, then
// sends SIGKILL; it names any process still alive after that.
func terminate(pids []int, wait time.Duration) error {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	if waitGone(pids, wait) {
		return nil
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if waitGone(pids, 5*time.Second) {
		return nil
	}
	var left []error
	for _, pid := range pids {
		if harness.Alive(pid) {
			left = append(left, fmt.Errorf("pid %d still running after SIGKILL", pid))
		}
	}
	return errors.Join(left...)
}

// waitGone polls until none of pids is alive or limit passes.
func waitGone(pids []int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		if !slices.ContainsFunc(pids, harness.Alive) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// isDemoEntry reports whether name is one a demo creates in its
// directory.
func isDemoEntry(name string) bool {
	switch name {
	case stateFile, stateFile + ".tmp", logsDir, "agents", "tmp":
		return true
	}
	return slices.ContainsFunc(nodes, func(n node) bool { return n.Name == name })
}

// checkOwned refuses a directory holding anything a demo does not create,
// so a mistyped -root never has its content swept away.
func checkOwned(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !isDemoEntry(e.Name()) {
			return fmt.Errorf("%s holds %s, which the demo did not create: choose an empty or new -root", dir, e.Name())
		}
	}
	return nil
}
