//go:build integration

package packagetest_test

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/nodeagent/nodeagent/agent"
	"github.com/nodeagent/nodeagent/test/harness"
)

// Where the package puts things (nfpm.yaml, packaging/README.md).
const (
	binPath      = "/usr/bin/nodeagent"
	unitName     = "nodeagent.service"
	unitPath     = "/usr/lib/systemd/system/" + unitName
	wantsLink    = "/etc/systemd/system/multi-user.target.wants/" + unitName
	configDir    = "/etc/nodeagent"
	configPath   = configDir + "/config.json"
	stateDir     = "/var/lib/nodeagent"
	enableMark   = stateDir + "/.enable-unit"
	docDir       = "/usr/share/doc/nodeagent"
	userDataDoc  = docDir + "/user-data.yaml"
	topologyDoc  = docDir + "/example-topology.json"
	readmeDoc    = docDir + "/README.md"
	pkgName      = "nodeagent"
	modeDir      = fs.ModeDir
	editedConfig = "{\n  \"log_format\": \"json\",\n  \"keep_releases\": 4\n}\n"
)

// installedFile is one path the package installs, its mode and, when it is
// shipped from the repository as is, the source it must equal.
type installedFile struct {
	path string
	mode fs.FileMode
	src  string // repository path, "" for none
}

var installed = []installedFile{
	{binPath, 0o755, ""},
	{unitPath, 0o644, "packaging/nodeagent.service"},
	{configDir, modeDir | 0o755, ""},
	{configPath, 0o644, "packaging/config.json"},
	{stateDir, modeDir | 0o711, ""},
	{docDir, modeDir | 0o755, ""},
	{readmeDoc, 0o644, "packaging/README.md"},
	{userDataDoc, 0o644, "packaging/cloud-init/user-data.yaml"},
	{topologyDoc, 0o644, "topology/testdata/example.json"},
}

