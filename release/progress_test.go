package release_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/release"
)

// chunked returns at most n bytes per Read, like a network body.
type chunked struct {
	r io.ReadCloser
	n int
}

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }
func (c chunked) Close() error               { return c.r.Close() }

func TestDownloadProgressIsLogged(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 2<<20)
	for i := range noise {
		noise[i] = byte(rnd.Uint32())
	}
	archive := tarGz(t, file("public/video.bin", string(noise), 0o644))
	r := publish(t, t.TempDir(), "r1", archive)

	tests := []struct {
		name      string
		step      time.Duration // clock advance per reading
		knownSize bool
		min, max  int
	}{
		{name: "slow download, known size: every 10%", step: 6 * time.Second, knownSize: true, min: 8, max: 10},
		{name: "fast download: nothing before 5 s", step: time.Millisecond, knownSize: true, min: 0, max: 0},
		{name: "unknown size: every 30 s", step: 6 * time.Second, knownSize: false, min: 3, max: 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			store := &fileStore{open: func(ctx context.Context, url string) (io.ReadCloser, int64, error) {
				body, size, err := openFileURL(url)
				if !tc.knownSize {
					size = -1
				}
				return chunked{r: body, n: 64 << 10}, size, err
			}}
			m := &release.Manager{
				Root: t.TempDir(), Store: store,
				Logger: slog.New(slog.NewJSONHandler(io.MultiWriter(&logs, testWriter{t}), nil)),
				Now:    newClock(tc.step).Now,
			}
			if err := m.Install(context.Background(), "shop", r); err != nil {
				t.Fatal(err)
			}
			var lastBytes, lines int64
			dec := json.NewDecoder(&logs)
			for {
				var rec struct {
					Msg     string `json:"msg"`
					Bytes   int64  `json:"bytes"`
					Total   *int64 `json:"total"`
					Percent *int64 `json:"percent"`
					Rate    int64  `json:"rate_bytes_per_second"`
				}
				if err := dec.Decode(&rec); err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				if rec.Msg != "release download progress" {
					continue
				}
				lines++
				if rec.Bytes <= lastBytes || rec.Rate <= 0 {
					t.Errorf("progress %+v after %d bytes: want growing bytes and a rate", rec, lastBytes)
				}
				lastBytes = rec.Bytes
				if tc.knownSize && (rec.Total == nil || *rec.Total != int64(len(archive)) || rec.Percent == nil) {
					t.Errorf("progress %+v without total %d and percent", rec, len(archive))
				}
			}
			if lines < int64(tc.min) || lines > int64(tc.max) {
				t.Errorf("%d progress lines, want %d..%d", lines, tc.min, tc.max)
			}
		})
	}
}
