// Package publish is the operator's side of the topology document: it reads
// the current document from S3, checks a new one against it (validated as
// the agents validate it, a serial above the current one, the blast-radius
// guard), and replaces it with S3 conditional writes, so that two operators
// publishing at once get one success and one clear refusal, never a lost
// update. The document being replaced is kept first under
// history/<serial>.json beside the key, written only if absent, so a kept
// document is never overwritten; rollback republishes one of them.
//
// Failover (the seeds' failover script) and rollback are edits computed from
// the current document and published through the same path, recomputed when
// someone else publishes in between (Publisher.Update).
//
// S3 is the only shared state: no lock, no server. The conditional writes
// are PutObject with If-Match (the ETag read) or If-None-Match: * (no
// document yet); AWS S3 and MinIO answer 412 Precondition Failed (or 409 for
// a concurrent conditional write in flight) when the condition no longer
// holds.
package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/aws/smithy-go"
	"sigs.k8s.io/yaml"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/s3api"
	"github.com/nodeagent/nodeagent/topology"
)

// API is the part of the S3 client a Publisher uses (*s3api.Client has it).
type API interface {
	Get(ctx context.Context, in s3api.GetInput) (*s3api.GetOutput, error)
	Put(ctx context.Context, in s3api.PutInput) (etag string, err error)
}

// maxDocument bounds a document read back from S3 (the agents' own bound).
const maxDocument = 16 << 20

// Publisher publishes topology documents to one S3 object.
type Publisher struct {
	api    API
	url    string // s3://bucket/key, for messages
	bucket string
	key    string
}

// New returns a Publisher for rawURL, s3://bucket/key.
func New(api API, rawURL string) (*Publisher, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("publish: %q: want s3://bucket/key", rawURL)
	}
	key := strings.TrimPrefix(u.Path, "/")
	if key == "" || strings.HasSuffix(key, "/") {
		return nil, fmt.Errorf("publish: %q: no object key (want s3://bucket/key)", rawURL)
	}
	return &Publisher{api: api, url: rawURL, bucket: u.Host, key: key}, nil
}

// URL is the published document's s3:// URL.
func (p *Publisher) URL() string { return p.url }

// Current is the published document as read, with its ETag for the
// conditional write that replaces it.
type Current struct {
	Exists bool   // false: nothing published yet
	Body   []byte // as stored
	ETag   string
	Serial int64
	// Doc is the decoded, validated document; nil when there is none or it
	// is not valid (Invalid says why; Serial is then read loosely).
	Doc     *nodeagent.Topology
	Invalid error
}

// Read reads the current document. A missing object is no error: Exists is
// false and a publish creates it.
func (p *Publisher) Read(ctx context.Context) (*Current, error) {
	body, etag, err := p.get(ctx, p.key)
	if errors.Is(err, errNotFound) {
		return &Current{}, nil
	}
	if err != nil {
		return nil, err
	}
	// The ETag is what the replacing write is conditioned on (If-Match):
	// without it the write would replace whatever is there.
	if etag == "" {
		return nil, fmt.Errorf("publish: read %s: the answer carried no ETag, which the write must be conditioned on: check AWS_ENDPOINT_URL_S3 and any proxy that drops headers", p.url)
	}
	cur := &Current{Exists: true, Body: body, ETag: etag}
	cur.Doc, cur.Invalid = topology.Load(body, p.url, nodeagent.FormatOf(p.key))
	if cur.Doc != nil {
		cur.Serial = cur.Doc.Serial
	} else {
		cur.Serial = looseSerial(body, p.key)
	}
	return cur, nil
}

// looseSerial reads the top-level serial of a document that does not
// validate; 0 when there is none.
func looseSerial(body []byte, name string) int64 {
	if isYAML(name) {
		j, err := yaml.YAMLToJSON(body)
		if err != nil {
			return 0
		}
		body = j
	}
	var v struct {
		Serial int64 `json:"serial"`
	}
	if json.Unmarshal(body, &v) != nil {
		return 0
	}
	return v.Serial
}

// Input is a document to publish.
type Input struct {
	Body []byte
	// Name is where Body came from (a file name, a history URL): messages
	// name it, and a name ending in .yaml or .yml means YAML.
	Name string
	// Bump publishes a serial that is not above the current one as the
	// current serial + 1 instead of refusing it.
	Bump bool
	// Serial, when not 0, is the serial to publish whatever Body says
	// (failover and rollback publish current+1).
	Serial int64
	// AllowNodeDrop lifts the blast-radius guard: a document dropping more
	// than half of the current document's nodes.
	AllowNodeDrop bool
}

