package metrics

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parse reads an exposition with the Prometheus project's own text
// parser (what a Prometheus server scraping the agent runs), with the
// classic name rules, so a line it would reject fails the test.
func parse(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus' parser rejects the exposition: %v\n%s", err, text)
	}
	return families
}

func exposition(t *testing.T, r *Registry) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := r.WriteTo(&b)
	if err != nil || n != int64(b.Len()) {
		t.Fatalf("WriteTo = %d, %v; wrote %d bytes", n, err, b.Len())
	}
	return b.Bytes()
}

func TestExpositionIsExactAndParses(t *testing.T) {
	r := NewRegistry(false)
	applies := r.NewCounterVec("x_applies_total", "Applies by result.", "result", "ok", "failed")
	ready := r.NewGauge("x_ready", "1 when ready.")
	smoke := r.NewGaugeVec("x_smoke_ok", "Smoke result.\nSecond line with a \\.", "check")
	d := r.NewHistogram("x_apply_seconds", "Apply time.", []float64{0.05, 0.1, 1})
	polls := r.NewCounter("x_polls_total", "")

	applies.With("ok").Inc()
	applies.With("ok").Inc()
	applies.With("refused").Inc()
	ready.Set(1)
	smoke.With(`shop/"home"` + "\n" + `\`).Set(0)
	smoke.With("blog/home").Set(1)
	for _, v := range []float64{0.05, 0.07, 0.5, 3} { // 0.05 is on a bound: counted as le 0.05
		d.Observe(v)
	}
	polls.Inc()

	nan := NewRegistry(false)
	nh := nan.NewHistogram("n_seconds", "", []float64{1})
	nh.Observe(math.NaN())
	nan.NewGaugeVec("n_g", "", "k").With("bad\xff").Set(1)
	if got := string(exposition(t, nan)); !strings.Contains(got, `n_seconds_bucket{le="1"} 0`) ||
		!strings.Contains(got, `n_seconds_bucket{le="+Inf"} 1`) || !strings.Contains(got, "n_g{k=\"bad\uFFFD\"} 1") {
		t.Errorf("NaN observation or invalid UTF-8 label:\n%s", got)
	} else {
		parse(t, []byte(got))
	}

	want := `# HELP x_applies_total Applies by result.
# TYPE x_applies_total counter
x_applies_total{result="failed"} 0
x_applies_total{result="ok"} 2
x_applies_total{result="refused"} 1
# HELP x_apply_seconds Apply time.
# TYPE x_apply_seconds histogram
x_apply_seconds_bucket{le="0.05"} 1
x_apply_seconds_bucket{le="0.1"} 2
x_apply_seconds_bucket{le="1"} 3
x_apply_seconds_bucket{le="+Inf"} 4
x_apply_seconds_sum 3.62
x_apply_seconds_count 4
# TYPE x_polls_total counter
x_polls_total 1
# HELP x_ready 1 when ready.
# TYPE x_ready gauge
x_ready 1
# HELP x_smoke_ok Smoke result.\nSecond line with a \\.
# TYPE x_smoke_ok gauge
x_smoke_ok{check="blog/home"} 1
x_smoke_ok{check="shop/\"home\"\n\\"} 0
`
	got := exposition(t, r)
	if string(got) != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}

	families := parse(t, got)
	if h := families["x_apply_seconds"].GetMetric()[0].GetHistogram(); h.GetSampleCount() != 4 || h.GetBucket()[1].GetCumulativeCount() != 2 {
		t.Errorf("parsed histogram = %v", h)
	}
	if l := families["x_smoke_ok"].GetMetric()[1].GetLabel()[0].GetValue(); l != `shop/"home"`+"\n"+`\` {
		t.Errorf("parsed label value = %q: escaping does not round-trip", l)
	}
	if help := families["x_smoke_ok"].GetHelp(); help != "Smoke result.\nSecond line with a \\." {
		t.Errorf("parsed help = %q", help)
	}

	smoke.Reset()
	if strings.Contains(string(exposition(t, r)), "x_smoke_ok{") {
		t.Error("GaugeVec.Reset left series behind")
	}
}

func TestRuntimeAndProcessSeries(t *testing.T) {
	// Use some CPU first, so that process_cpu_seconds_total (in 10 ms
	// ticks) has something to show, and take the kernel's count of it.
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	// Rounded down to whole ticks, as /proc/self/stat counts.
	cpuBefore := float64((time.Duration(ru.Utime.Nano()+ru.Stime.Nano())/(10*time.Millisecond))*10*time.Millisecond)/1e9 - 0.02
	r := NewRegistry(true)
	r.NewGauge("x_ready", "1 when ready.").Set(1)
	srv := httptest.NewServer(r)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != ContentType {
		t.Errorf("Content-Type = %q, want %q", ct, ContentType)
	}
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	families := parse(t, body.Bytes())
	value := func(name string) float64 {
		f, ok := families[name]
		if !ok {
			t.Fatalf("no %s in\n%s", name, body.Bytes())
		}
		m := f.GetMetric()[0]
		if f.GetType() == dto.MetricType_COUNTER {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	if v := value("go_goroutines"); v < 1 {
		t.Errorf("go_goroutines = %v", v)
	}
	if v := value("go_memstats_alloc_bytes"); v <= 0 {
		t.Errorf("go_memstats_alloc_bytes = %v", v)
	}
	// The process series must agree with what the kernel says of this
	// process: resident memory within a factor of two of VmRSS (it moves
	// while the test runs), a start time in the past hour, open fds at least
	// stdin/stdout/stderr and the listening socket.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var vmRSS float64
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			if _, err := fmt.Sscan(v, &kb); err != nil {
				t.Fatal(err)
			}
			vmRSS = kb * 1024
		}
	}
	if rss := value("process_resident_memory_bytes"); rss < vmRSS/2 || rss > vmRSS*2 {
		t.Errorf("process_resident_memory_bytes = %v, /proc/self/status VmRSS = %v bytes", rss, vmRSS)
	}
	if v := value("process_cpu_seconds_total"); v < cpuBefore {
		t.Errorf("process_cpu_seconds_total = %v, below the %v s of CPU this process had used before the scrape", v, cpuBefore)
	}
	if v := value("process_open_fds"); v < 4 || v > value("process_max_fds") {
		t.Errorf("process_open_fds = %v (max %v)", v, value("process_max_fds"))
	}
	st, err := os.Stat("/proc/self")
	if err != nil {
		t.Fatal(err)
	}
	if start := value("process_start_time_seconds"); start < float64(st.ModTime().Unix())-3600 || start > float64(st.ModTime().Unix())+5 {
		t.Errorf("process_start_time_seconds = %v, /proc/self changed at %v", start, st.ModTime().Unix())
	}
	if l := families["go_info"].GetMetric()[0].GetLabel()[0]; l.GetName() != "version" || !strings.HasPrefix(l.GetValue(), "go") {
		t.Errorf("go_info label = %v", l)
	}
}

func TestConcurrentUpdatesAndScrapes(t *testing.T) {
	r := NewRegistry(true)
	c := r.NewCounterVec("x_total", "", "k")
	h := r.NewHistogram("x_seconds", "", []float64{1})
	g := r.NewGaugeVec("x_g", "", "k")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 1000 {
				c.With(string(rune('a' + i))).Inc()
				h.Observe(0.5)
				g.With("x").Set(float64(i))
			}
		})
	}
	scrapeErrs := make(chan error, 50)
	wg.Go(func() { // scrapes: errors are reported from the test goroutine
		for range 50 {
			var b bytes.Buffer
			if _, err := r.WriteTo(&b); err != nil {
				scrapeErrs <- err
				continue
			}
			p := expfmt.NewTextParser(model.LegacyValidation)
			if _, err := p.TextToMetricFamilies(&b); err != nil {
				scrapeErrs <- err
			}
			g.Reset()
		}
	})
	wg.Wait()
	close(scrapeErrs)
	for err := range scrapeErrs {
		t.Errorf("scrape during updates: %v", err)
	}
	if h.Count() != 4000 {
		t.Errorf("histogram count = %d, want 4000", h.Count())
	}
	for i := range 4 {
		if n := c.With(string(rune('a' + i))).Value(); n != 1000 {
			t.Errorf("counter %c = %d, want 1000", 'a'+i, n)
		}
	}
}

func TestRegistrationMistakesPanic(t *testing.T) {
	for name, register := range map[string]func(r *Registry){
		"twice":             func(r *Registry) { r.NewGauge("x", ""); r.NewCounter("x", "") },
		"bad name":          func(r *Registry) { r.NewGauge("x-y", "") },
		"leading digit":     func(r *Registry) { r.NewGauge("1x", "") },
		"label le":          func(r *Registry) { r.NewGaugeVec("x", "", "le") },
		"label reserved":    func(r *Registry) { r.NewGaugeVec("x", "", "__name__") },
		"bounds":            func(r *Registry) { r.NewHistogram("x", "", []float64{1, 1}) },
		"bound +Inf":        func(r *Registry) { r.NewHistogram("x", "", []float64{1, math.Inf(1)}) },
		"bound NaN":         func(r *Registry) { r.NewHistogram("x", "", []float64{math.NaN()}) },
		"histogram sum":     func(r *Registry) { r.NewHistogram("x", "", []float64{1}); r.NewGauge("x_sum", "") },
		"under a histogram": func(r *Registry) { r.NewGauge("x_count", ""); r.NewHistogram("x", "", []float64{1}) },
		"runtime name":      func(r *Registry) { NewRegistry(true).NewGauge("go_goroutines", "") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			register(NewRegistry(false))
		})
	}
}
