package readiness

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// SystemdNotifier sends notifications to systemd over NOTIFY_SOCKET
// (sd_notify). Without NOTIFY_SOCKET, as outside a Type=notify unit, it does
// nothing.
type SystemdNotifier struct{}

var _ Notifier = SystemdNotifier{}

// Notify sends state ("READY=1\nSTATUS=…") in one datagram.
func (SystemdNotifier) Notify(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("readiness: sd_notify %q: %w", state, err)
	}
	return nil
}

// WatchdogInterval returns how often to send WATCHDOG=1 when the unit asks
// for watchdog pings (WatchdogSec=, seen as WATCHDOG_USEC for this pid): half
// the watchdog timeout, as systemd recommends. ok is false when no watchdog
// is wanted.
func WatchdogInterval() (interval time.Duration, ok bool) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d / 2, true
}

// Watchdog sends WATCHDOG=1 at once and then every interval while alive()
// reports true, until ctx ends. alive should say whether the agent's main
// loop is still making progress, so that a stuck agent stops pinging and
// systemd restarts it; a nil alive always pings. Send failures are not fatal:
// systemd notices the missing pings. A non-positive interval returns at once.
func Watchdog(ctx context.Context, n Notifier, interval time.Duration, alive func() bool) {
	if interval <= 0 || n == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for ctx.Err() == nil {
		if alive == nil || alive() {
			n.Notify(daemon.SdNotifyWatchdog)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}