// Change is a checked document ready to replace Current.
type Change struct {
	Body   []byte // what is written: Input.Body, with the serial replaced if it was
	Doc    *nodeagent.Topology
	From   int64    // the current serial; 0 when there is none
	To     int64    // the published serial
	Given  int64    // the serial Input.Body carried
	Bumped bool     // the serial was replaced
	Paths  []string // the changed document paths (topology.Changes); nil for a first publish
}

// Errors a caller branches on.
var (
	// ErrSerialNotAbove: the new serial is not above the current one.
	ErrSerialNotAbove = errors.New("serial not above the current one")
	// ErrFormat: a YAML document for a JSON key or the other way round.
	ErrFormat = errors.New("document format does not match the key")
)

// Prepare checks in against cur: it must validate exactly as the agents
// validate it (topology.Load; the error is Load's, naming in.Name), its
// serial must be above the current one (or Bump/Serial say which to use),
// and it must not drop more than half of the current nodes unless
// AllowNodeDrop (the error wraps topology.ErrNodesDropped).
func (p *Publisher) Prepare(cur *Current, in Input) (*Change, error) {
	if isYAML(in.Name) != isYAML(p.key) {
		return nil, fmt.Errorf("publish: %s is %s but the agents read %s as %s: %w; publish a %s file",
			in.Name, format(in.Name), p.url, format(p.key), ErrFormat, format(p.key))
	}
	next, err := topology.Load(in.Body, in.Name, nodeagent.FormatOf(in.Name))
	if err != nil {
		return nil, err
	}
	ch := &Change{Body: in.Body, Doc: next, From: cur.Serial, To: next.Serial, Given: next.Serial}
	switch {
	case in.Serial != 0:
		ch.To = in.Serial
	case cur.Exists && next.Serial <= cur.Serial && in.Bump:
		ch.To = cur.Serial + 1
	case cur.Exists && next.Serial <= cur.Serial:
		return nil, fmt.Errorf("publish: %s has serial %d, not above serial %d at %s: %w; raise the serial or publish with --bump to take serial %d",
			in.Name, next.Serial, cur.Serial, p.url, ErrSerialNotAbove, cur.Serial+1)
	}
	if ch.To != next.Serial {
		body, err := SetSerial(in.Body, in.Name, ch.To)
		if err != nil {
			return nil, err
		}
		if next, err = topology.Load(body, in.Name, nodeagent.FormatOf(in.Name)); err != nil {
			return nil, fmt.Errorf("publish: %s with serial %d: %w", in.Name, ch.To, err)
		}
		if next.Serial != ch.To {
			return nil, fmt.Errorf("publish: %s: setting serial %d gave serial %d", in.Name, ch.To, next.Serial)
		}
		ch.Body, ch.Doc, ch.Bumped = body, next, true
	}
	if err := topology.CheckSuccessor(cur.Doc, next, topology.Guards{AllowLowerSerial: true, AllowNodeDrop: in.AllowNodeDrop}); err != nil {
		return nil, fmt.Errorf("publish: %s against %s: %w", in.Name, p.url, err)
	}
	if cur.Doc != nil {
		ch.Paths = topology.Changes(cur.Doc, next)
	}
	return ch, nil
}

// Result is what a write did.
type Result struct {
	URL        string // the published document
	ETag       string
	HistoryURL string // where the replaced document is kept; "" for a first publish
	// KeptURL is where the published document itself is kept
	// (history/<serial>.json; StartRollout only), so that a node can boot
	// to any serial of a rollout; KeepError says why it could not be (the
	// publish happened anyway).
	KeptURL   string
	KeepError error
}

// RaceError is a publish that lost to another one: the document changed
// between the read and the write. Nothing was lost; the other document is
// current.
type RaceError struct {
	URL    string
	Serial int64 // the serial published meanwhile; 0 if the document was deleted
}

func (e *RaceError) Error() string {
	if e.Serial == 0 {
		return fmt.Sprintf("publish: someone changed %s meanwhile (it is gone now); re-run to publish on top of it", e.URL)
	}
	return fmt.Sprintf("publish: someone published serial %d meanwhile at %s; re-run to publish on top of it", e.Serial, e.URL)
}

