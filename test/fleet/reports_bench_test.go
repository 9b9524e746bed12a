//go:build integration

package fleet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chromedp/chromedp"

	"github.com/nodeagent/nodeagent/report"
	"github.com/nodeagent/nodeagent/test/harness"
)

// benchReports is the fleet size of the fleet status and fleet serve
// benchmarks.
const benchReports = 2000

// seedReports puts n realistic reports (a web node's: nine changed files
// with reasons, two smoke checks) under the fleet's reports prefix.
func seedReports(b *testing.B, f *lightFleet, n int) {
	b.Helper()
	c := f.minio.Client()
	now := time.Now().UTC()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			id := fmt.Sprintf("i-0b%015x", i)
			r := &report.Report{Schema: report.Schema, InstanceID: id, PrivateIP: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1),
				AZ: []string{"us-east-1a", "us-east-1b", "us-east-1c"}[i%3], Group: frontGroup, Role: "front", Products: []string{"shop"},
				SerialApplied: 1, SerialSeen: 1, Releases: map[string]string{"shop": "2026.11.20-1"}, Ready: true,
				Reason: "serial 1 applied, 2 smoke checks passed", AgentVersion: "1.4.0", BootTime: now.Add(-time.Hour), ReportedAt: now,
				Event:     report.EventHeartbeat,
				LastApply: &report.Apply{Result: report.ResultOK, Serial: 1, At: now.Add(-time.Hour), DurationMS: 850, ChangedFiles: 9},
				Smoke:     []report.SmokeResult{{Name: "shop/home", OK: true, DurationMS: 12}, {Name: "shop/php-probe", OK: true, DurationMS: 4}}}
			for _, p := range []string{"/etc/hosts", "/etc/apache2/ports.conf", "/etc/apache2/conf-enabled/nodeagent.conf",
				"/etc/apache2/sites-enabled/00-nodeagent-default.conf", "/etc/apache2/sites-enabled/nodeagent-shop.conf",
				"/etc/php/8.2/fpm/pool.d/00-nodeagent-global.conf", "/etc/php/8.2/fpm/pool.d/nodeagent-shop.conf",
				"/etc/nodeagent/products/shop.php", "/var/lib/nodeagent/probe/php-probe.php"} {
				r.LastApply.Changes = append(r.LastApply.Changes, report.Change{Path: p, Reason: "new file"})
			}
			body, err := report.Encode(r)
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(reportsBucket), Key: aws.String(report.Key(reportsPrefix, id)),
					Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
				cancel()
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("seed reports: %v", err)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkFleetStatus times `nodeagent fleet status` (the binary, a cold
// process each run: topology GET, ListObjectsV2 pages, 2,000 GETs, the
// table) over 2,000 reports in MinIO, 7 runs each as a table and as JSON,
// with the CPU time of the command and of MinIO beside the wall time (on
// a shared machine the wall is what the two get of the cores).
func BenchmarkFleetStatus(b *testing.B) {
	f := newLightFleet(b)
	f.publish(1)
	seedReports(b, f, benchReports)
	minio := minioPid(b, f.minio)
	row := ""
	for _, mode := range [][]string{{}, {"--json"}} {
		var runs, cpus, minioCPUs []time.Duration
		for range 7 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			cmd := exec.CommandContext(ctx, bins.nodeagent, slices.Concat([]string{"fleet", "status", "--topology", "s3://" + topologyBucket + "/" + topologyKey}, mode)...)
			cmd.Env = slices.Concat(os.Environ(), f.minio.Env())
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			m0 := cpuTime(b, minio)
			start := time.Now()
			err := cmd.Run()
			runs = append(runs, time.Since(start))
			minioCPUs = append(minioCPUs, cpuTime(b, minio)-m0)
			cancel()
			if err != nil || !bytes.Contains(out.Bytes(), []byte("i-0b0000000000007cf")) {
				b.Fatalf("fleet status %v: %v, last report missing\n%s", mode, err, out.Bytes())
			}
			cpus = append(cpus, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		}
		m := median(runs)
		name := "table"
		if len(mode) > 0 {
			name = "--json"
		}
		b.ReportMetric(m.Seconds(), "median-s-"+name[len(name)-4:])
		row += fmt.Sprintf("| fleet status %s, %d reports (CPU: command %s, MinIO %s; load %s) | 7 | %s | %s | %s | < 2 s | %s |\n",
			name, benchReports, ms(median(cpus)), ms(median(minioCPUs)), loadAvg(), ms(m), ms(slices.Min(runs)), ms(slices.Max(runs)),
			verdict(m < 2*time.Second))
	}
	writeSection(b, "reports-status", row)
}

// minioPid finds the MinIO server process serving m (its command line
// names its address).
func minioPid(b *testing.B, m *harness.MinIO) int {
	b.Helper()
	addr := strings.TrimPrefix(m.Endpoint, "http://")
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if bytes.Contains(cmdline, []byte("server")) && bytes.Contains(cmdline, []byte(addr)) {
			return pid
		}
	}
	b.Fatalf("no MinIO process serving %s", addr)
	return 0
}

