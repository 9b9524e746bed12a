package topology

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/nodeagent/nodeagent"
)

// Decode parses a topology document strictly. Unknown fields, duplicate keys
// and values of the wrong type are reported all at once as *Errors with
// their document paths ("products.shop.relase: unknown field"); anything
// after the document is an error too. A document in format YAML is
// converted to JSON and then decoded the same way; "" is JSON. name (a URL
// or file name) is used in messages only: the format comes from the source
// (nodeagent.Fetched.Format) or, for a bare file name, nodeagent.FormatOf.
// Decode does not validate: see Validate and Load.
func Decode(data []byte, name string, format nodeagent.Format) (*nodeagent.Topology, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // an editor's byte order mark
	if format == nodeagent.FormatYAML {
		j, err := yaml.YAMLToJSONStrict(data)
		if err != nil {
			return nil, fmt.Errorf("topology %s: %w", name, err)
		}
		data = j
	}
	if len(bytes.TrimSpace(data)) == 0 || string(bytes.TrimSpace(data)) == "null" {
		return nil, fmt.Errorf("topology %s: %w", name, &Errors{{Reason: "empty document"}})
	}
	var t nodeagent.Topology
	if decodeClean(data, &t) {
		return &t, nil
	}
	// Not clean: find every problem, with its path.
	if err := checkShape(data); err != nil {
		err = fmt.Errorf("topology %s: %w", name, err)
		if serial, ok := topSerial(data); ok {
			// A refused push still shows as seen.
			return nil, &InvalidError{Serial: serial, Err: err}
		}
		return nil, err
	}
	t = nodeagent.Topology{}
	if err := json.Unmarshal(data, &t); err != nil {
		// checkShape accepted the document, so this is a decoder corner it
		// does not model; still an error about the document.
		return nil, fmt.Errorf("topology %s: %w", name, err)
	}
	return &t, nil
}

// topSerial reads only the top-level serial of a document that failed
// decoding elsewhere; false when the JSON is broken or the serial itself is
// not a number. Only refused documents pay for this second, shallow decode.
func topSerial(data []byte) (int64, bool) {
	var d struct {
		Serial *int64 `json:"serial"`
	}
	if json.Unmarshal(data, &d) != nil || d.Serial == nil {
		return 0, false
	}
	return *d.Serial, true
}

// errSyntax is broken JSON syntax; its position says where.
var errSyntax = errors.New("invalid JSON syntax (a document named .yaml or .yml, or served as YAML, is read as YAML)")

// checkShape walks the JSON token stream against the shape of
// nodeagent.Topology. It returns *Errors for unknown fields, duplicate keys
// and mistyped values (all of them), or a plain error for broken syntax and
// trailing data, which end the walk.
func checkShape(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	w := &walker{dec: dec, data: data}
	tok, err := w.token()
	if err != nil {
		return err
	}
	if err := w.value(tok, "", reflect.TypeFor[nodeagent.Topology]()); err != nil {
		return err
	}
	off := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s: unexpected data after the document (one JSON object expected)", w.position(off))
	}
	return w.c.err()
}

type walker struct {
	dec  *json.Decoder
	data []byte
	c    collector
	// bad says why the string token read last is not text encoding/json
	// would keep as written ("" when it is).
	bad string
}

// token reads the next token; a syntax error carries its line and column.
func (w *walker) token() (json.Token, error) {
	off := w.dec.InputOffset()
	tok, err := w.dec.Token()
	w.bad = ""
	if err == nil {
		if _, ok := tok.(string); ok {
			// The bytes read are the string and what came before it:
			// whitespace, ':' or ',' only.
			w.bad = rawStringProblem(w.data[off:w.dec.InputOffset()])
		}
		return tok, nil
	}
	if err == io.EOF {
		return nil, errors.New("unexpected end of document")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// Not se's text: it quotes the offending byte, and the document
		// may be any file an operator named (file:///etc/shadow); the
		// position is enough to find it.
		return nil, fmt.Errorf("%s: %w", w.position(se.Offset), errSyntax)
	}
	return nil, fmt.Errorf("%s: %w", w.position(w.dec.InputOffset()), err)
}

// position turns a byte offset into "line L, column C".
func (w *walker) position(off int64) string {
	if off > int64(len(w.data)) {
		off = int64(len(w.data))
	}
	before := w.data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}

