//go:build integration

package fleet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nodeagent/nodeagent/report"
	"github.com/nodeagent/nodeagent/test/harness"
)

// chromiumPath is Debian's chromium (tools/deps.sh installs it).
const chromiumPath = "/usr/bin/chromium"

// testPanel opens `fleet serve` in headless Chromium, finds every node,
// sees the front role's AZ imbalance marked, then drains one agent and
// sees its row turn unready within one refresh: the server's next reload
// and the page's next fetch after it.
func testPanel(t *testing.T, f *lightFleet, drained *lightNode) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s: %v (tools/deps.sh installs the chromium package)", chromiumPath, err)
	}
	port := harness.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	serve := exec.Command(bins.nodeagent, "fleet", "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--refresh", "1s",
		"--topology", "s3://"+topologyBucket+"/"+topologyKey, "--report-interval", reportInterval.String())
	serve.Env = slices.Concat(os.Environ(), f.minio.Env())
	var serveLog strings.Builder
	serve.Stdout, serve.Stderr = &serveLog, &serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = serve.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = serve.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("fleet serve log:\n%s", serveLog.String())
		}
	})
	waitFor(t, 15*time.Second, "fleet serve answering", func() bool {
		code, _, err := get(url+"api/fleet", "")
		return err == nil && code == 200
	})

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1600, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`#nodes tbody tr[data-id]`))); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#nodes tbody tr[data-id]')].map(r => r.dataset.id)`))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 8; i++ {
		if !slices.Contains(ids, frontID(i)) {
			t.Errorf("the page does not list front-%d (%s): %v", i, frontID(i), ids)
		}
	}
	for _, id := range []string{dbID(1), dbID(2), dbID(3)} {
		if !slices.Contains(ids, id) {
			t.Errorf("the page does not list %s: %v", id, ids)
		}
	}
	imbalance, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#matrix tr[data-role="front"][data-imbalanced="true"]`)))
	if err != nil {
		t.Fatalf("no imbalanced front row in the roles x AZs matrix: %v", err)
	}
	if !strings.Contains(imbalance, "6 in us-east-1a, 2 in us-east-1b") {
		t.Errorf("front row says %q, want the imbalance spelled out", imbalance)
	}
	if v := attr(t, ctx, `#matrix tr[data-role="db"]`, "data-imbalanced"); v != "false" {
		t.Errorf("db row data-imbalanced=%q, want false", v)
	}

	// Everything in a report is text on the page, never markup: a
	// report (terminated, so it changes no count) full of HTML.
	hostile := `<img id="injected" src="x" onerror="document.body.dataset.pwned=1">`
	evil, err := report.Encode(&report.Report{Schema: 1, InstanceID: "i-0evil", Role: "front", Group: frontGroup, AZ: "us-east-1a",
		AgentVersion: hostile, Reason: hostile, Terminated: true, Draining: true, ReportedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	f.minio.Put(t, reportsBucket, reportsPrefix+"i-0evil.json", evil)
	evilRow := `#nodes tbody tr[data-id="i-0evil"]`
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(evilRow))); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(evilRow)))
	if err != nil {
		t.Fatal(err)
	}
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('injected') !== null || document.body.dataset.pwned === '1'`))
	if err != nil || injected || !strings.Contains(text, hostile) {
		t.Errorf("a report's HTML reached the DOM as markup (injected %v, %v); row text %q", injected, err, text)
	}

	// Drain one agent (its metadata says Terminated, then SIGTERM;
	// --drain-time 0): its drain report is written before it exits. Count
	// the page's loads from then on.
	sel := `#nodes tbody tr[data-id="` + drained.instanceID + `"]`
	if v := attr(t, ctx, sel, "data-ready"); v != "true" {
		t.Fatalf("%s row data-ready=%q before the drain, want true", drained.name, v)
	}
	drained.terminate()
	drained.signal(syscall.SIGTERM)
	loadsAt := pageLoads(t, ctx)
	waitFor(t, 15*time.Second, drained.name+" shown not ready", func() bool { return attr(t, ctx, sel, "data-ready") == "false" })
	// One refresh: the server reloads once (every --refresh) and the page
	// fetches once after that; a page fetch that started before the
	// reload may land in between.
	if n := pageLoads(t, ctx) - loadsAt; n > 3 {
		t.Errorf("the drained node turned unready only %d page loads after its drain, want within one refresh (at most 3 loads)", n)
	}
	if v := attr(t, ctx, sel, "data-state"); v != "draining" {
		t.Errorf("drained row data-state=%q, want draining", v)
	}

	// The detail of a node shows its last apply's changed files with
	// their reasons, and its smoke checks.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#nodes tbody tr[data-id="`+dbID(1)+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#detail table[data-changes]`))); err != nil {
		t.Fatal(err)
	}
	detail, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#detail`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(detail, "/etc/hosts") || !strings.Contains(detail, "Smoke checks") {
		t.Errorf("db-a detail lacks its changed files:\n%s", detail)
	}
	explained, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`[...document.querySelectorAll('#detail table[data-changes] tbody tr')].every(r => r.cells.length == 2 && r.cells[1].textContent.trim() != '')`))
	if err != nil || !explained {
		t.Errorf("a changed file in db-a's detail has no reason (%v):\n%s", err, detail)
	}
	if shot := os.Getenv("NODEAGENT_PANEL_SCREENSHOT"); shot != "" {
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(shot, png, 0o644)
		}
	}
}

// attr reads an attribute of the first element sel matches ("" when
// there is none).
func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	res, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		t.Fatalf("%s[%s]: %v", sel, name, err)
	}
	return res.Value
}

func pageLoads(t *testing.T, ctx context.Context) int {
	t.Helper()
	n, _ := strconv.Atoi(attr(t, ctx, "body", "data-loads"))
	return n
}