// loadAvg is the 1-minute load average.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// BenchmarkFleetServe times the answer of `fleet serve` to the page's
// request for a 2,000-node fleet (GET /api/fleet, gzip as a browser asks,
// and identity) and the page itself (GET /), 50 requests each, measured
// by the client over loopback.
func BenchmarkFleetServe(b *testing.B) {
	f := newLightFleet(b)
	f.publish(1)
	seedReports(b, f, benchReports)
	port := harness.FreePort(b)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	serve := exec.Command(bins.nodeagent, "fleet", "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--refresh", "5s",
		"--topology", "s3://"+topologyBucket+"/"+topologyKey)
	serve.Env = slices.Concat(os.Environ(), f.minio.Env())
	if err := serve.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = serve.Process.Kill(); _ = serve.Wait() }()
	waitFor(b, 30*time.Second, "fleet serve loaded", func() bool {
		code, _, err := get(base+"/api/fleet", "")
		return err == nil && code == 200
	})
	tr := &http.Transport{DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	row := ""
	for _, c := range []struct{ name, path, enc string }{
		{"GET /api/fleet (gzip)", "/api/fleet", "gzip"},
		{"GET /api/fleet (identity)", "/api/fleet", ""},
		{"GET / (the page)", "/", ""},
	} {
		var runs []time.Duration
		size := 0
		for range 50 {
			req, _ := http.NewRequest(http.MethodGet, base+c.path, nil)
			if c.enc != "" {
				req.Header.Set("Accept-Encoding", c.enc)
			}
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			runs = append(runs, time.Since(start))
			size = int(n)
		}
		m := median(runs)
		sorted := slices.Clone(runs)
		slices.Sort(sorted)
		p90 := sorted[len(sorted)*9/10]
		row += fmt.Sprintf("| fleet serve %s, %d nodes, %d KB | 50 | %s | %s | %s (p90) | < 300 ms | %s |\n", c.name, benchReports, size/1024,
			ms(m), ms(sorted[0]), ms(p90), verdict(p90 < 300*time.Millisecond))
	}
	row += pageRender(b, base+"/")
	writeSection(b, "reports-serve", row)
}

// pageRender opens the page in headless Chromium 5 times and times each
// from navigation to the node table holding every node (the page's HTML,
// script, one /api/fleet, JSON parse and the DOM), for information.
func pageRender(b *testing.B, url string) string {
	if _, err := os.Stat(chromiumPath); err != nil {
		b.Fatalf("%s: %v (tools/deps.sh installs the chromium package)", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU, chromedp.WindowSize(1600, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		b.Fatal(err)
	}
	var runs []time.Duration
	for range 5 {
		ctx, cancel := context.WithTimeout(bctx, time.Minute)
		start := time.Now()
		err := chromedp.Do(ctx, chromedp.Navigate(url),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#nodes tbody tr:nth-child(%d)`, benchReports))))
		runs = append(runs, time.Since(start))
		cancel()
		if err != nil {
			b.Fatalf("page with %d nodes: %v", benchReports, err)
		}
	}
	m := median(runs)
	row := fmt.Sprintf("| the page in headless Chromium: open to %d rows shown (information) | 5 | %s | %s | %s | — | — |\n",
		benchReports, ms(m), ms(slices.Min(runs)), ms(slices.Max(runs)))
	// Each refresh re-renders the whole page from the new snapshot: the
	// page records how long its last render took.
	var renders []time.Duration
	last := ""
	for len(renders) < 5 {
		ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		res, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("body"), "data-loads"))
		if err == nil && res.Value != last {
			last = res.Value
			r, err2 := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("body"), "data-render-ms"))
			if v, perr := strconv.Atoi(r.Value); err2 == nil && perr == nil {
				renders = append(renders, time.Duration(v)*time.Millisecond)
			}
		}
		cancel()
		time.Sleep(500 * time.Millisecond)
	}
	row += fmt.Sprintf("| the page in headless Chromium: one refresh's re-render of %d rows (information) | 5 | %s | %s | %s | — | — |\n",
		benchReports, ms(median(renders)), ms(slices.Min(renders)), ms(slices.Max(renders)))
	return row
}

// BenchmarkReportPuts runs one idle light agent with --report-interval
// 10s for 120 s and counts the report PUTs MinIO served: at idle one per
// interval, so 60 / (interval in minutes) per hour.
func BenchmarkReportPuts(b *testing.B) {
	const window = 120 * time.Second
	f := newLightFleet(b)
	f.every = 10 * time.Second
	f.publish(1)
	n := f.start("db-a", "db", "us-east-1a", dbID(1), "127.0.41.1", "")
	waitFor(b, 30*time.Second, "db-a ready", func() bool { return agentReady(n) })
	// Past the boot's reports (start, apply).
	time.Sleep(2 * time.Second)
	puts0 := f.minio.APIRequests(b, "PutObject")
	start := time.Now()
	time.Sleep(window)
	puts := f.minio.APIRequests(b, "PutObject") - puts0
	elapsed := time.Since(start)
	intervals := elapsed.Seconds() / f.every.Seconds()
	perHour := float64(puts) * 3600 / elapsed.Seconds()
	want := 60 / f.every.Minutes()
	b.ReportMetric(float64(puts)/intervals, "puts/interval")
	writeSection(b, "reports-puts", fmt.Sprintf("| idle agent, --report-interval %s | %s | %d PutObject (MinIO) in %.0f intervals: %.2f per interval | %.0f per hour | %.0f per hour | %s |\n",
		f.every, secs(elapsed), puts, intervals, float64(puts)/intervals, perHour, want,
		// Within one PUT of one per interval: where the window starts in
		// the heartbeat's phase decides between floor and ceil.
		verdict(math.Abs(float64(puts)-intervals) <= 1.05)))
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000)
}
