package report_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/report"
)

func sample() *report.Report {
	return &report.Report{
		Schema: report.Schema, InstanceID: "i-0123456789abcdef0", Name: "web-1", PrivateIP: "10.0.1.5",
		AZ: "us-east-1a", Group: "shop-web", Role: "web", Products: []string{"shop"},
		SerialApplied: 41, SerialSeen: 42, Releases: map[string]string{"shop": "r1"},
		Ready: true, Reason: "serial 41 applied, 1 smoke checks passed",
		LastApply: &report.Apply{Result: report.ResultOK, Serial: 41, At: time.Unix(1700000000, 0).UTC(), DurationMS: 120,
			ChangedFiles: 1, Changes: []report.Change{{Path: "/etc/hosts", Reason: "nodes changed"}}},
		AgentVersion: "1.2.3", BootTime: time.Unix(1699990000, 0).UTC(), ReportedAt: time.Unix(1700000001, 0).UTC(),
		Event: report.EventApply,
	}
}

func TestRoundTrip(t *testing.T) {
	r := sample()
	b, err := report.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := report.Decode(r.InstanceID, b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := report.Encode(got)
	if string(again) != string(b) {
		t.Errorf("round trip changed the report:\n%s\n%s", b, again)
	}
}

func TestDecodeProblems(t *testing.T) {
	good, _ := report.Encode(sample())
	tests := []struct {
		name string
		id   string
		data string
		want error
	}{
		{"not json", "i-0123456789abcdef0", "{not json", report.ErrCorrupt},
		{"truncated", "i-0123456789abcdef0", string(good[:len(good)/2]), report.ErrCorrupt},
		{"no schema", "i-0123456789abcdef0", `{"instance_id":"i-0123456789abcdef0"}`, report.ErrCorrupt},
		{"wrong type", "i-0123456789abcdef0", `{"schema":1,"instance_id":"i-0123456789abcdef0","ready":"yes"}`, report.ErrCorrupt},
		{"newer schema", "i-0123456789abcdef0", `{"schema":2,"instance_id":"i-0123456789abcdef0"}`, report.ErrSchema},
		{"other instance", "i-other", string(good), report.ErrForeign},
		{"too large", "i-x", `{"schema":1,"reason":"` + strings.Repeat("x", report.MaxSize) + `"}`, report.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := report.Decode(tt.id, []byte(tt.data))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %v, want %v", err, tt.want)
			}
			if report.Kind(err) == "unreadable" {
				t.Errorf("Kind(%v) = unreadable", err)
			}
		})
	}
}

func TestBound(t *testing.T) {
	r := sample()
	long := strings.Repeat("é", report.MaxText)
	r.Reason = long
	r.LastApply.Error = long
	for i := range 200 {
		r.LastApply.Changes = append(r.LastApply.Changes, report.Change{Path: "/etc/x", Reason: long})
		_ = i
	}
	orig := r.LastApply.Changes[0].Reason
	b, err := report.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	if r.LastApply.Changes[0].Reason != orig || r.Reason != long {
		t.Error("Encode changed the caller's report")
	}
	var got report.Report
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.LastApply.Changes) != report.MaxChanges {
		t.Errorf("%d changes, want %d", len(got.LastApply.Changes), report.MaxChanges)
	}
	if len(got.Reason) > report.MaxText || !strings.HasSuffix(got.Reason, "…") || !json.Valid(b) {
		t.Errorf("reason not clipped: %d bytes", len(got.Reason))
	}
	if len(b) > 64<<10 {
		t.Errorf("bounded report is %d bytes", len(b))
	}
}

func TestInstanceOf(t *testing.T) {
	for key, want := range map[string]string{
		"reports/i-0abc.json":     "i-0abc",
		"reports/i-0abc.json.tmp": "",
		"reports/sub/i-0abc.json": "",
		"reports/.json":           "",
		"other/i-0abc.json":       "",
		"reports/i 0abc.json":     "",
	} {
		id, ok := report.InstanceOf("reports/", key)
		if id != want || ok != (want != "") {
			t.Errorf("InstanceOf(%q) = %q, %v; want %q", key, id, ok, want)
		}
	}
}

func TestEncodeRedacts(t *testing.T) {
	r := sample()
	secret := "https://releases.s3.amazonaws.com/shop/r2.tar.gz?X-Amz-Signature=deadbeefcafe&X-Amz-Credential=AKIAEXAMPLE"
	r.LastError = "fetch " + secret + ": 403"
	r.LastApply.Error = "download " + secret
	r.Smoke = []report.SmokeResult{{Name: "home", Error: "get " + secret}}
	r.LastApply.Changes = []report.Change{{Path: "/etc/x", Reason: "products.shop.release.url changed to " + secret}}
	b, err := report.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "deadbeefcafe") || strings.Contains(string(b), "AKIAEXAMPLE") {
		t.Errorf("a URL secret reached the report:\n%s", b)
	}
	if !strings.Contains(string(b), "releases.s3.amazonaws.com/shop/r2.tar.gz") {
		t.Errorf("redaction took the whole URL:\n%s", b)
	}
}

func TestDecodeOtherSchemaOtherTypes(t *testing.T) {
	// A schema-2 report whose fields no longer fit schema 1 is "another
	// schema", not corrupt.
	_, err := report.Decode("i-1", []byte(`{"schema": 2, "instance_id": "i-1", "ready": "yes", "products": {"shop": 1}}`))
	if !errors.Is(err, report.ErrSchema) {
		t.Errorf("Decode = %v, want ErrSchema", err)
	}
}
