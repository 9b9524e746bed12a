package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// panelAddr is where the demo's control panel (`nodeagent fleet serve`)
// listens.
const panelAddr = "127.77.0.1:9108"

// panelArgs is the control panel's command line, without the binary.
func panelArgs() []string {
	return []string{"fleet", "serve", "--topology", "s3://" + topologyBucket + "/" + topologyKey, "--listen", panelAddr, "--refresh", "2s"}
}

// startPanel runs `nodeagent fleet serve` as an operator would, logging to
// logs/panel.log, and waits until its JSON answers. It is stopped by d.h's
// cleanup, and dies with the demo if the demo is killed (parent-death
// signal), since its command line names nothing under the demo's
// directory for a later sweep to find.
func (d *demo) startPanel(ctx context.Context, env []string) error {
	logPath := filepath.Join(d.dir, logsDir, "panel.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("demo: control panel: %w", err)
	}
	cmd := exec.Command(d.opt.nodeagent, panelArgs()...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("demo: control panel: start %s: %w", d.opt.nodeagent, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	d.h.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	url := "http://" + panelAddr + "/api/fleet"
	for {
		status, body, err := get(ctx, url)
		if err == nil && status == http.StatusOK && strings.Contains(body, `"nodes"`) {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("demo: control panel exited; the end of %s:\n%s", logPath, tail(logPath, 20))
		case <-ctx.Done():
			return fmt.Errorf("demo: control panel not answering %s (status %d, %v); the end of %s:\n%s", url, status, err, logPath, tail(logPath, 20))
		case <-time.After(250 * time.Millisecond):
		}
	}
}
