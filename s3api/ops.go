package s3api

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The operations, by their API names.
const (
	opGet  = "GetObject"
	opPut  = "PutObject"
	opList = "ListObjectsV2"
)

// named refuses a request without a bucket, or without a key when the
// operation needs one, before it is sent: an empty key would address the
// bucket itself (a GET of it is a listing, a PUT of it an error at best).
func named(op, bucket, key string, needKey bool) error {
	switch {
	case bucket == "":
		return fmt.Errorf("s3 %s: no bucket named: the caller must give one", op)
	case needKey && key == "":
		return fmt.Errorf("s3 %s s3://%s/: no object key named: the caller must give one", op, bucket)
	}
	return nil
}

// GetInput names an object to read.
type GetInput struct {
	Bucket, Key string
	// IfNoneMatch, when set, is an ETag: S3 answers 304 Not Modified (an
	// error for which NotModified is true) while the object still has it.
	IfNoneMatch string
}

// GetOutput is an object being read. The caller closes Body.
type GetOutput struct {
	Body          io.ReadCloser
	ETag          string // as S3 sends it, quotes included
	ContentLength int64  // -1 when the answer did not say
	LastModified  time.Time
}

// Get reads an object: the body streams from the answer, for as long as
// the caller's context allows.
func (c *Client) Get(ctx context.Context, in GetInput) (*GetOutput, error) {
	if err := named(opGet, in.Bucket, in.Key, true); err != nil {
		return nil, err
	}
	r := &request{op: opGet, method: http.MethodGet, bucket: in.Bucket, key: in.Key, query: url.Values{"x-id": {opGet}}}
	if in.IfNoneMatch != "" {
		r.header = http.Header{"If-None-Match": {in.IfNoneMatch}}
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	out := &GetOutput{Body: resp.Body, ETag: resp.Header.Get("ETag"), ContentLength: resp.ContentLength}
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		out.LastModified, _ = http.ParseTime(lm) // as the SDK: unparsable is none
	}
	return out, nil
}

// PutInput is an object to write whole.
type PutInput struct {
	Bucket, Key string
	Body        []byte
	ContentType string
	// IfMatch, when set, is the ETag the object must still have;
	// IfNoneMatch "*" writes only if no object exists. A failed condition
	// is a 412 (PreconditionFailed), or a 409 (ConditionalRequestConflict)
	// while another conditional write of the key is in flight.
	IfMatch, IfNoneMatch string
}

// maxPutAnswer bounds a PutObject answer's body (S3 sends none).
const maxPutAnswer = 64 << 10

// Put writes an object and returns its new ETag. The body is sent again
// on every retry.
func (c *Client) Put(ctx context.Context, in PutInput) (string, error) {
	if err := named(opPut, in.Bucket, in.Key, true); err != nil {
		return "", err
	}
	r := &request{op: opPut, method: http.MethodPut, bucket: in.Bucket, key: in.Key, query: url.Values{"x-id": {opPut}},
		header: http.Header{}, body: in.Body, readAll: true, limit: maxPutAnswer}
	if in.ContentType != "" {
		r.header.Set("Content-Type", in.ContentType)
	}
	if in.IfMatch != "" {
		r.header.Set("If-Match", in.IfMatch)
	}
	if in.IfNoneMatch != "" {
		r.header.Set("If-None-Match", in.IfNoneMatch)
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return "", err
	}
	return resp.Header.Get("ETag"), nil
}

// ListInput asks for one page of ListObjectsV2.
type ListInput struct {
	Bucket    string
	Prefix    string
	Delimiter string // "/": keys below a further "/" are left out
	// ContinuationToken is the previous page's NextToken; "" for the first.
	ContinuationToken string
	MaxKeys           int // 0: S3's default, 1,000
}

// Object is one object of a listing.
type Object struct {
	Key          string
	Size         int64
	ETag         string
	LastModified time.Time
}

// ListOutput is one page of a listing.
type ListOutput struct {
	Objects []Object
	// NextToken continues the listing; "" when this was the last page.
	NextToken string
}

// maxListAnswer bounds a listing page: 1,000 keys of up to 1,024 bytes
// each, with their other fields, fit well within it.
const maxListAnswer = 8 << 20

