// Package metrics keeps the agent's counters, gauges and histograms and
// serves them, with the Go runtime's and the process's standard series, in
// the Prometheus text exposition format (version 0.0.4).
//
// It replaces github.com/prometheus/client_golang, which the agent used
// first: that library links protobuf and procfs, whose package
// initialisation cost every nodeagent command 3.5-4 ms of start-up on the
// benchmark machine, and whose pages kept an idle `nodeagent run` 2.4 MB
// over its 20 MB budget (BENCHMARKS.md). The agent needs a handful of
// series with at most one label; this package is that and no more. Its
// output is checked against the Prometheus project's own parser in the
// tests.
package metrics

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metric families and writes them in name order.
type Registry struct {
	mu       sync.Mutex
	families []family
	series   map[string]string // every sample name written, to the family writing it
	runtime  bool
}

// family is one metric name: its metadata and how to write its samples.
type family interface {
	meta() (name, help, typ string)
	write(w *bufio.Writer)
}

// NewRegistry returns an empty registry. With runtime, its output also
// carries the go_* and process_* series (see runtime.go).
func NewRegistry(runtime bool) *Registry {
	return &Registry{runtime: runtime}
}

// register adds f, refusing a name that is invalid, taken, or would write
// a sample line another family writes (a histogram's _bucket, _sum and
// _count; the runtime's go_* and process_*): any of those would make the
// whole exposition unparsable.
func (r *Registry) register(f family) {
	name, _, typ := f.meta()
	if !validName(name) {
		panic("metrics: invalid metric name " + strconv.Quote(name))
	}
	if r.runtime && (strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_")) {
		panic("metrics: " + name + ": go_* and process_* are the runtime's")
	}
	samples := []string{name}
	if typ == "histogram" {
		samples = append(samples, name+"_bucket", name+"_sum", name+"_count")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.series == nil {
		r.series = map[string]string{}
	}
	for _, n := range samples {
		if owner, taken := r.series[n]; taken {
			panic("metrics: " + name + ": " + n + " is already written by " + owner)
		}
	}
	for _, n := range samples {
		r.series[n] = name
	}
	r.families = append(r.families, f)
	slices.SortFunc(r.families, func(a, b family) int {
		an, _, _ := a.meta()
		bn, _, _ := b.meta()
		return strings.Compare(an, bn)
	})
}

// ContentType is the media type of what WriteTo writes.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteTo writes every family, then the runtime and process series if
// the registry has them.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriter(cw)
	r.mu.Lock()
	families := slices.Clone(r.families)
	r.mu.Unlock()
	for _, f := range families {
		name, help, typ := f.meta()
		writeHeader(bw, name, help, typ)
		f.write(bw)
	}
	if r.runtime {
		writeRuntime(bw)
	}
	err := bw.Flush()
	return cw.n, err
}

// ServeHTTP serves the registry's exposition.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", ContentType)
	_, _ = r.WriteTo(w)
}

// Counter only goes up.
type Counter struct {
	n atomic.Uint64
}

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Value is the count so far.
func (c *Counter) Value() uint64 { return c.n.Load() }

// Gauge is a value that is set.
type Gauge struct {
	bits atomic.Uint64
}

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Value is the gauge's value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

type scalar struct {
	name, help, typ string
	value           func() float64
}

func (s *scalar) meta() (string, string, string) { return s.name, s.help, s.typ }

func (s *scalar) write(w *bufio.Writer) { writeSample(w, s.name, "", "", s.value()) }

// NewCounter registers a counter without labels.
func (r *Registry) NewCounter(name, help string) *Counter {
	c := &Counter{}
	r.register(&scalar{name, help, "counter", func() float64 { return float64(c.Value()) }})
	return c
}

// NewGauge registers a gauge without labels.
func (r *Registry) NewGauge(name, help string) *Gauge {
	g := &Gauge{}
	r.register(&scalar{name, help, "gauge", g.Value})
	return g
}

// vec is a family with one label: a series per label value, written in
// label-value order.
type vec[T any] struct {
	name, help, typ, label string
	value                  func(*T) float64
	mu                     sync.Mutex
	series                 map[string]*T
}

func (v *vec[T]) meta() (string, string, string) { return v.name, v.help, v.typ }

func (v *vec[T]) with(value string) *T {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.series[value]
	if !ok {
		s = new(T)
		v.series[value] = s
	}
	return s
}

func (v *vec[T]) write(w *bufio.Writer) {
	v.mu.Lock()
	values := make([]string, 0, len(v.series))
	for k := range v.series {
		values = append(values, k)
	}
	slices.Sort(values)
	samples := make([]float64, len(values))
	for i, k := range values {
		samples[i] = v.value(v.series[k])
	}
	v.mu.Unlock()
	for i, k := range values {
		writeSample(w, v.name, v.label, k, samples[i])
	}
}