// TestPackage builds the .deb and .rpm with `make package`, checks the .rpm's
// header, then installs the .deb on this machine and walks it through an
// upgrade, a remove and a reinstall; the cleanup purges it and checks that
// nothing is left.
func TestPackage(t *testing.T) {
	root := repoRoot(t)
	requireCleanMachine(t)

	dist := t.TempDir()
	makeIn(t, root, "package", "PKG_DIST="+filepath.Join(dist, "v1"))
	deb := onlyMatch(t, filepath.Join(dist, "v1", "nodeagent_*.deb"))
	rpm := onlyMatch(t, filepath.Join(dist, "v1", "nodeagent-*.rpm"))
	version := debField(t, deb, "Version")
	upstream := version[:strings.LastIndex(version, "-")] // nfpm's release "1" follows the last -
	t.Logf("built %s and %s (version %s)", filepath.Base(deb), filepath.Base(rpm), version)

	stage := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	stage("deb metadata", func(t *testing.T) {
		for field, want := range map[string]string{"Package": pkgName, "Architecture": goArch(t)} {
			if got := debField(t, deb, field); got != want {
				t.Errorf("deb %s = %q, want %q", field, got, want)
			}
		}
		out := run(t, "dpkg-deb", "--info", deb, "conffiles")
		if strings.TrimSpace(out) != configPath {
			t.Errorf("deb conffiles = %q, want only %s (so upgrades never overwrite it)", out, configPath)
		}
	})

	stage("rpm header", func(t *testing.T) { checkRPM(t, root, rpm, upstream) })

	stage("cloud-init user-data", func(t *testing.T) { checkUserData(t, root) })

	t.Cleanup(func() { purgeAndCheck(t) })

	stage("install", func(t *testing.T) {
		dpkg(t, "-i", deb)
		checkInstalled(t, root)
		if _, err := os.Stat(enableMark); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind after install: %v", enableMark, err)
		}
	})

	stage("binary static, stripped, stamped", func(t *testing.T) { checkBinary(t, upstream) })

	stage("example topology validates", func(t *testing.T) {
		if out, err := exec.Command(binPath, "validate", topologyDoc).CombinedOutput(); err != nil {
			t.Errorf("%s validate %s: %v\n%s", binPath, topologyDoc, err, out)
		}
	})

	stage("systemd-analyze verify", func(t *testing.T) {
		if problems := verifyUnit(t, unitPath); len(problems) > 0 {
			t.Errorf("systemd-analyze verify %s:\n%s", unitPath, strings.Join(problems, "\n"))
		}
		// The same check must catch a broken copy of the unit, or it
		// proves nothing.
		broken := filepath.Join(t.TempDir(), unitName)
		unit := readFile(t, unitPath)
		unit = strings.Replace(unit, "KillMode=mixed", "KillMode=mixd", 1)
		if err := os.WriteFile(broken, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		if problems := verifyUnit(t, broken); len(problems) == 0 {
			t.Error("systemd-analyze verify found nothing wrong with KillMode=mixd: the check is blind")
		}
	})

	stage("enabled, not started", func(t *testing.T) {
		checkEnabled(t, true)
		if pids := running(t); len(pids) > 0 {
			t.Errorf("%s is running after install (pids %v): the package must never start it", binPath, pids)
		}
	})

	stage("upgrade keeps config and the admin's disable", func(t *testing.T) {
		run(t, "systemctl", "--no-reload", "disable", unitName)
		writeFile(t, configPath, editedConfig)
		newer := upstream + "+pkgtest"
		makeIn(t, root, "package-nfpm", "PKG_DIST="+filepath.Join(dist, "v2"), "PKG_VERSION="+newer)
		dpkg(t, "-i", onlyMatch(t, filepath.Join(dist, "v2", "nodeagent_*.deb")))
		if got := installedVersion(t); got != newer+"-1" {
			t.Errorf("installed version after upgrade = %q, want %q", got, newer+"-1")
		}
		if got := readFile(t, configPath); got != editedConfig {
			t.Errorf("%s after upgrade = %q, want the edited %q", configPath, got, editedConfig)
		}
		checkEnabled(t, false)
	})

	stage("remove keeps config", func(t *testing.T) {
		dpkg(t, "-r", pkgName)
		for _, p := range []string{binPath, unitPath, wantsLink, docDir} {
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s after dpkg -r: %v, want it gone", p, err)
			}
		}
		if got := readFile(t, configPath); got != editedConfig {
			t.Errorf("%s after dpkg -r = %q, want the edited %q kept", configPath, got, editedConfig)
		}
		if got := dpkgStatus(t); got != "deinstall ok config-files" {
			t.Errorf("dpkg status after -r = %q, want %q", got, "deinstall ok config-files")
		}
	})

	stage("reinstall after remove enables again", func(t *testing.T) {
		dpkg(t, "-i", deb)
		if got := readFile(t, configPath); got != editedConfig {
			t.Errorf("%s after reinstall = %q, want the edited %q kept", configPath, got, editedConfig)
		}
		checkEnabled(t, true)
		if pids := running(t); len(pids) > 0 {
			t.Errorf("%s is running after reinstall (pids %v)", binPath, pids)
		}
	})
}

// repoRoot is the module root, two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if mod := readFile(t, filepath.Join(root, "go.mod")); !strings.HasPrefix(mod, "module github.com/nodeagent/nodeagent\n") {
		t.Fatalf("%s is not the nodeagent module root", root)
	}
	return root
}

// requireCleanMachine fails (never skips: a skipped package test would
// read as a pass) unless this machine can install the package and holds
// nothing the test could clobber.
func requireCleanMachine(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the package test installs a .deb: run it as root (CI does)")
	}
	for _, tool := range []string{"make", "dpkg", "dpkg-deb", "dpkg-query", "systemctl", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the package test needs %s (tools/deps.sh installs systemd): %v", tool, err)
		}
	}
	if st := dpkgStatus(t); st != "" && st != "unknown ok not-installed" {
		t.Fatalf("package %s is already here (%q); the test installs and purges it, so it refuses to touch this one", pkgName, st)
	}
	for _, p := range []string{binPath, unitPath, configDir, stateDir, wantsLink} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists and is not from the package; the test would purge it, so it refuses to run", p)
		}
	}
}

// makeIn runs make in dir with the tools the harness knows.
func makeIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	tools := filepath.Dir(harness.Tool(t, harness.ToolNFPM))
	args = append([]string{"--no-print-directory", "-C", dir, "TOOLS_DIR=" + tools}, args...)
	cmd := exec.Command("make", args...)
	out, err := cmd.CombinedOutput()
	t.Logf("make %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("make %s: %v", strings.Join(args, " "), err)
	}
}

