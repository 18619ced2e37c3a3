package daemon

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// jsonFormatter writes exactly the bytes logrus.JSONFormatter{} writes for
// the same entry, without its reflection over a copy of the fields map:
// the worker logs a line per status change, and the stock formatter made
// that line a visible share of a check's CPU (BENCHMARKS.md, the third
// session of 2026-11-30). Fields of the usual types (strings,
// named string types, integers, booleans, errors, nil) are written
// directly; any other value (floats, structs, maps, a type with its own
// JSON or text form) is written by encoding/json, as logrus would. An
// entry it does not write itself (a caller to report, a field named like
// one of logrus's own keys, more fields than it sorts on the stack) goes
// to the stock formatter whole.
//
// One difference is deliberate: logrus notes a func-valued field it
// refused ("can not add field") in the entry's unexported err, which the
// stock formatter prints as logrus_error and this one cannot see. checkd
// logs no func values.
type jsonFormatter struct {
	stock logrus.JSONFormatter
}

// maxFastFields bounds the fields the fast path sorts in a stack array.
const maxFastFields = 16

// logField is one key and its value: encoded JSON at enc[from:to] of the
// scratch buffer, or a string to quote when to is 0. Offsets rather than
// slices keep the buffer on the stack.
type logField struct {
	key      string
	from, to int
	lit      string
}

// Format implements logrus.Formatter.
func (f *jsonFormatter) Format(e *logrus.Entry) ([]byte, error) {
	if e.Caller != nil || len(e.Data) > maxFastFields {
		return f.stock.Format(e)
	}
	var fs [maxFastFields + 3]logField
	n := 0
	var scratch [256]byte
	enc := scratch[:0]
	for k, v := range e.Data {
		switch k {
		case logrus.FieldKeyTime, logrus.FieldKeyMsg, logrus.FieldKeyLevel, logrus.FieldKeyLogrusError:
			return f.stock.Format(e) // logrus renames the field (and may overwrite another)
		}
		start := len(enc)
		var err error
		if enc, err = appendJSONValue(enc, v); err != nil {
			return nil, fmt.Errorf("failed to marshal fields to JSON, %w", err)
		}
		fs[n] = logField{key: k, from: start, to: len(enc)}
		n++
	}
	start := len(enc)
	enc = append(e.Time.AppendFormat(append(enc, '"'), time.RFC3339), '"') // digits and -:+TZ: nothing to escape
	fs[n] = logField{key: logrus.FieldKeyTime, from: start, to: len(enc)}
	fs[n+1] = logField{key: logrus.FieldKeyMsg, lit: e.Message}
	fs[n+2] = logField{key: logrus.FieldKeyLevel, lit: e.Level.String()}
	n += 3
	// encoding/json writes a map's keys sorted; they are few.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && fs[j].key < fs[j-1].key; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}

	b := e.Buffer
	var out []byte
	if b != nil {
		out = b.AvailableBuffer()
	}
	out = append(out, '{')
	for i, fl := range fs[:n] {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(appendJSONString(out, fl.key), ':')
		if fl.to > 0 {
			out = append(out, enc[fl.from:fl.to]...)
		} else {
			out = appendJSONString(out, fl.lit)
		}
	}
	out = append(out, '}', '\n')
	if b == nil {
		return out, nil
	}
	b.Write(out)
	return b.Bytes(), nil
}

// appendJSONValue appends v as encoding/json (HTML escaping on) writes it
// inside a logrus.Fields map, an error as its message.
func appendJSONValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, v), nil
	case error:
		return appendJSONString(b, v.Error()), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	}
	rv := reflect.ValueOf(v)
	if plainKind(rv.Type()) {
		switch rv.Kind() {
		case reflect.String:
			return appendJSONString(b, rv.String()), nil
		case reflect.Bool:
			return strconv.AppendBool(b, rv.Bool()), nil
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return strconv.AppendInt(b, rv.Int(), 10), nil
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			return strconv.AppendUint(b, rv.Uint(), 10), nil
		}
	}
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	plainKinds    sync.Map // reflect.Type → bool
)

// plainKind reports whether encoding/json writes t's values by their kind
// alone: a string, bool or integer kind without a JSON or text form of
// its own (on the value or its pointer, which json does not reach from
// an interface but a method set check must not guess about).
func plainKind(t reflect.Type) bool {
	if ok, hit := plainKinds.Load(t); hit {
		return ok.(bool)
	}
	ok := false
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		pt := reflect.PointerTo(t)
		ok = !t.Implements(jsonMarshaler) && !t.Implements(textMarshaler) &&
			!pt.Implements(jsonMarshaler) && !pt.Implements(textMarshaler)
	}
	plainKinds.Store(t, ok)
	return ok
}

// appendJSONString appends s quoted as encoding/json writes it with HTML
// escaping: printable ASCII other than " \ < > & is copied, and a string
// with anything else is left to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			j, _ := json.Marshal(s) // a string always marshals
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
