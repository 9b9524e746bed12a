package publish_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent/publish"
	"github.com/nodeagent/nodeagent/s3api"
)

// statusError is an S3 answer with an HTTP status.
type statusError int

func (e statusError) Error() string       { return fmt.Sprintf("status %d", int(e)) }
func (e statusError) HTTPStatusCode() int { return int(e) }

// fakeS3 keeps objects in memory and honours If-Match and If-None-Match;
// beforePut may answer a PutObject instead (nil: go on).
type fakeS3 struct {
	objects   map[string][]byte
	etags     map[string]string
	n         int
	beforePut func(key string, body []byte) error
	noETag    bool // answer without ETags, as a proxy that drops headers
	puts      int
}

func newFakeS3() *fakeS3 { return &fakeS3{objects: map[string][]byte{}, etags: map[string]string{}} }

func (f *fakeS3) store(key string, body []byte) {
	f.n++
	f.objects[key], f.etags[key] = body, fmt.Sprintf(`"%d"`, f.n)
}

func (f *fakeS3) Get(_ context.Context, in s3api.GetInput) (*s3api.GetOutput, error) {
	b, ok := f.objects[in.Key]
	if !ok {
		return nil, statusError(http.StatusNotFound)
	}
	out := &s3api.GetOutput{Body: io.NopCloser(bytes.NewReader(b)), ETag: f.etags[in.Key], ContentLength: int64(len(b))}
	if f.noETag {
		out.ETag = ""
	}
	return out, nil
}

func (f *fakeS3) Put(_ context.Context, in s3api.PutInput) (string, error) {
	body := bytes.Clone(in.Body)
	if f.beforePut != nil {
		if err := f.beforePut(in.Key, body); err != nil {
			return "", err
		}
	}
	_, exists := f.objects[in.Key]
	if in.IfNoneMatch != "" && exists || in.IfMatch != "" && (!exists || in.IfMatch != f.etags[in.Key]) {
		return "", statusError(http.StatusPreconditionFailed)
	}
	f.store(in.Key, body)
	f.puts++
	if f.noETag {
		return "", nil
	}
	return f.etags[in.Key], nil
}

// TestWriteConflicts: the answers to a conditional write that are not a
// lost race. A write that landed but whose answer was lost (the SDK's
// retry then sees 412) is a success; a 409 for another write in flight
// that did not land is tried again; a real race is a RaceError.
func TestWriteConflicts(t *testing.T) {
	const key = "prod/topology.json"
	next := withSerial(t, 43)
	tests := []struct {
		name      string
		beforePut func(f *fakeS3) func(key string, body []byte) error
		wantErr   bool
		wantBody  []byte
	}{
		{
			name: "answer lost after the write landed",
			beforePut: func(f *fakeS3) func(string, []byte) error {
				return func(k string, body []byte) error {
					if k == key && !bytes.Equal(f.objects[k], body) {
						f.store(k, body)
						return statusError(http.StatusPreconditionFailed)
					}
					return nil
				}
			},
			wantBody: next,
		},
		{
			name: "409 for a write in flight that did not land",
			beforePut: func(f *fakeS3) func(string, []byte) error {
				n := 0
				return func(k string, _ []byte) error {
					if k == key {
						if n++; n == 1 {
							return statusError(http.StatusConflict)
						}
					}
					return nil
				}
			},
			wantBody: next,
		},
		{
			name: "another publish landed",
			beforePut: func(f *fakeS3) func(string, []byte) error {
				return func(k string, _ []byte) error {
					if k == key && f.beforePut != nil {
						f.beforePut = nil
						f.store(k, withSerial(t, 44))
					}
					return nil
				}
			},
			wantErr:  true,
			wantBody: withSerial(t, 44),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeS3()
			f.store(key, readFile(t, "testdata/topology.json"))
			p, err := publish.New(f, "s3://b/"+key)
			if err != nil {
				t.Fatal(err)
			}
			cur, err := p.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ch, err := p.Prepare(cur, publish.Input{Body: next, Name: "next.json"})
			if err != nil {
				t.Fatal(err)
			}
			f.beforePut = tt.beforePut(f)
			_, err = p.Write(context.Background(), cur, ch)
			var race *publish.RaceError
			if tt.wantErr != errors.As(err, &race) || (!tt.wantErr && err != nil) {
				t.Fatalf("Write error = %v, want a race: %v", err, tt.wantErr)
			}
			if tt.wantErr && race.Serial != 44 {
				t.Errorf("race names serial %d, want 44", race.Serial)
			}
			if !bytes.Equal(f.objects[key], tt.wantBody) {
				t.Errorf("stored document serial is wrong:\n%s", f.objects[key])
			}
			if !bytes.Equal(f.objects["prod/history/42.json"], readFile(t, "testdata/topology.json")) {
				t.Error("history/42.json is not the replaced document")
			}
		})
	}
}

// TestRefusesEmptyETag: the replacing write is conditioned on the ETag
// read (If-Match). A read whose answer has none is an error before any
// write, a Current without one is refused by Write, and a write whose
// answer has none (the next publish's condition) is an error.
func TestRefusesEmptyETag(t *testing.T) {
	const key = "prod/topology.json"
	f := newFakeS3()
	f.store(key, readFile(t, "testdata/topology.json"))
	p, err := publish.New(f, "s3://b/"+key)
	if err != nil {
		t.Fatal(err)
	}
	f.noETag = true
	if _, err := p.Read(context.Background()); err == nil || !strings.Contains(err.Error(), "no ETag") {
		t.Errorf("Read without ETag: %v; want an error saying so", err)
	}
	f.noETag = false
	cur, err := p.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := p.Prepare(cur, publish.Input{Body: withSerial(t, 43), Name: "next.json"})
	if err != nil {
		t.Fatal(err)
	}
	etagless := *cur
	etagless.ETag = ""
	puts := f.puts
	if _, err := p.Write(context.Background(), &etagless, ch); err == nil || !strings.Contains(err.Error(), "no ETag") {
		t.Errorf("Write of a Current without ETag: %v; want an error saying so", err)
	}
	if f.puts != puts {
		t.Errorf("Write of a Current without ETag wrote %d objects, want none", f.puts-puts)
	}
	f.noETag = true
	if _, err := p.Write(context.Background(), cur, ch); err == nil || !strings.Contains(err.Error(), "no ETag") {
		t.Errorf("Write whose answer has no ETag: %v; want an error saying so", err)
	}
}