// value checks the value that starts with tok against type t. Problems with
// the document's content are collected; the returned error is fatal
// (syntax).
func (w *walker) value(tok json.Token, path string, t reflect.Type) error {
	if tok == nil { // null leaves the field at its zero value
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return w.value(tok, path, t.Elem())
	case reflect.Struct:
		if tok != json.Delim('{') {
			w.c.add(path, "must be an object, got "+describe(tok))
			return w.skip(tok)
		}
		return w.object(path, func(key string) (reflect.Type, string, bool) {
			f, ok := fieldByTag(t, key)
			return f, join(path, key), ok
		}, "field")
	case reflect.Map:
		if tok != json.Delim('{') {
			w.c.add(path, "must be an object, got "+describe(tok))
			return w.skip(tok)
		}
		return w.object(path, func(key string) (reflect.Type, string, bool) {
			return t.Elem(), join(path, key), true
		}, "key")
	case reflect.Slice:
		if tok != json.Delim('[') {
			w.c.add(path, "must be a list, got "+describe(tok))
			return w.skip(tok)
		}
		for i := 0; w.dec.More(); i++ {
			el, err := w.token()
			if err != nil {
				return err
			}
			if err := w.value(el, index(path, i), t.Elem()); err != nil {
				return err
			}
		}
		_, err := w.token() // ]
		return err
	case reflect.String:
		if _, ok := tok.(string); !ok {
			w.c.add(path, "must be a string, got "+describe(tok))
			return w.skip(tok)
		}
		if w.bad != "" {
			w.c.add(path, w.bad)
		}
	case reflect.Bool:
		if _, ok := tok.(bool); !ok {
			w.c.add(path, "must be true or false, got "+describe(tok))
			return w.skip(tok)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := tok.(json.Number)
		if !ok {
			w.c.add(path, "must be a number, got "+describe(tok))
			return w.skip(tok)
		}
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			if errors.Is(err, strconv.ErrRange) {
				w.c.add(path, "number "+string(n)+" is out of range")
			} else {
				w.c.add(path, "must be a whole number, got "+string(n))
			}
		}
	default:
		// The document types use only the kinds above.
		panic(fmt.Sprintf("topology: checkShape: unsupported kind %s at %s", t.Kind(), path))
	}
	return nil
}

// object walks the members of an object whose '{' was read. member says
// what type a key's value has, its path, and whether the key is known.
func (w *walker) object(path string, member func(key string) (reflect.Type, string, bool), what string) error {
	seen := make(map[string]bool)
	for w.dec.More() {
		kt, err := w.token()
		if err != nil {
			return err
		}
		key, _ := kt.(string) // the decoder only yields strings as keys
		vt, vpath, known := member(key)
		if w.bad != "" {
			w.c.add(vpath, "key: "+w.bad)
		}
		if seen[key] {
			w.c.add(vpath, "duplicate "+what+" (a later one would silently win)")
		}
		seen[key] = true
		tok, err := w.token()
		if err != nil {
			return err
		}
		if !known {
			w.c.add(vpath, "unknown field")
			if err := w.skip(tok); err != nil {
				return err
			}
			continue
		}
		if err := w.value(tok, vpath, vt); err != nil {
			return err
		}
	}
	_, err := w.token() // }
	return err
}

// skip consumes the rest of a value that starts with tok.
func (w *walker) skip(tok json.Token) error {
	if tok != json.Delim('{') && tok != json.Delim('[') {
		return nil
	}
	for depth := 1; depth > 0; {
		t, err := w.token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

// fieldByTag finds the struct field whose JSON name is exactly key (the
// standard decoder would also accept other letter cases; a strict document
// does not).
func fieldByTag(t reflect.Type, key string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f.Type, true
		}
	}
	return nil, false
}

// describe names the JSON type of a token for "must be X, got Y".
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}

// rawStringProblem says why raw, the bytes of a JSON string as written,
// would not decode to what it says: invalid UTF-8, or a \u escape of a lone
// UTF-16 surrogate. encoding/json replaces both with U+FFFD without a
// word; a strict document refuses them. "" means the string is fine.
func rawStringProblem(raw []byte) string {
	if !utf8.Valid(raw) {
		return "invalid UTF-8 (save the document as UTF-8)"
	}
	for i := 0; i+1 < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // a one-character escape, perhaps an escaped backslash
			continue
		}
		r, ok := hex4(raw[i+2:])
		switch {
		case !ok || !utf16.IsSurrogate(r):
		case r < 0xdc00 && i+11 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u':
			if lo, ok := hex4(raw[i+8:]); ok && lo >= 0xdc00 && lo <= 0xdfff {
				i += 11 // a surrogate pair: one character
				continue
			}
			return "lone UTF-16 surrogate escape (\\u" + string(raw[i+2:i+6]) + ")"
		default:
			return "lone UTF-16 surrogate escape (\\u" + string(raw[i+2:i+6]) + ")"
		}
		i += 5
	}
	return ""
}

// hex4 reads four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
