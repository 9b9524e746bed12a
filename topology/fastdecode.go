package topology

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/nodeagent/nodeagent"
)

// decodeClean decodes a clean document into t in a single pass and reports
// whether it could. A clean document is well-formed JSON whose every key is
// a known field (in its exact case) or a map key seen once in its object,
// whose every value has its field's type, and which holds no null; that is
// a document checkShape accepts, and t then holds what json.Unmarshal
// would have made of it.
//
// Anything else (broken syntax, an unknown or repeated key, a mistyped
// value, a null) makes it give up and report false, leaving t in an
// unspecified state: Decode then takes the slow path (checkShape and
// json.Unmarshal), which names every problem. The slow path walks the
// document twice through encoding/json's token API, about 30 ms for the
// 1 MB document of a 5,000-node fleet; this walks it once.
func decodeClean(data []byte, t *nodeagent.Topology) bool {
	types, ok := cleanTypes()
	if !ok {
		return false
	}
	d := cleanDecoder{data: data, types: types}
	if !d.value(reflect.ValueOf(t).Elem()) {
		return false
	}
	d.skipSpace()
	return d.pos == len(d.data)
}

// cleanField is a struct field as the document names it.
type cleanField struct {
	name  string
	index int
}

// cleanTypes lists the fields of every struct type in nodeagent.Topology.
// ok is false when some type in it needs more than decodeClean models
// (another kind, an embedded or unexported field, a "-" or ",string" tag, a
// custom unmarshaler, more than 64 fields); decodeClean then always gives
// up, so a new field type can make Decode slower but never wrong.
var cleanTypes = sync.OnceValues(func() (map[reflect.Type][]cleanField, bool) {
	types := map[reflect.Type][]cleanField{}
	return types, collectCleanTypes(reflect.TypeFor[nodeagent.Topology](), types)
})

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func collectCleanTypes(t reflect.Type, types map[reflect.Type][]cleanField) bool {
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return false
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return true
	case reflect.Pointer, reflect.Slice:
		return collectCleanTypes(t.Elem(), types)
	case reflect.Map:
		return t.Key().Kind() == reflect.String && collectCleanTypes(t.Key(), types) && collectCleanTypes(t.Elem(), types)
	case reflect.Struct:
		if _, done := types[t]; done {
			return true
		}
		if t.NumField() > 64 {
			return false
		}
		fields := make([]cleanField, 0, t.NumField())
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.Anonymous || !f.IsExported() || name == "-" || strings.Contains(opts, "string") {
				return false
			}
			if name == "" {
				name = f.Name
			}
			fields = append(fields, cleanField{name: name, index: i})
		}
		types[t] = fields
		for _, f := range fields {
			if !collectCleanTypes(t.Field(f.index).Type, types) {
				return false
			}
		}
		return true
	}
	return false
}

// cleanDecoder is one decodeClean call: every method reports false as
// soon as the document is not clean.
type cleanDecoder struct {
	data  []byte
	pos   int
	types map[reflect.Type][]cleanField
}

