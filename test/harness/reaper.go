package harness

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

var reaperOnce sync.Once

// startReaper makes this test process the reaper of the daemons its
// children start. Apache, PHP-FPM and memcached detach (fork, setsid) and
// are re-parented to the nearest subreaper, normally PID 1; on machines
// whose PID 1 never reaps, a stopped daemon stays a zombie, its pid stays
// in /proc, and the next `start-memcached` or `apache2 -k start` believes
// it is still running. As a subreaper, the test process gets those
// orphans and reaps them.
//
// Only zombie children in another session are reaped: the test's own
// exec.Cmd children share its session and are left to their Wait.
func startReaper() {
	reaperOnce.Do(func() {
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
			return // not Linux enough: zombies are then only a nuisance
		}
		self := os.Getpid()
		_, sid, err := procStat(self)
		if err != nil {
			return
		}
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGCHLD)
		go func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-sigs:
				case <-tick.C:
				}
				reapOrphans(self, sid)
			}
		}()
	})
}

// reapOrphans waits for every zombie child of self outside session sid.
func reapOrphans(self, sid int) {
	for _, pid := range allPids() {
		state, err := procState(pid)
		if err != nil || state != "Z" {
			continue
		}
		ppid, session, err := procStat(pid)
		if err != nil || ppid != self || session == sid {
			continue
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	}
}

// procStat returns the parent pid and session id of pid.
func procStat(pid int) (ppid, session int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// "pid (comm) state ppid pgrp session …"; comm may hold spaces.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 4 {
		return 0, 0, fmt.Errorf("proc stat %d: short line", pid)
	}
	if ppid, err = strconv.Atoi(fields[1]); err != nil {
		return 0, 0, fmt.Errorf("proc stat %d: %w", pid, err)
	}
	if session, err = strconv.Atoi(fields[3]); err != nil {
		return 0, 0, fmt.Errorf("proc stat %d: %w", pid, err)
	}
	return ppid, session, nil
}