// Write keeps cur under history/<serial>.json beside the key (only if no
// such object exists), then replaces the document with ch.Body if it is
// still cur (If-Match: cur's ETag; If-None-Match: * when there was none). A
// lost race returns *RaceError.
func (p *Publisher) Write(ctx context.Context, cur *Current, ch *Change) (Result, error) {
	res := Result{URL: p.url}
	if cur.Exists && cur.ETag == "" {
		return res, fmt.Errorf("publish: write %s: the document read has no ETag to condition the write on (If-Match): read it with Publisher.Read", p.url)
	}
	if cur.Exists {
		hk, err := p.keep(ctx, cur)
		if err != nil {
			return res, err
		}
		res.HistoryURL = "s3://" + p.bucket + "/" + hk
	}
	in := s3api.PutInput{
		Bucket:      p.bucket,
		Key:         p.key,
		Body:        ch.Body,
		ContentType: contentType(p.key),
	}
	if cur.Exists {
		in.IfMatch = cur.ETag
	} else {
		in.IfNoneMatch = "*"
	}
	var now *Current
	for attempt := 1; ; attempt++ {
		etag, err := p.api.Put(ctx, in)
		if err == nil && etag == "" {
			// The next publish conditions its write on this ETag.
			return res, fmt.Errorf("publish: wrote %s, but the answer carried no ETag: check AWS_ENDPOINT_URL_S3 and any proxy that drops headers; read the document again before another publish", p.url)
		}
		if err == nil {
			res.ETag = etag
			return res, nil
		}
		if !conflict(err) {
			return res, p.explain("write", p.key, err)
		}
		// The condition failed. If the document is ours (a retry of
		// a write whose answer was lost), the publish happened.
		var rerr error
		if now, rerr = p.Read(ctx); rerr != nil {
			return res, fmt.Errorf("publish: %s changed meanwhile, and reading it again failed: %w", p.url, rerr)
		}
		if now.Exists && bytes.Equal(now.Body, ch.Body) {
			res.ETag = now.ETag
			return res, nil
		}
		// Unchanged: a 409 for another conditional write in flight that
		// did not land. Try once more.
		if attempt == 1 && now.Exists == cur.Exists && now.ETag == cur.ETag {
			continue
		}
		break
	}
	return res, &RaceError{URL: p.url, Serial: now.Serial}
}

// keep writes cur's body under the history key for its serial, never over
// an existing object. The same bytes already there (another publisher on
// top of the same document kept it) are fine; other bytes under that
// serial (a document replaced by hand without raising the serial) are kept
// beside them, named after this one's ETag.
func (p *Publisher) keep(ctx context.Context, cur *Current) (string, error) {
	hk := HistoryKey(p.key, cur.Serial)
	for _, key := range []string{hk, strings.TrimSuffix(hk, path.Ext(hk)) + "-" + strings.Trim(cur.ETag, `"`) + path.Ext(hk)} {
		err := p.put(ctx, key, cur.Body)
		if err == nil {
			return key, nil
		}
		if !conflict(err) {
			return "", p.explain("keep the current document as", key, err)
		}
		kept, _, err := p.get(ctx, key)
		if err != nil {
			return "", err
		}
		if bytes.Equal(kept, cur.Body) {
			return key, nil
		}
	}
	return "", fmt.Errorf("publish: keep serial %d: s3://%s/%s holds another document of that serial; move it aside and re-run", cur.Serial, p.bucket, hk)
}

// keepNew keeps the document just published under the history key of its
// serial too: a node booting during a staged rollout fetches the previous
// serial from there, and rollback can name any serial.
func (p *Publisher) keepNew(ctx context.Context, ch *Change, res *Result) {
	hk, err := p.keep(ctx, &Current{Exists: true, Body: ch.Body, ETag: res.ETag, Serial: ch.To})
	if err != nil {
		res.KeepError = err
		return
	}
	res.KeptURL = "s3://" + p.bucket + "/" + hk
}

// put creates key with body if it does not exist.
func (p *Publisher) put(ctx context.Context, key string, body []byte) error {
	_, err := p.api.Put(ctx, s3api.PutInput{
		Bucket:      p.bucket,
		Key:         key,
		Body:        body,
		ContentType: contentType(key),
		IfNoneMatch: "*",
	})
	return err
}

// HistoryKey is where the document of serial is kept for key:
// history/<serial>.json in the key's directory (.yaml for a YAML key).
func HistoryKey(key string, serial int64) string {
	ext := ".json"
	if isYAML(key) {
		ext = path.Ext(key)
	}
	return path.Join(path.Dir(key), "history", strconv.FormatInt(serial, 10)+ext)
}

