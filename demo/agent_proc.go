package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nodeagent/nodeagent/test/harness"
)

// agentConfig is one node's `nodeagent run` config: the node root as both
// --root and --service-root (its services run on this host against the
// rooted tree), the exec driver running the real daemons, and short
// intervals so the demo's change is picked up within seconds.
func agentConfig(n node, root string) (map[string]any, error) {
	units := harness.ServiceCommands(root)
	return map[string]any{
		"topology":       "s3://" + topologyBucket + "/" + topologyKey,
		"root":           root,
		"service_root":   root,
		"state_dir":      "/var/lib/nodeagent",
		"listen":         n.listen(),
		"services":       "exec",
		"log_format":     "text",
		"deadline":       "3m",
		"smoke_deadline": "20s",
		"poll_interval":  "2s",
		"settle":         "500ms",
		"splay":          "1s",
		"drain_time":     "1s",
		"exec":           units,
	}, nil
}

// agent is a running `nodeagent run`.
type agent struct {
	node   node
	log    string // its log file
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // set before exited closes
}

// startAgentInput is what startAgent needs.
type startAgentInput struct {
	Binary string
	Node   node
	Root   string   // the node root
	Dir    string   // the demo's directory: agents/<node>.json, logs/<node>.log
	Env    []string // the emulators' endpoints and credentials
}

// startAgent writes the node's config and starts `nodeagent run` in its
// own process group (a Ctrl-C reaches the demo, which stops the agent
// itself), logging to logs/<node>.log.
func startAgent(in startAgentInput) (*agent, error) {
	cfgPath := filepath.Join(in.Dir, "agents", in.Node.Name+".json")
	cfg, err := agentConfig(in.Node, in.Root)
	if err != nil {
		return nil, fmt.Errorf("agent %s: config: %w", in.Node.Name, err)
	}
	body, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("agent %s: config: %w", in.Node.Name, err)
	}
	if err := os.MkdirAll(filepath.Dir(cfgPath), 0o755); err != nil {
		return nil, fmt.Errorf("agent %s: %w", in.Node.Name, err)
	}
	if err := os.WriteFile(cfgPath, append(body, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("agent %s: %w", in.Node.Name, err)
	}
	// The endpoints too, so an operator can run the agent's other
	// commands against the node: env $(cat agents/web-1.env) nodeagent …
	envPath := filepath.Join(in.Dir, "agents", in.Node.Name+".env")
	if err := os.WriteFile(envPath, []byte(strings.Join(in.Env, "\n")+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("agent %s: %w", in.Node.Name, err)
	}
	logPath := filepath.Join(in.Dir, logsDir, in.Node.Name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("agent %s: %w", in.Node.Name, err)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", in.Node.Name, err)
	}
	cmd := exec.Command(in.Binary, "run", "--config", cfgPath)
	cmd.Env = append(agentEnv(os.Environ()), in.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("agent %s: start %s: %w", in.Node.Name, in.Binary, err)
	}
	a := &agent{node: in.Node, log: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		a.err = cmd.Wait()
		logFile.Close()
		close(a.exited)
	}()
	return a, nil
}

// agentEnv is the demo's environment without NODEAGENT_* settings (they
// would override the agents' config files) and without AWS settings the
// emulators' own replace.
func agentEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "NODEAGENT_") || strings.HasPrefix(k, "AWS_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// stop ends the agent: SIGTERM (it drains only when its metadata says the
// instance is terminating), then SIGKILL after wait.
func (a *agent) stop(wait time.Duration) error {
	select {
	case <-a.exited:
		return nil
	default:
	}
	_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-a.exited:
		return nil
	case <-time.After(wait):
	}
	_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-a.exited:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("agent %s: pid %d still running after SIGKILL", a.node.Name, a.cmd.Process.Pid)
	}
}

// waitReady polls the agent's /ready until it answers 200, the agent
// exits, ctx ends or limit passes.
func (a *agent) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	url := "http://" + a.node.listen() + "/ready"
	var last string
	for {
		status, body, err := get(ctx, url)
		switch {
		case err != nil:
			last = err.Error()
		case status == http.StatusOK:
			return nil
		default:
			last = fmt.Sprintf("%d %s", status, strings.TrimSpace(body))
		}
		select {
		case <-a.exited:
			return fmt.Errorf("agent %s exited (%v) before it was ready; the end of %s:\n%s", a.node.Name, a.err, a.log, tail(a.log, 30))
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("agent %s not ready after %s (last: %s); the end of %s:\n%s", a.node.Name, limit, last, a.log, tail(a.log, 30))
			}
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// get fetches url with a short timeout, returning the status and body.
func get(ctx context.Context, url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// tail returns the last n lines of a file, indented, for messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	return indent(lastLines(string(b), n))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