// List reads one page of the objects under in.Prefix.
func (c *Client) List(ctx context.Context, in ListInput) (*ListOutput, error) {
	if err := named(opList, in.Bucket, "", false); err != nil {
		return nil, err
	}
	q := url.Values{"list-type": {"2"}}
	if in.Prefix != "" {
		q.Set("prefix", in.Prefix)
	}
	if in.Delimiter != "" {
		q.Set("delimiter", in.Delimiter)
	}
	if in.ContinuationToken != "" {
		q.Set("continuation-token", in.ContinuationToken)
	}
	if in.MaxKeys > 0 {
		q.Set("max-keys", strconv.Itoa(in.MaxKeys))
	}
	r := &request{op: opList, method: http.MethodGet, bucket: in.Bucket, query: q, readAll: true, limit: maxListAnswer}
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	// The fields are read as text and parsed as the SDK's decoder parses
	// them: a field that is there must parse (an empty <Size></Size> is an
	// error, as there); one that is not is zero.
	var doc struct {
		XMLName               xml.Name
		IsTruncated           *string `xml:"IsTruncated"`
		NextContinuationToken string  `xml:"NextContinuationToken"`
		Contents              []struct {
			Key          string  `xml:"Key"`
			Size         *string `xml:"Size"`
			ETag         string  `xml:"ETag"`
			LastModified *string `xml:"LastModified"`
		} `xml:"Contents"`
	}
	// As the SDK: an empty answer is an empty listing.
	if err := xml.NewDecoder(bytes.NewReader(resp.body)).Decode(&doc); err != nil && err != io.EOF {
		return nil, fmt.Errorf("s3 %s %s: decode the listing: %w (answer starts %q)", opList, r.object(), err, resp.body[:min(len(resp.body), 120)])
	}
	// A 200 whose document is something else (a proxy's or captive
	// portal's XHTML page) is no listing, least of all an empty one.
	if doc.XMLName.Local != "" && doc.XMLName.Local != "ListBucketResult" {
		return nil, fmt.Errorf("s3 %s %s: the answer is a <%s> document, not a ListBucketResult: check AWS_ENDPOINT_URL_S3 and any proxy between the node and S3 (answer starts %q)",
			opList, r.object(), doc.XMLName.Local, resp.body[:min(len(resp.body), 120)])
	}
	out := &ListOutput{Objects: make([]Object, 0, len(doc.Contents))}
	for _, o := range doc.Contents {
		obj := Object{Key: o.Key, ETag: o.ETag}
		if o.Size != nil {
			n, err := strconv.ParseInt(*o.Size, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("s3 %s %s: object %q: Size %q: %w", opList, r.object(), o.Key, *o.Size, err)
			}
			obj.Size = n
		}
		if o.LastModified != nil {
			t, err := parseTime(*o.LastModified)
			if err != nil {
				return nil, fmt.Errorf("s3 %s %s: object %q: %w", opList, r.object(), o.Key, err)
			}
			obj.LastModified = t
		}
		out.Objects = append(out.Objects, obj)
	}
	truncated := false
	if doc.IsTruncated != nil {
		var err error
		if truncated, err = strconv.ParseBool(*doc.IsTruncated); err != nil {
			return nil, fmt.Errorf("s3 %s %s: IsTruncated %q: %w", opList, r.object(), *doc.IsTruncated, err)
		}
	}
	// The listing goes on while S3 says it was truncated. A truncated page
	// that names no place to go on from cannot be continued, and is not the
	// whole listing either (the SDK's paginator would stop there, silently
	// short).
	if truncated {
		if doc.NextContinuationToken == "" {
			return nil, fmt.Errorf("s3 %s %s: the answer says the listing is truncated but has no NextContinuationToken: the rest of the listing cannot be read; check the S3 endpoint (AWS_ENDPOINT_URL_S3)", opList, r.object())
		}
		out.NextToken = doc.NextContinuationToken
	}
	return out, nil
}

// parseTime reads an XML timestamp in the layouts the SDK accepts
// (smithy-go's time.ParseDateTime): S3 sends 2026-12-02T10:11:12.000Z.
func parseTime(v string) (time.Time, error) {
	var first error
	for _, layout := range []string{"2006-01-02T15:04:05.999999999Z", "2006-01-02T15:04:05.999999999", time.RFC3339Nano, time.RFC3339} {
		t, err := time.Parse(layout, v)
		if err == nil {
			return t, nil
		}
		if first == nil {
			first = err
		}
	}
	return time.Time{}, fmt.Errorf("LastModified %q is not an ISO 8601 time: %w", v, first)
}
