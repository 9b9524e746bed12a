package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"sync"
)

// yamlSerial is a top-level serial line of a YAML document, compiled on
// first use: only `topology publish --bump` of a YAML document needs it, and
// every process of the agent would otherwise compile it at start.
var yamlSerial = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^serial:([ \t]*)-?[0-9]+`) })

// SetSerial returns body with its top-level serial replaced by serial and
// every other byte as it was, so a bumped document still reads (and diffs)
// as the operator wrote it. name ending in .yaml or .yml means YAML.
func SetSerial(body []byte, name string, serial int64) ([]byte, error) {
	num := strconv.FormatInt(serial, 10)
	if isYAML(name) {
		locs := yamlSerial().FindAllSubmatchIndex(body, -1)
		if len(locs) != 1 {
			return nil, fmt.Errorf("publish: %s: want exactly one top-level \"serial:\" line to set serial %d, found %d", name, serial, len(locs))
		}
		m := locs[0]
		return concat(body[:m[3]], []byte(num), body[m[1]:]), nil
	}
	start, end, err := jsonSerial(body)
	if err != nil {
		return nil, fmt.Errorf("publish: %s: set serial %d: %w", name, serial, err)
	}
	return concat(body[:start], []byte(num), body[end:]), nil
}

// jsonSerial finds the bytes of the top-level "serial" member's value.
func jsonSerial(body []byte) (start, end int, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0, 0, errors.New("not a JSON object")
	}
	start, end = -1, -1
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, 0, err
		}
		key, _ := tok.(string)
		after := int(dec.InputOffset())
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return 0, 0, err
		}
		if key != "serial" {
			continue
		}
		if start >= 0 {
			return 0, 0, errors.New("two top-level \"serial\" members")
		}
		stop := int(dec.InputOffset())
		// The value is the last len(v) bytes before stop, after the colon.
		i := bytes.Index(body[after:stop], v)
		if i < 0 {
			return 0, 0, errors.New("cannot locate the serial's value")
		}
		if _, err := strconv.ParseInt(string(v), 10, 64); err != nil {
			return 0, 0, fmt.Errorf("serial %s is not an integer", v)
		}
		start, end = after+i, after+i+len(v)
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return 0, 0, err
	}
	if start < 0 {
		return 0, 0, errors.New("no top-level \"serial\" member")
	}
	return start, end, nil
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
