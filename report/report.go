// Package report defines the node report, schema 1: the small JSON document
// every agent writes to <prefix><instance-id>.json under the topology's
// fleet.reports prefix, and reads and writes reports in S3 (one PUT per
// report; ListObjectsV2 with paging and bounded parallel GETs for the
// operator's side, which a node never does).
//
// A report is the node's own account of itself: who it is (instance, name,
// IP, AZ, group, role, products), what it converged to (serials, releases),
// whether it serves (ready and why), and what its last apply did. The
// fleet package joins reports with the topology.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodeagent/nodeagent/redact"
)

// Schema is the version of the report format this package writes and
// reads. A reader refuses any other version (ErrSchema): a new field that
// changes a meaning gets a new version, an added optional field does not.
const Schema = 1

// Bounds that keep a report small: one PUT of a few KiB per state change.
const (
	MaxChanges   = 50      // changed files listed with their reasons
	MaxText      = 512     // bytes of an error, reason or check error
	MaxSmoke     = 50      // smoke results listed
	MaxSize      = 1 << 20 // bytes of a report a reader accepts
	maxProducts  = 64
	maxReleases  = 64
	maxIDLength  = 64
	maxNameBytes = 253
)

// Apply results (Apply.Result).
const (
	ResultOK      = "ok"      // the document was applied, smoke checks passed
	ResultFailed  = "failed"  // the apply failed and was undone
	ResultRefused = "refused" // the document was invalid or refused; nothing changed
)

// Events: what made the agent write a report (Report.Event).
const (
	EventStart     = "start"     // the agent started (boot apply under way)
	EventApply     = "apply"     // an apply outcome
	EventReadiness = "readiness" // readiness changed outside an apply
	EventDrain     = "drain"     // the node is draining (SIGTERM or termination)
	EventHeartbeat = "heartbeat" // nothing changed; --report-interval elapsed
)

// Report is one node's report, schema 1. Field names are the JSON keys of
// the document; every time is UTC.
type Report struct {
	Schema     int    `json:"schema"`
	InstanceID string `json:"instance_id"`
	// Name is the node's name in the topology's nodes, "" when the node
	// is not listed (an Auto Scaling web node found through its group).
	Name      string   `json:"name,omitempty"`
	PrivateIP string   `json:"private_ip"`
	AZ        string   `json:"az"`
	Group     string   `json:"group,omitempty"`
	Role      string   `json:"role"`
	Products  []string `json:"products,omitempty"`

	// SerialApplied is the serial of the last successful apply;
	// SerialSeen the highest serial the node fetched, applied or not.
	SerialApplied int64             `json:"serial_applied"`
	SerialSeen    int64             `json:"serial_seen"`
	Releases      map[string]string `json:"releases,omitempty"` // product -> active release id

	Ready  bool   `json:"ready"`
	Reason string `json:"reason"`
	// Draining says the node is leaving service (SIGTERM or
	// termination); Terminated that its instance is being terminated, so
	// it will never report again.
	Draining   bool `json:"draining,omitempty"`
	Terminated bool `json:"terminated,omitempty"`

	LastApply *Apply        `json:"last_apply,omitempty"`
	Smoke     []SmokeResult `json:"smoke,omitempty"` // the smoke results readiness is judged by now
	// LastError is the latest failure that did not change readiness (a
	// source that could not be reached, a refused document).
	LastError string `json:"last_error,omitempty"`

	AgentVersion string    `json:"agent_version"`
	BootTime     time.Time `json:"boot_time"` // when this agent process started
	// ReportedAt is when Event happened: the apply outcome, drain or
	// readiness change this report was written for. A heartbeat rewrites
	// the last report (with the current state) and keeps both, so an idle
	// node rewrites the same bytes and its object keeps its ETag; S3's
	// LastModified of the object says when the node last wrote it, and is
	// what staleness is judged by.
	ReportedAt time.Time `json:"reported_at"`
	Event      string    `json:"event"` // Event*: what this report was written for
}

// Apply is the outcome of the node's last apply.
type Apply struct {
	Result     string    `json:"result"` // ResultOK, ResultFailed or ResultRefused
	Serial     int64     `json:"serial,omitempty"`
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
	Error      string    `json:"error,omitempty"`
	// ChangedFiles counts the files the apply changed (or would have, for
	// a failed one); Changes lists the first MaxChanges of them.
	ChangedFiles int      `json:"changed_files"`
	Changes      []Change `json:"changes,omitempty"`
	FailedSmoke  []string `json:"failed_smoke,omitempty"` // names of the smoke checks that failed
}

// Change is one file an apply changed, and why.
type Change struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// SmokeResult is one smoke check's result.
type SmokeResult struct {
	Name       string `json:"name"`
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Key is the object key of an instance's report under a key prefix.
func Key(prefix, instanceID string) string { return prefix + instanceID + ".json" }

// InstanceOf returns the instance id a key under prefix names, and false
// for a key that cannot be a report (another suffix, a sub-folder, an id
// with characters an instance id never has).
func InstanceOf(prefix, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, ".json")
	if !ok || !ValidInstanceID(id) {
		return "", false
	}
	return id, true
}

