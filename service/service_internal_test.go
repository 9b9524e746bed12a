package service

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestDetect(t *testing.T) {
	booted := t.TempDir() // stands in for /run/systemd/system
	file := filepath.Join(t.TempDir(), "system")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, root, marker, want string
	}{
		{"host with systemd", "/", booted, "systemd"},
		{"empty root is /", "", booted, "systemd"},
		{"root spelled //", "//", booted, "systemd"},
		{"host without systemd", "/", filepath.Join(booted, "missing"), "exec"},
		{"marker is a file", "/", file, "exec"},
		{"rooted tree never drives the host's systemd", "/srv/node", booted, "exec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := detect(tt.root, tt.marker); got != tt.want {
				t.Errorf("detect(%q, %q) = %q, want %q", tt.root, tt.marker, got, tt.want)
			}
		})
	}
}

func TestAliveSeesZombies(t *testing.T) {
	proc := t.TempDir()
	pid := os.Getpid() // a live pid, so kill(pid, 0) succeeds
	dir := filepath.Join(proc, itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := NewExec(nil, nil, nil)
	e.proc = proc
	for _, tt := range []struct {
		stat string
		want bool
	}{
		{itoa(pid) + " (memcached) S 1 2 3", true},
		{itoa(pid) + " (odd) name) Z 1 2 3", false},
		{itoa(pid) + " (memcached) X 1", false},
	} {
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(tt.stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := e.alive(pid); got != tt.want {
			t.Errorf("alive with stat %q = %v, want %v", tt.stat, got, tt.want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
