// Command abtime times variants of one command line against each other,
// interleaved, so that a noisy host's slow and quick spells fall on every
// variant alike:
//
//	abtime [-n RUNS] [-env FILE] [-args FILE] VARIANT... [-- ARG...]
//
// A VARIANT is a binary, optionally preceded by VAR=value words that are
// added to its environment ("GOMAXPROCS=1 ./nodeagent"). Each round runs
// every variant once, with the same arguments: those after --, or one a
// line from -args. The order rotates from round to round, so that no
// variant always follows the same one. -env names a file of VAR=value lines that is
// each run's whole environment (the current one when not given).
//
// For each variant it prints the median, minimum and 90th percentile of
// the wall time from start to exit, and the median CPU time (user and
// system) of the process. A run that fails stops abtime with its output.
//
// With a node held by the end-to-end benchmark (NODEAGENT_BENCH_HOLD=DIR,
// see bench/e2e_bench_test.go), A against B on the web node:
//
//	abtime -n 201 -env DIR/web.env -args DIR/web.args ./nodeagent-a ./nodeagent-b
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "abtime:", err)
		os.Exit(1)
	}
}

type variant struct {
	name string   // as given
	bin  string   // the binary
	env  []string // added to the base environment
}

func run(argv []string, out io.Writer) error {
	fs := flag.NewFlagSet("abtime", flag.ContinueOnError)
	n := fs.Int("n", 101, "rounds (each runs every variant once)")
	envFile := fs.String("env", "", "file of VAR=value lines: each run's environment")
	argsFile := fs.String("args", "", "file of the command's arguments, one a line")
	if err := fs.Parse(argv); err != nil {
		return err
	}
	rest := fs.Args()
	var specs, args []string
	if i := slices.Index(rest, "--"); i >= 0 {
		specs, args = rest[:i], rest[i+1:]
	} else {
		specs = rest
	}
	if len(specs) == 0 || *n < 1 {
		return errors.New("usage: abtime [-n RUNS] [-env FILE] [-args FILE] VARIANT... [-- ARG...]")
	}
	base := os.Environ()
	if *envFile != "" {
		lines, err := readLines(*envFile)
		if err != nil {
			return err
		}
		base = lines
	}
	if *argsFile != "" {
		if len(args) > 0 {
			return errors.New("arguments both after -- and in -args")
		}
		lines, err := readLines(*argsFile)
		if err != nil {
			return err
		}
		args = lines
	}
	variants := make([]variant, len(specs))
	for i, spec := range specs {
		v, err := parseVariant(spec)
		if err != nil {
			return err
		}
		variants[i] = v
	}

	walls := make([][]time.Duration, len(variants))
	cpus := make([][]time.Duration, len(variants))
	for round := range *n {
		for k := range variants {
			i := (round + k) % len(variants)
			v := variants[i]
			cmd := exec.Command(v.bin, args...)
			cmd.Env = append(slices.Clone(base), v.env...)
			var output bytes.Buffer
			cmd.Stdout, cmd.Stderr = &output, &output
			start := time.Now()
			err := cmd.Run()
			wall := time.Since(start)
			if err != nil {
				return fmt.Errorf("%s: %w\n%s", v.name, err, output.Bytes())
			}
			walls[i] = append(walls[i], wall)
			cpus[i] = append(cpus[i], cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		}
	}
	for i, v := range variants {
		slices.Sort(walls[i])
		slices.Sort(cpus[i])
		w := walls[i]
		fmt.Fprintf(out, "%-50s wall median %s min %s p90 %s | cpu median %s (%d runs)\n",
			v.name, ms(w[len(w)/2]), ms(w[0]), ms(w[len(w)*9/10]), ms(cpus[i][len(w)/2]), len(w))
	}
	return nil
}

// parseVariant splits "VAR=value ... BIN".
func parseVariant(spec string) (variant, error) {
	words := strings.Fields(spec)
	if len(words) == 0 {
		return variant{}, errors.New("an empty variant")
	}
	bin := words[len(words)-1]
	for _, w := range words[:len(words)-1] {
		if !strings.Contains(w, "=") {
			return variant{}, fmt.Errorf("variant %q: %q is not VAR=value (the binary comes last)", spec, w)
		}
	}
	return variant{name: spec, bin: bin, env: words[:len(words)-1]}, nil
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lines []string
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimRight(l, "\n"); l != "" {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