func onlyMatch(t *testing.T, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) != 1 {
		t.Fatalf("%s: want exactly one file, got %v (err %v); does the Makefile include packaging/package.mk?", pattern, m, err)
	}
	return m[0]
}

func goArch(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(run(t, "go", "env", "GOARCH"))
}

func debField(t *testing.T, deb, field string) string {
	t.Helper()
	return strings.TrimSpace(run(t, "dpkg-deb", "--field", deb, field))
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = nil
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// dpkg runs dpkg with stdin closed, so a conffile prompt fails the test
// instead of waiting. Another dpkg holding the lock is waited for, briefly.
func dpkg(t *testing.T, args ...string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		cmd := exec.Command("dpkg", args...)
		cmd.Stdin = nil
		out, err := cmd.CombinedOutput()
		t.Logf("dpkg %s:\n%s", strings.Join(args, " "), out)
		if err == nil {
			return
		}
		if attempt < 30 && bytes.Contains(out, []byte("lock")) {
			time.Sleep(time.Second)
			continue
		}
		t.Fatalf("dpkg %s: %v", strings.Join(args, " "), err)
	}
}

// dpkgStatus is the package's dpkg status ("install ok installed"), "" when
// dpkg has never heard of it.
func dpkgStatus(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--show", "--showformat=${Status}", pkgName).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 1 {
			return ""
		}
		t.Fatalf("dpkg-query %s: %v", pkgName, err)
	}
	return strings.TrimSpace(string(out))
}

func installedVersion(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(run(t, "dpkg-query", "--show", "--showformat=${Version}", pkgName))
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkInstalled checks every installed path, its mode and content, and
// that the unit and the docs point at what is really there.
func checkInstalled(t *testing.T, root string) {
	t.Helper()
	if got := dpkgStatus(t); got != "install ok installed" {
		t.Errorf("dpkg status = %q, want %q", got, "install ok installed")
	}
	for _, f := range installed {
		fi, err := os.Lstat(f.path)
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		if got := fi.Mode() & (fs.ModeType | fs.ModePerm); got != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, got, f.mode)
		}
		if f.src != "" {
			if got, want := readFile(t, f.path), readFile(t, filepath.Join(root, f.src)); got != want {
				t.Errorf("%s differs from %s", f.path, f.src)
			}
		}
	}

	// The unit's ExecStart, ExecReload and Documentation name real files.
	unit := readFile(t, unitPath)
	for key, want := range map[string]string{
		"ExecStart":     binPath + " run",
		"ExecReload":    "/bin/kill -HUP $MAINPID",
		"Documentation": "file://" + readmeDoc,
		"Type":          "notify",
		"Restart":       "on-failure",
		"WantedBy":      "multi-user.target",
	} {
		if got := unitValues(unit, key); len(got) != 1 || got[0] != want {
			t.Errorf("unit %s= %q, want %q", key, got, want)
		}
	}
	if got := unitValues(unit, "WatchdogSec"); len(got) != 1 || got[0] == "" || got[0] == "0" {
		t.Errorf("unit WatchdogSec= %q, want a watchdog", got)
	}
	for _, key := range []string{"After", "Wants"} {
		if !strings.Contains(strings.Join(unitValues(unit, key), " "), "network-online.target") {
			t.Errorf("unit %s= %q, want network-online.target", key, unitValues(unit, key))
		}
	}
	for _, p := range []string{binPath, "/bin/kill", readmeDoc} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			t.Errorf("the unit names %s: %v", p, err)
		}
	}

	// The default config is one the agent accepts.
	if _, err := agent.ParseConfig(strings.NewReader(readFile(t, configPath))); err != nil {
		t.Errorf("shipped %s: %v", configPath, err)
	}
}

