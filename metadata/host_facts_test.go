package metadata_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/metadata"
)

const meminfo4G = "MemTotal:        4026532 kB\nMemFree:          123456 kB\nMemAvailable:    3000000 kB\n"

const (
	osDebian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"
	osUbuntu = "NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n"
	osAmzn   = "NAME=\"Amazon Linux\"\nVERSION=\"2023\"\nID=\"amzn\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"2023\"\n"
	osRocky  = "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n"
	osMint   = "NAME=\"Linux Mint\"\nID=linuxmint\nID_LIKE='ubuntu debian'\n"
	osArch   = "NAME=\"Arch Linux\"\nID=arch\n"
)

// writeRoot builds a host root from path -> content; a path ending in "/"
// is a directory.
func writeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestReadHostFacts(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    metadata.HostFacts
		wantErr []string // substrings of the error
		errIs   error
	}{
		{
			name: "debian with several PHP versions compares numerically",
			files: map[string]string{
				"proc/meminfo": meminfo4G, "etc/os-release": osDebian,
				"etc/php/7.4/fpm/": "", "etc/php/8.9/fpm/": "", "etc/php/8.10/fpm/": "",
				"etc/php/8.2/fpm/":        "",
				"etc/php/9.0/cli/":        "", // no fpm: not a candidate
				"etc/php/mods-available/": "",
				"etc/php/8.11/fpm":        "a file, not a directory",
			},
			want: metadata.HostFacts{MemoryBytes: 4026532 * 1024, OSFamily: nodeagent.OSDebian, OSID: "debian", PHPVersion: "8.10"},
		},
		{
			name:  "ubuntu via ID_LIKE-free ID with one PHP",
			files: map[string]string{"proc/meminfo": meminfo4G, "etc/os-release": osUbuntu, "etc/php/8.3/fpm/": ""},
			want:  metadata.HostFacts{MemoryBytes: 4026532 * 1024, OSFamily: nodeagent.OSDebian, OSID: "ubuntu", PHPVersion: "8.3"},
		},
		{
			name:  "debian without PHP-FPM (a cache node)",
			files: map[string]string{"proc/meminfo": meminfo4G, "etc/os-release": osDebian},
			want:  metadata.HostFacts{MemoryBytes: 4026532 * 1024, OSFamily: nodeagent.OSDebian, OSID: "debian"},
		},
		{
			name:  "derivative found through single-quoted ID_LIKE",
			files: map[string]string{"proc/meminfo": meminfo4G, "etc/os-release": osMint},
			want:  metadata.HostFacts{MemoryBytes: 4026532 * 1024, OSFamily: nodeagent.OSDebian, OSID: "linuxmint"},
		},
		{
			name:  "amazon linux 2023 ignores /etc/php",
			files: map[string]string{"proc/meminfo": meminfo4G, "etc/os-release": osAmzn, "etc/php/8.2/fpm/": ""},
			want:  metadata.HostFacts{MemoryBytes: 4026532 * 1024, OSFamily: nodeagent.OSRHEL, OSID: "amzn"},
		},
		{
			name:  "rocky",
			files: map[string]string{"proc/meminfo": meminfo4G, "etc/os-release": osRocky},
			want:  metadata.HostFacts{MemoryBytes: 4026532 * 1024, OSFamily: nodeagent.OSRHEL, OSID: "rocky"},
		},
		{
			name:  "os-release only under /usr/lib",
			files: map[string]string{"proc/meminfo": meminfo4G, "usr/lib/os-release": osRocky},
			want:  metadata.HostFacts{MemoryBytes: 4026532 * 1024, OSFamily: nodeagent.OSRHEL, OSID: "rocky"},
		},
		{
			name:    "unknown OS names its ID",
			files:   map[string]string{"proc/meminfo": meminfo4G, "etc/os-release": osArch},
			wantErr: []string{`ID="arch"`, "etc/os-release", "unsupported OS"},
			errIs:   metadata.ErrUnsupportedOS,
		},
		{
			name:    "missing os-release names the path",
			files:   map[string]string{"proc/meminfo": meminfo4G},
			wantErr: []string{"/etc/os-release"},
			errIs:   fs.ErrNotExist,
		},
		{
			name:    "missing meminfo names the path",
			files:   map[string]string{"etc/os-release": osDebian},
			wantErr: []string{"/proc/meminfo"},
			errIs:   fs.ErrNotExist,
		},
		{
			name:    "meminfo without MemTotal",
			files:   map[string]string{"proc/meminfo": "MemFree: 1 kB\n", "etc/os-release": osDebian},
			wantErr: []string{"/proc/meminfo", "no MemTotal"},
		},
		{
			name:    "meminfo with a garbled MemTotal",
			files:   map[string]string{"proc/meminfo": "MemTotal: lots\n", "etc/os-release": osDebian},
			wantErr: []string{"/proc/meminfo", "MemTotal: lots"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeRoot(t, tt.files)
			got, err := metadata.ReadHostFacts(root, filepath.Join(root, "proc"))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ReadHostFacts: %v", err)
				}
				if want := filepath.Join(root, "proc", "meminfo") + " of the running host"; got.MemorySource != want {
					t.Errorf("MemorySource = %q, want %q", got.MemorySource, want)
				}
				got.MemorySource = ""
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("facts (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadHostFacts = %+v, want an error", got)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Errorf("error %v is not %v", err, tt.errIs)
			}
		})
	}
}

// TestImageRootHasNoProc: an image build (--root /mnt/image) reads the OS
// and PHP from the image and the memory from the running host's procfs; the
// image has no /proc and discovery must not need one.
func TestImageRootHasNoProc(t *testing.T) {
	image := writeRoot(t, map[string]string{"etc/os-release": osDebian, "etc/php/8.2/fpm/": ""})
	host := writeRoot(t, map[string]string{"meminfo": meminfo4G})
	got, err := metadata.ReadHostFacts(image, host)
	if err != nil {
		t.Fatalf("ReadHostFacts of an image without /proc: %v", err)
	}
	if got.MemoryBytes != 4026532*1024 || got.PHPVersion != "8.2" || got.OSFamily != nodeagent.OSDebian {
		t.Errorf("facts %+v, want 4026532 kB from the host, PHP 8.2 and Debian from the image", got)
	}
	if _, err := metadata.ReadHostFacts(image, filepath.Join(image, "proc")); err == nil || !strings.Contains(err.Error(), "meminfo") {
		t.Errorf("memory from a missing procfs: %v, want an error naming meminfo", err)
	}
}

func TestReadBootID(t *testing.T) {
	proc := writeRoot(t, map[string]string{"sys/kernel/random/boot_id": "0b7e2f6a-1c7d-4e0b-9f43-2a1d6c3e8b51\n"})
	id, err := metadata.ReadBootID(proc)
	if err != nil || id != "0b7e2f6a-1c7d-4e0b-9f43-2a1d6c3e8b51" {
		t.Errorf("ReadBootID = %q, %v; want the id without its newline", id, err)
	}
	if _, err := metadata.ReadBootID(t.TempDir()); err == nil || !strings.Contains(err.Error(), "boot_id") {
		t.Errorf("ReadBootID without the file: %v, want an error naming boot_id", err)
	}
	if _, err := metadata.ReadBootID(metadata.DefaultProc); err != nil {
		t.Errorf("ReadBootID of this machine: %v", err)
	}
}