func (d *cleanDecoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// next skips whitespace and returns the next byte, or 0 at the end.
func (d *cleanDecoder) next() byte {
	d.skipSpace()
	if d.pos == len(d.data) {
		return 0
	}
	return d.data[d.pos]
}

// value decodes the next value into v, which is settable and zero.
func (d *cleanDecoder) value(v reflect.Value) bool {
	if d.next() == 'n' {
		return false // null: leave the nuances of null to the slow path
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if !d.value(p.Elem()) {
			return false
		}
		v.Set(p)
		return true
	case reflect.Struct:
		return d.object(v)
	case reflect.Map:
		return d.mapObject(v)
	case reflect.Slice:
		return d.list(v)
	case reflect.String:
		s, ok := d.str()
		if ok {
			v.SetString(string(s))
		}
		return ok
	case reflect.Bool:
		return d.boolean(v)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return d.integer(v)
	}
	return false
}

// object decodes a JSON object into the struct v.
func (d *cleanDecoder) object(v reflect.Value) bool {
	fields := d.types[v.Type()]
	var seen uint64 // bit i: fields[i] was set
	return d.members(func(key []byte) bool {
		for i, f := range fields {
			if string(key) != f.name {
				continue
			}
			if seen&(1<<i) != 0 {
				return false
			}
			seen |= 1 << i
			return d.value(v.Field(f.index))
		}
		return false // unknown field
	})
}

// mapObject decodes a JSON object into the map v, made empty (not nil)
// first, as encoding/json does.
func (d *cleanDecoder) mapObject(v reflect.Value) bool {
	t := v.Type()
	v.Set(reflect.MakeMap(t))
	elem := reflect.New(t.Elem()).Elem()
	return d.members(func(key []byte) bool {
		k := reflect.ValueOf(string(key))
		if k.Type() != t.Key() {
			k = k.Convert(t.Key())
		}
		if v.MapIndex(k).IsValid() {
			return false // duplicate key
		}
		elem.SetZero()
		if !d.value(elem) {
			return false
		}
		v.SetMapIndex(k, elem)
		return true
	})
}

// members walks an object: for each key, member decodes its value.
func (d *cleanDecoder) members(member func(key []byte) bool) bool {
	if d.next() != '{' {
		return false
	}
	d.pos++
	if d.next() == '}' {
		d.pos++
		return true
	}
	for {
		key, ok := d.str()
		if !ok || d.next() != ':' {
			return false
		}
		d.pos++
		if !member(key) {
			return false
		}
		switch d.next() {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return true
		default:
			return false
		}
	}
}

// list decodes a JSON list into the slice v, made empty (not nil) first,
// as encoding/json does.
func (d *cleanDecoder) list(v reflect.Value) bool {
	if d.next() != '[' {
		return false
	}
	d.pos++
	v.Set(reflect.MakeSlice(v.Type(), 0, 0))
	if d.next() == ']' {
		d.pos++
		return true
	}
	for i := 0; ; i++ {
		v.Grow(1)
		v.SetLen(i + 1)
		if !d.value(v.Index(i)) {
			return false
		}
		switch d.next() {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return true
		default:
			return false
		}
	}
}

// str reads a string. The result aliases the document when the string is
// plain ASCII without escapes; anything else is unquoted by encoding/json,
// so escapes come out exactly as json.Unmarshal makes them. A string that
// encoding/json would silently repair (invalid UTF-8, a lone surrogate
// escape, both made U+FFFD) is not clean.
func (d *cleanDecoder) str() ([]byte, bool) {
	if d.next() != '"' {
		return nil, false
	}
	start := d.pos
	plain := true
	for i := start + 1; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			d.pos = i + 1
			if plain {
				return d.data[start+1 : i], true
			}
			if rawStringProblem(d.data[start+1:i]) != "" {
				return nil, false // the slow path reports it with its path
			}
			var s string
			if err := json.Unmarshal(d.data[start:d.pos], &s); err != nil {
				return nil, false
			}
			return []byte(s), true
		case c == '\\':
			plain = false
			i++ // the escaped byte cannot end the string
		case c < 0x20 || c >= 0x80:
			plain = false
		}
	}
	return nil, false
}

func (d *cleanDecoder) boolean(v reflect.Value) bool {
	for _, lit := range []string{"true", "false"} {
		if bytes.HasPrefix(d.data[d.pos:], []byte(lit)) {
			d.pos += len(lit)
			v.SetBool(lit == "true")
			return true
		}
	}
	return false
}

// integer reads a whole number in JSON's grammar (no fraction, exponent or
// leading zero) that fits v.
func (d *cleanDecoder) integer(v reflect.Value) bool {
	start := d.pos
	i := start
	if i < len(d.data) && d.data[i] == '-' {
		i++
	}
	digits := i
	for i < len(d.data) && d.data[i] >= '0' && d.data[i] <= '9' {
		i++
	}
	if i == digits || (d.data[digits] == '0' && i-digits > 1) {
		return false
	}
	n, err := strconv.ParseInt(string(d.data[start:i]), 10, v.Type().Bits())
	if err != nil {
		return false
	}
	d.pos = i
	v.SetInt(n)
	return true
}