// ErrNoHistory is wrapped when no document is kept for a serial.
var ErrNoHistory = errors.New("no document kept for that serial")

// History reads the kept document of serial; its name (for Input.Name) is
// its s3:// URL.
func (p *Publisher) History(ctx context.Context, serial int64) (body []byte, name string, err error) {
	hk := HistoryKey(p.key, serial)
	name = "s3://" + p.bucket + "/" + hk
	body, _, err = p.get(ctx, hk)
	if errors.Is(err, errNotFound) {
		return nil, name, fmt.Errorf("publish: rollback to serial %d: no %s: %w; the kept serials are under s3://%s/%s/",
			serial, name, ErrNoHistory, p.bucket, path.Dir(hk))
	}
	return body, name, err
}

var errNotFound = errors.New("not found")

// get reads key whole.
func (p *Publisher) get(ctx context.Context, key string) ([]byte, string, error) {
	out, err := p.api.Get(ctx, s3api.GetInput{Bucket: p.bucket, Key: key})
	if err != nil {
		if status(err) == http.StatusNotFound {
			return nil, "", fmt.Errorf("publish: s3://%s/%s: %w", p.bucket, key, errNotFound)
		}
		return nil, "", p.explain("read", key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, maxDocument+1))
	if err != nil {
		return nil, "", fmt.Errorf("publish: read s3://%s/%s: %w", p.bucket, key, err)
	}
	if len(body) > maxDocument {
		return nil, "", fmt.Errorf("publish: s3://%s/%s is larger than %d bytes", p.bucket, key, maxDocument)
	}
	return body, out.ETag, nil
}

// explain names the operation, the object and, for the usual refusals,
// what to check.
func (p *Publisher) explain(op, key string, err error) error {
	where := fmt.Sprintf("s3://%s/%s", p.bucket, key)
	var ae smithy.APIError
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	switch {
	case code == "NoSuchBucket":
		return fmt.Errorf("publish: %s %s: bucket %q does not exist (check the bucket, AWS_REGION and AWS_ENDPOINT_URL_S3): %w", op, where, p.bucket, err)
	case status(err) == http.StatusForbidden:
		return fmt.Errorf("publish: %s %s: access denied: an operator needs s3:GetObject and s3:PutObject on the topology key and its history/ (README, IAM): %w", op, where, err)
	}
	return fmt.Errorf("publish: %s %s: %w", op, where, err)
}

// conflict reports a failed write condition: 412, or 409 for a conditional
// write racing another in flight.
func conflict(err error) bool {
	s := status(err)
	return s == http.StatusPreconditionFailed || s == http.StatusConflict
}

func status(err error) int { return s3api.Status(err) }

// isYAML says a publish's name (a file, a key) is YAML: publish has only
// names, and the agents read a key by its suffix too.
func isYAML(name string) bool { return nodeagent.FormatOf(name) == nodeagent.FormatYAML }

func format(name string) string {
	if isYAML(name) {
		return "YAML"
	}
	return "JSON"
}

func contentType(key string) string {
	if isYAML(key) {
		return "application/yaml"
	}
	return "application/json"
}

// Outcome is what Update did.
type Outcome struct {
	Prev     *Current // the document it was computed from
	Change   *Change
	Result   Result // zero for a dry run
	Attempts int    // reads of the current document, 1 without a race
}

// Update publishes a document computed from the current one: it reads the
// current document, asks edit for the Input, prepares it and, unless dryRun,
// writes it. When another publish lands between the read and the write it
// starts again from the new document, at most attempts times in all; the
// last race is returned as *RaceError.
func (p *Publisher) Update(ctx context.Context, attempts int, dryRun bool, edit func(cur *Current) (Input, error)) (Outcome, error) {
	var o Outcome
	for {
		o.Attempts++
		cur, err := p.Read(ctx)
		if err != nil {
			return o, err
		}
		o.Prev = cur
		in, err := edit(cur)
		if err != nil {
			return o, err
		}
		ch, err := p.Prepare(cur, in)
		if err != nil {
			return o, err
		}
		o.Change = ch
		if dryRun {
			return o, nil
		}
		o.Result, err = p.Write(ctx, cur, ch)
		var race *RaceError
		if errors.As(err, &race) && o.Attempts < attempts {
			continue
		}
		return o, err
	}
}
