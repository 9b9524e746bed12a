package harness

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Platform binaries the commands run.
const (
	apache2ctl     = "/usr/sbin/apache2ctl"
	startMemcached = "/usr/share/memcached/scripts/start-memcached"
)

func phpFPMBinary(ver string) string { return "/usr/sbin/php-fpm" + ver }

// ServiceCommands returns the exec-driver configuration that runs this
// machine's real Apache, PHP-FPM and memcached against a NodeRoot, in the
// JSON shape of the service package's ExecConfig: unit name ->
// {pidfile, start, stop, reload, restart, status}, each command
// {argv, env ("KEY=value"), signal}.
//
//   - apache2: apache2ctl -k start|graceful|stop|restart with
//     APACHE_CONFDIR=<root>/etc/apache2; pid file from its envvars.
//   - php<ver>-fpm (every PHP version in the root): php-fpm<ver> -y
//     <root>/etc/php/<ver>/fpm/php-fpm.conf; reload and restart USR2, stop
//     TERM, via the pid file.
//   - memcached: start-memcached <root>/etc/memcached.conf
//     <root>/run/memcached.pid (it daemonizes and writes that pid file;
//     "-d" lines of the config are skipped); stop TERM; no restart command,
//     so the driver restarts it as stop + start.
//
// Units have no status command: a live pid in the pid file is "active".
func ServiceCommands(root string) map[string]any {
	confdir := filepath.Join(root, "etc/apache2")
	apacheEnvList := []string{"APACHE_CONFDIR=" + confdir}
	apache := func(action string) map[string]any {
		return map[string]any{"argv": []string{apache2ctl, "-k", action}, "env": apacheEnvList}
	}
	signal := func(name string) map[string]any { return map[string]any{"signal": name} }

	units := map[string]any{
		"apache2": map[string]any{
			"pidfile": apacheEnv(root)["APACHE_PID_FILE"],
			"start":   apache("start"),
			"reload":  apache("graceful"),
			"restart": apache("restart"),
			"stop":    apache("stop"),
		},
		"memcached": map[string]any{
			"pidfile": memcachedPidfile(root),
			"start": map[string]any{"argv": []string{
				startMemcached, filepath.Join(root, "etc/memcached.conf"), memcachedPidfile(root),
			}},
			"stop": signal("TERM"),
		},
	}
	for _, v := range phpVersions(root) {
		units["php"+v+"-fpm"] = map[string]any{
			"pidfile": phpFPMPidfile(root, v),
			"start": map[string]any{"argv": []string{
				phpFPMBinary(v), "-y", filepath.Join(root, "etc/php", v, "fpm/php-fpm.conf"),
			}},
			"reload":  signal("USR2"),
			"restart": signal("USR2"),
			"stop":    signal("TERM"),
		}
	}
	return units
}

// serviceComms are the command names (/proc/PID/comm) of the daemons
// StopServices may signal.
var serviceComms = []string{"apache2", "memcached"}

func isServiceComm(comm string) bool {
	return slices.Contains(serviceComms, comm) || strings.HasPrefix(comm, "php-fpm")
}

// StopServices stops every service started under root: the pids in its
// pid files, and any Apache/PHP-FPM/memcached process whose command line
// names the root, with their children. SIGTERM, then SIGKILL after 10s;
// it returns an error naming any process still alive after that.
func StopServices(root string) error {
	pids := map[int]bool{}
	pidfiles := []string{
		apacheEnv(root)["APACHE_PID_FILE"],
		memcachedPidfile(root),
		filepath.Join(root, "run/memcached/memcached.pid"),
	}
	for _, v := range phpVersions(root) {
		pidfiles = append(pidfiles, phpFPMPidfile(root, v))
	}
	for _, f := range pidfiles {
		if pid, ok := readPidfile(f); ok && isServiceComm(procComm(pid)) {
			pids[pid] = true
		}
	}
	for _, pid := range ProcessesNaming(root) {
		pids[pid] = true
	}
	for pid := range pids {
		for _, c := range childrenOf(pid) {
			pids[c] = true
		}
	}
	var list []int
	for pid := range pids {
		if Alive(pid) {
			list = append(list, pid)
		}
	}
	if len(list) == 0 {
		return nil
	}
	slices.Sort(list)
	for _, pid := range list {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	if waitGone(list, 10*time.Second) {
		return nil
	}
	for _, pid := range list {
		if Alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if waitGone(list, 5*time.Second) {
		return nil
	}
	var left []string
	for _, pid := range list {
		if Alive(pid) {
			left = append(left, fmt.Sprintf("%d (%s)", pid, procComm(pid)))
		}
	}
	return fmt.Errorf("stop services under %s: still running after SIGKILL: %s", root, strings.Join(left, ", "))
}

func waitGone(pids []int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		gone := true
		for _, pid := range pids {
			if Alive(pid) {
				gone = false
				break
			}
		}
		if gone {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readPidfile(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	return pid, true
}

// Alive reports whether pid is a running process (a zombie, exited but
// not yet reaped, is not: this machine's PID 1 does not reap).
func Alive(pid int) bool {
	state, err := procState(pid)
	return err == nil && state != "Z" && state != "X"
}

// procStatus returns one field of /proc/PID/status.
func procStatus(pid int, field string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("no " + field + " in status")
}

func procState(pid int) (string, error) {
	s, err := procStatus(pid, "State")
	if err != nil {
		return "", err
	}
	return strings.SplitN(s, " ", 2)[0], nil
}

func procComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// allPids lists the numeric entries of /proc.
func allPids() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ProcessesNaming lists the live Apache, PHP-FPM and memcached processes
// whose command line mentions dir (a NodeRoot).
func ProcessesNaming(dir string) []int {
	var found []int
	for _, pid := range allPids() {
		if !Alive(pid) || !isServiceComm(procComm(pid)) {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte(dir+"/")) {
			found = append(found, pid)
		}
	}
	return found
}

// childrenOf lists the live descendants of pid.
func childrenOf(pid int) []int {
	parent := map[int]int{}
	for _, p := range allPids() {
		if !Alive(p) {
			continue
		}
		s, err := procStatus(p, "PPid")
		if err != nil {
			continue
		}
		if pp, err := strconv.Atoi(s); err == nil {
			parent[p] = pp
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
			if _, ok := parent[q]; !ok {
				break
			}
		}
	}
	return out
}