// CounterVec is a counter per value of one label.
type CounterVec struct{ v *vec[Counter] }

// With is the counter for a label value, created at zero on first use.
func (c CounterVec) With(value string) *Counter { return c.v.with(value) }

// GaugeVec is a gauge per value of one label.
type GaugeVec struct{ v *vec[Gauge] }

// With is the gauge for a label value, created at zero on first use.
func (g GaugeVec) With(value string) *Gauge { return g.v.with(value) }

// Reset drops every series, so that only values set afterwards are written.
func (g GaugeVec) Reset() {
	g.v.mu.Lock()
	clear(g.v.series)
	g.v.mu.Unlock()
}

// NewCounterVec registers a counter family with one label; the listed
// values are written (at zero) before they are first counted.
func (r *Registry) NewCounterVec(name, help, label string, values ...string) CounterVec {
	mustLabel(name, label)
	v := &vec[Counter]{name: name, help: help, typ: "counter", label: label,
		value: func(c *Counter) float64 { return float64(c.Value()) }, series: map[string]*Counter{}}
	for _, x := range values {
		v.with(x)
	}
	r.register(v)
	return CounterVec{v}
}

// NewGaugeVec registers a gauge family with one label.
func (r *Registry) NewGaugeVec(name, help, label string) GaugeVec {
	mustLabel(name, label)
	v := &vec[Gauge]{name: name, help: help, typ: "gauge", label: label,
		value: (*Gauge).Value, series: map[string]*Gauge{}}
	r.register(v)
	return GaugeVec{v}
}

// Histogram counts observations in cumulative buckets.
type Histogram struct {
	name, help string
	bounds     []float64 // upper bounds, ascending, without +Inf
	mu         sync.Mutex
	counts     []uint64 // per bucket, not cumulative; the last is +Inf
	sum        float64
	count      uint64
}

// NewHistogram registers a histogram with the given upper bounds, which
// must be ascending.
func (r *Registry) NewHistogram(name, help string, bounds []float64) *Histogram {
	for i, b := range bounds {
		if math.IsNaN(b) || math.IsInf(b, 0) || i > 0 && b <= bounds[i-1] {
			panic("metrics: " + name + ": bucket bounds must be finite and strictly ascending (+Inf is implied)")
		}
	}
	h := &Histogram{name: name, help: help, bounds: slices.Clone(bounds), counts: make([]uint64, len(bounds)+1)}
	r.register(h)
	return h
}

// Observe adds one observation.
func (h *Histogram) Observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v) // first bound >= v: buckets are "le"
	if math.IsNaN(v) {
		i = len(h.bounds) // only in +Inf, as client_golang counts it
	}
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.count++
	h.mu.Unlock()
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

func (h *Histogram) meta() (string, string, string) { return h.name, h.help, "histogram" }

func (h *Histogram) write(w *bufio.Writer) {
	h.mu.Lock()
	counts := slices.Clone(h.counts)
	sum, count := h.sum, h.count
	h.mu.Unlock()
	var cum uint64
	for i, b := range h.bounds {
		cum += counts[i]
		writeSample(w, h.name+"_bucket", "le", formatFloat(b), float64(cum))
	}
	writeSample(w, h.name+"_bucket", "le", "+Inf", float64(count))
	writeSample(w, h.name+"_sum", "", "", sum)
	writeSample(w, h.name+"_count", "", "", float64(count))
}

func writeHeader(w *bufio.Writer, name, help, typ string) {
	if help != "" {
		w.WriteString("# HELP " + name + " " + helpEscaper.Replace(help) + "\n")
	}
	w.WriteString("# TYPE " + name + " " + typ + "\n")
}

// writeSample writes one line: name, the label if there is one, value.
func writeSample(w *bufio.Writer, name, label, value string, v float64) {
	w.WriteString(name)
	if label != "" {
		// A label value must be UTF-8 or the scrape fails as a whole.
		w.WriteString("{" + label + `="` + labelEscaper.Replace(strings.ToValidUTF8(value, "\uFFFD")) + `"}`)
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// validName reports whether s is a metric or label name in the classic
// Prometheus character set: [a-zA-Z_:][a-zA-Z0-9_:]*.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func mustLabel(name, label string) {
	if !validName(label) || strings.Contains(label, ":") || label == "le" || strings.HasPrefix(label, "__") {
		panic("metrics: " + name + ": invalid label name " + strconv.Quote(label))
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