// ValidInstanceID reports whether id can be an instance id in a report
// key: 1 to 64 ASCII letters, digits and '-' (EC2's are "i-" and 17 hex
// digits; test fleets use other ids).
func ValidInstanceID(id string) bool {
	if id == "" || len(id) > maxIDLength {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Encode bounds r (Bound) and returns its JSON.
func Encode(r *Report) ([]byte, error) {
	b := *r
	b.Bound()
	out, err := json.Marshal(&b)
	if err != nil {
		return nil, fmt.Errorf("report: encode: %w", err)
	}
	return out, nil
}

// Bound cuts r to the package's size bounds (at most MaxChanges changes,
// MaxSmoke smoke results, MaxText bytes per message) and redacts URL
// secrets from every message. It copies the slices it changes, so r may
// share them with the agent's state.
func (r *Report) Bound() {
	r.Reason = clip(r.Reason)
	r.LastError = clip(r.LastError)
	if len(r.Products) > maxProducts {
		r.Products = r.Products[:maxProducts:maxProducts]
	}
	if len(r.Smoke) > MaxSmoke {
		r.Smoke = r.Smoke[:MaxSmoke:MaxSmoke]
	}
	smoke := make([]SmokeResult, len(r.Smoke))
	for i, s := range r.Smoke {
		s.Error = clip(s.Error)
		smoke[i] = s
	}
	if len(smoke) > 0 {
		r.Smoke = smoke
	}
	if a := r.LastApply; a != nil {
		c := *a
		c.Error = clip(c.Error)
		if len(c.Changes) > MaxChanges {
			c.Changes = c.Changes[:MaxChanges]
		}
		changes := make([]Change, len(c.Changes))
		for i, ch := range c.Changes {
			changes[i] = Change{Path: clip(ch.Path), Reason: clip(ch.Reason)}
		}
		if len(changes) > 0 {
			c.Changes = changes
		}
		if len(c.FailedSmoke) > MaxSmoke {
			c.FailedSmoke = c.FailedSmoke[:MaxSmoke:MaxSmoke]
		}
		r.LastApply = &c
	}
}

// clip takes URL secrets out of s (redact.Text: a presigned release
// URL's signature in an error must not reach S3) and cuts it to MaxText
// bytes on a rune boundary, marking the cut.
func clip(s string) string {
	s = redact.Text(s)
	if len(s) <= MaxText {
		return s
	}
	cut := MaxText - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Problems a reader finds in a report object; Decode wraps one of them.
var (
	// ErrCorrupt: the object is not a JSON report (truncated, not JSON,
	// wrong types, too large).
	ErrCorrupt = errors.New("corrupt report")
	// ErrSchema: the report has another schema version than Schema.
	ErrSchema = errors.New("unsupported report schema")
	// ErrForeign: the object is not this instance's report (its key and
	// instance id disagree, or the key cannot name an instance).
	ErrForeign = errors.New("foreign report")
)

// Decode reads the report stored under key (whose instance id is id, from
// InstanceOf) and checks that it is a schema-1 report of that instance.
// The error wraps ErrCorrupt, ErrSchema or ErrForeign and says what is
// wrong; the caller adds the key.
func Decode(id string, data []byte) (*Report, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, MaxSize)
	}
	// One pass for the common case; a document that does not fit is then
	// looked at again only to tell another schema from a corrupt report.
	r := Report{Schema: noSchema}
	if err := json.Unmarshal(data, &r); err != nil {
		var head struct {
			Schema *int `json:"schema"`
		}
		if json.Unmarshal(data, &head) == nil && head.Schema != nil && *head.Schema != Schema {
			return nil, schemaError(*head.Schema)
		}
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	switch {
	case r.Schema == noSchema:
		return nil, fmt.Errorf("%w: no schema field", ErrCorrupt)
	case r.Schema != Schema:
		return nil, schemaError(r.Schema)
	case r.InstanceID != id:
		return nil, fmt.Errorf("%w: it says instance %q, its key says %q", ErrForeign, clip(r.InstanceID), id)
	}
	return &r, nil
}

// noSchema marks a report whose schema field is absent.
const noSchema = math.MinInt

func schemaError(n int) error {
	return fmt.Errorf("%w %d (this nodeagent reads schema %d: upgrade it)", ErrSchema, n, Schema)
}

// Kind names the problem an error from Decode (or a read) stands for:
// "corrupt", "schema", "foreign", or "unreadable" for anything else.
func Kind(err error) string {
	switch {
	case errors.Is(err, ErrCorrupt):
		return "corrupt"
	case errors.Is(err, ErrSchema):
		return "schema"
	case errors.Is(err, ErrForeign):
		return "foreign"
	}
	return "unreadable"
}