// unitValues returns the values of key= lines, ignoring comments.
func unitValues(unit, key string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

// checkBinary checks the installed binary: static (no interpreter, no
// shared libraries), stripped (no symbol table, no DWARF), built with
// CGO_ENABLED=0 and -trimpath, and `nodeagent version` printing the package
// version, a commit, a build date and its Go version. (Build info leaves
// -ldflags out under -trimpath; the version output shows the stamp.)
func checkBinary(t *testing.T, version string) {
	t.Helper()
	f, err := elf.Open(binPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: not static", binPath)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s imports shared libraries %v (%v): not static", binPath, libs, err)
	}
	for _, s := range []string{".symtab", ".debug_info", ".zdebug_info"} {
		if f.Section(s) != nil {
			t.Errorf("%s has a %s section: not stripped", binPath, s)
		}
	}

	bi, err := buildinfo.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("%s built with CGO_ENABLED=%q -trimpath=%q, want 0 and true", binPath, settings["CGO_ENABLED"], settings["-trimpath"])
	}

	out := strings.TrimSpace(run(t, binPath, "version"))
	re := regexp.MustCompile(`^nodeagent (\S+) \(commit (\S+), built (\S+), (\S+) linux/\S+\)$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s version = %q, want %s", binPath, out, re)
	}
	if m[1] != version {
		t.Errorf("%s version says %q, the package is %q", binPath, m[1], version)
	}
	if err := exec.Command("git", "cat-file", "-e", m[2]+"^{commit}").Run(); err != nil {
		t.Errorf("%s version commit %q is not a commit of this repository: %v", binPath, m[2], err)
	}
	if _, err := time.Parse(time.RFC3339, m[3]); err != nil {
		t.Errorf("%s version build date %q: %v", binPath, m[3], err)
	}
	if m[4] != bi.GoVersion {
		t.Errorf("%s version Go %q, its build info says %q", binPath, m[4], bi.GoVersion)
	}
}

// verifyUnit runs systemd-analyze verify on unit and returns what it
// complained about: a non-zero exit, or any line naming nodeagent (it
// reports a bad setting as a warning and still exits 0).
func verifyUnit(t *testing.T, unit string) []string {
	t.Helper()
	cmd := exec.Command("systemd-analyze", "verify", unit)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=")
	out, err := cmd.CombinedOutput()
	t.Logf("systemd-analyze verify %s: exit %v\n%s", unit, err, out)
	var problems []string
	if err != nil {
		problems = append(problems, fmt.Sprintf("exit: %v", err))
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.Contains(line, "nodeagent") {
			problems = append(problems, line)
		}
	}
	return problems
}

// checkEnabled checks the unit's WantedBy symlink and systemctl's view.
func checkEnabled(t *testing.T, want bool) {
	t.Helper()
	// systemctl may name the unit by /lib/systemd/system on a merged /usr:
	// the link must lead to the installed unit, whichever way.
	target, err := os.Readlink(wantsLink)
	switch {
	case want && err != nil:
		t.Errorf("unit not enabled: %s: %v", wantsLink, err)
	case want && !sameFile(wantsLink, unitPath):
		t.Errorf("%s -> %s, want the installed %s", wantsLink, target, unitPath)
	case !want && err == nil:
		t.Errorf("unit enabled (%s -> %s), want disabled", wantsLink, target)
	}
	out, _ := exec.Command("systemctl", "is-enabled", unitName).Output()
	wantState := map[bool]string{true: "enabled", false: "disabled"}[want]
	if got := strings.TrimSpace(string(out)); got != wantState {
		t.Errorf("systemctl is-enabled %s = %q, want %q", unitName, got, wantState)
	}
}

func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// running returns the pids of processes running the installed binary.
func running(t *testing.T) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/exe")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, p := range procs {
		exe, err := os.Readlink(p)
		if err == nil && strings.TrimSuffix(exe, " (deleted)") == binPath {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// checkRPM reads the .rpm's header: name, version, the file list with
// modes, owners and config flags, and the four scripts from packaging/.
func checkRPM(t *testing.T, root, rpm, version string) {
	t.Helper()
	p, err := readRPM(rpm)
	if err != nil {
		t.Fatalf("%s: %v", rpm, err)
	}
	if p.Name != pkgName || p.Version != version || p.Release != "1" {
		t.Errorf("rpm %s-%s-%s, want %s-%s-1", p.Name, p.Version, p.Release, pkgName, version)
	}
	want := map[string]fs.FileMode{}
	for _, f := range installed {
		want[f.path] = f.mode
	}
	for name, f := range p.Files {
		if _, ok := want[name]; !ok {
			t.Errorf("rpm holds %s, which the package should not own", name)
		}
		if f.User != "root" || f.Group != "root" {
			t.Errorf("rpm %s owned by %s:%s, want root:root", name, f.User, f.Group)
		}
	}
	for name, mode := range want {
		f, ok := p.Files[name]
		if !ok {
			t.Errorf("rpm lacks %s", name)
			continue
		}
		if got := unixMode(f.Mode); got != mode {
			t.Errorf("rpm %s mode %v, want %v", name, got, mode)
		}
		wantFlags := uint32(0)
		if name == configPath {
			wantFlags = rpmFileConfig | rpmFileNoReplace
		}
		if f.Flags&(rpmFileConfig|rpmFileNoReplace) != wantFlags {
			t.Errorf("rpm %s flags %#x, want config|noreplace bits %#x", name, f.Flags, wantFlags)
		}
	}
	for name, src := range map[string]string{
		"pre": "preinstall.sh", "post": "postinstall.sh", "preun": "preremove.sh", "postun": "postremove.sh",
	} {
		want := readFile(t, filepath.Join(root, "packaging", "scripts", src))
		if got := p.Scripts[name]; strings.TrimSpace(got) != strings.TrimSpace(want) {
			t.Errorf("rpm %%%s is not packaging/scripts/%s:\n%s", name, src, got)
		}
	}
}

// unixMode turns an st_mode into an fs.FileMode (type and permissions).
func unixMode(m uint16) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o100000:
	default:
		mode |= fs.ModeIrregular
	}
	return mode
}

// checkUserData parses the cloud-init example: a #cloud-config document
// that turns off cloud-init's /etc/hosts management, writes a config the
// agent accepts to the path the package uses, and starts the unit.
func checkUserData(t *testing.T, root string) {
	t.Helper()
	raw := readFile(t, filepath.Join(root, "packaging", "cloud-init", "user-data.yaml"))
	if !strings.HasPrefix(raw, "#cloud-config\n") {
		t.Fatalf("user-data must start with the line #cloud-config, starts %q", raw[:min(len(raw), 20)])
	}
	var doc struct {
		ManageEtcHosts *bool `json:"manage_etc_hosts"`
		WriteFiles     []struct {
			Path        string `json:"path"`
			Owner       string `json:"owner"`
			Permissions string `json:"permissions"`
			Content     string `json:"content"`
		} `json:"write_files"`
		RunCmd [][]string `json:"runcmd"`
	}
	if err := yaml.UnmarshalStrict([]byte(raw), &doc); err != nil {
		t.Fatalf("user-data: %v", err)
	}
	if doc.ManageEtcHosts == nil || *doc.ManageEtcHosts {
		t.Error("user-data must set manage_etc_hosts: false (two managers must never fight over /etc/hosts)")
	}
	if len(doc.WriteFiles) != 1 || doc.WriteFiles[0].Path != configPath {
		t.Fatalf("user-data write_files = %+v, want one file at %s", doc.WriteFiles, configPath)
	}
	wf := doc.WriteFiles[0]
	if wf.Owner != "root:root" || wf.Permissions != "0644" {
		t.Errorf("user-data config owner %q permissions %q, want root:root 0644 like the package's", wf.Owner, wf.Permissions)
	}
	cfg, err := agent.ParseConfig(strings.NewReader(wf.Content))
	if err != nil {
		t.Fatalf("user-data config: %v", err)
	}
	if !strings.HasPrefix(cfg.Topology, "s3://") {
		t.Errorf("user-data config topology %q, want an s3:// URL", cfg.Topology)
	}
	started := false
	for _, c := range doc.RunCmd {
		if len(c) > 0 && c[0] == "systemctl" && strings.Contains(strings.Join(c, " "), "--now") && c[len(c)-1] == unitName {
			started = true
		}
		if len(c) > 1 && c[0] == "nodeagent" {
			t.Errorf("user-data runcmd %v: the unit does the boot apply, runcmd must not", c)
		}
	}
	if !started {
		t.Errorf("user-data runcmd %v does not start %s", doc.RunCmd, unitName)
	}
}

// purgeAndCheck purges the package and checks that nothing of it is left.
func purgeAndCheck(t *testing.T) {
	if st := dpkgStatus(t); st == "" || st == "unknown ok not-installed" {
		return
	}
	dpkg(t, "-P", pkgName)
	for _, p := range []string{binPath, unitPath, wantsLink, configDir, stateDir, docDir} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after dpkg -P: %v, want it gone", p, err)
		}
	}
	if st := dpkgStatus(t); st != "" && st != "unknown ok not-installed" {
		t.Errorf("dpkg status after -P = %q", st)
	}
}
