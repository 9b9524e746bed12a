package smoke

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes results as an aligned table: check, result, attempts,
// duration (milliseconds), error.
func WriteTable(w io.Writer, rs []Result) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tATTEMPTS\tDURATION\tERROR")
	for _, r := range rs {
		result := "ok"
		if !r.OK {
			result = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", cell(r.Name), result, r.Attempts,
			r.Duration.Round(time.Millisecond), cell(r.Err))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("smoke: write table: %w", err)
	}
	// Padding after the last non-empty cell is noise; drop it.
	var out strings.Builder
	for line := range strings.Lines(buf.String()) {
		out.WriteString(strings.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	if _, err := io.WriteString(w, out.String()); err != nil {
		return fmt.Errorf("smoke: write table: %w", err)
	}
	return nil
}

// cell keeps a value on one table line and in one column.
func cell(s string) string {
	return strings.NewReplacer("\t", " ", "\r", " ", "\n", " ").Replace(s)
}
