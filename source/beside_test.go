package source

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestBeside(t *testing.T) {
	ctx := context.Background()
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "example")
	for _, tc := range []struct {
		url, rel, want string
	}{
		{"s3://fleet/prod/topology.json", "rollouts/7.json", "s3://fleet/prod/rollouts/7.json"},
		{"s3://fleet/topology.json", "history/6.json", "s3://fleet/history/6.json"},
		{"file:///etc/nodeagent/topology.json", "rollouts/7.json", "file:///etc/nodeagent/rollouts/7.json"},
		{"https://config.example/fleet/topology.json", "rollouts/7.json", "https://config.example/fleet/rollouts/7.json"},
	} {
		src, err := New(ctx, tc.url, Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Beside(src, tc.rel)
		if err != nil || b.String() != tc.want {
			t.Errorf("Beside(%s, %s) = %v, %v; want %s", tc.url, tc.rel, b, err, tc.want)
		}
	}
	src, _ := New(ctx, "https://bucket.s3.amazonaws.com/topology.json?X-Amz-Signature=abc", Options{})
	if _, err := Beside(src, "rollouts/7.json"); err == nil {
		t.Error("Beside a presigned URL: want an error")
	}
	src, _ = New(ctx, "s3://fleet/topology.json", Options{})
	for _, rel := range []string{"", "/etc/passwd", "../other/topology.json"} {
		if _, err := Beside(src, rel); err == nil {
			t.Errorf("Beside(%q): want an error", rel)
		}
	}
	// A file beside: fetched, and a missing one is not found.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "rollouts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rollouts", "7.json"), []byte(`{"schema":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	src, _ = New(ctx, "file://"+filepath.Join(dir, "topology.json"), Options{})
	b, _ := Beside(src, "rollouts/7.json")
	if f, err := b.Fetch(ctx, ""); err != nil || string(f.Body) != `{"schema":1}` {
		t.Errorf("fetch beside: %q %v", f.Body, err)
	}
	b, _ = Beside(src, "rollouts/8.json")
	if _, err := b.Fetch(ctx, ""); !IsNotFound(err) {
		t.Errorf("missing object beside: %v, want not found", err)
	}
}
