package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// strictProblem says what makes body, a JSON document that decoded into a
// value of type t, unacceptable although encoding/json took it ("" when
// nothing): a field name matching a field of t only in another case, a
// field given twice (encoding/json keeps the last), text that is not
// valid UTF-8 or holds an unpaired \u surrogate escape (encoding/json
// replaces either with U+FFFD). The message names the field.
func strictProblem(body []byte, t reflect.Type) string {
	w := strictWalker{dec: json.NewDecoder(bytes.NewReader(body)), body: body}
	w.dec.UseNumber()
	if err := w.value(t, ""); err != nil {
		return err.Error()
	}
	return ""
}

// strictObject is implemented by a request type that decodes itself
// (json.Unmarshaler) from an object: it names the type whose fields that
// object may have.
type strictObject interface {
	strictObjectType() reflect.Type
}

var (
	unmarshalerType  = reflect.TypeFor[json.Unmarshaler]()
	strictObjectIntf = reflect.TypeFor[strictObject]()
)

// strictWalker walks a JSON document's tokens beside the Go type it
// decodes into.
type strictWalker struct {
	dec  *json.Decoder
	body []byte
}

// value checks the next value, expected to decode into t (nil: anything).
func (w *strictWalker) value(t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	start := w.dec.InputOffset()
	tok, err := w.dec.Token()
	if err != nil {
		return fmt.Errorf("request body is not valid JSON: %v", err)
	}
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return w.array(t, path)
		}
		return w.object(t, path)
	case string:
		if !w.validText(start) {
			return fmt.Errorf("field %q is not valid UTF-8 text (or holds an unpaired \\u surrogate escape): send text as UTF-8", displayPath(path))
		}
	}
	return nil
}

func (w *strictWalker) array(t reflect.Type, path string) error {
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	for i := 0; w.dec.More(); i++ {
		if err := w.value(elem, path+"["+strconv.Itoa(i)+"]"); err != nil {
			return err
		}
	}
	_, err := w.dec.Token() // ]
	return err
}

func (w *strictWalker) object(t reflect.Type, path string) error {
	fields, elem, free := objectSchema(t)
	seen := map[string]bool{}
	for w.dec.More() {
		start := w.dec.InputOffset()
		tok, err := w.dec.Token()
		if err != nil {
			return fmt.Errorf("request body is not valid JSON: %v", err)
		}
		key, _ := tok.(string)
		if !w.validText(start) {
			where := "the request body"
			if path != "" {
				where = fmt.Sprintf("field %q", path)
			}
			return fmt.Errorf("a field name in %s is not valid UTF-8 text (or holds an unpaired \\u surrogate escape): send field names as documented", where)
		}
		kpath := key
		if path != "" {
			kpath = path + "." + key
		}
		if seen[key] {
			return fmt.Errorf("field %q appears twice in the request body: send each field once", kpath)
		}
		seen[key] = true
		ft := elem
		if !free {
			var ok bool
			if ft, ok = fields[key]; !ok {
				return unknownField(kpath, key, fields)
			}
		}
		if err := w.value(ft, kpath); err != nil {
			return err
		}
	}
	_, err := w.dec.Token() // }
	return err
}

// unknownField explains a field name encoding/json matched only
// case-insensitively (or, defensively, not at all).
func unknownField(path, key string, fields map[string]reflect.Type) error {
	for n := range fields {
		if strings.EqualFold(n, key) {
			return fmt.Errorf("field %q is not known: field names are case-sensitive; did you mean %q?", path, n)
		}
	}
	return fmt.Errorf("field %q is not known here", path)
}

// objectSchema is what a JSON object decoding into t may hold: the fields
// of a struct by exact name, or (free) any name, each value decoding into
// elem (a map's element type; nil: anything).
func objectSchema(t reflect.Type) (fields map[string]reflect.Type, elem reflect.Type, free bool) {
	if t == nil {
		return nil, nil, true
	}
	if pt := reflect.PointerTo(t); pt.Implements(unmarshalerType) || t.Implements(unmarshalerType) {
		if t.Implements(strictObjectIntf) {
			return objectSchema(reflect.Zero(t).Interface().(strictObject).strictObjectType())
		}
		if pt.Implements(strictObjectIntf) {
			return objectSchema(reflect.New(t).Interface().(strictObject).strictObjectType())
		}
		return nil, nil, true // it reads itself: no schema to check against
	}
	switch t.Kind() {
	case reflect.Map:
		return nil, t.Elem(), true
	case reflect.Struct:
		fields = map[string]reflect.Type{}
		addFields(t, fields)
		return fields, nil, false
	}
	return nil, nil, true // a type error encoding/json reported already
}

// addFields adds t's JSON fields by name, those of embedded structs
// without a name of their own included (encoding/json promotes them).
func addFields(t reflect.Type, fields map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && tag == "" && ft.Kind() == reflect.Struct {
			addFields(ft, fields)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		fields[tag] = f.Type
	}
}

// validText reports whether the string token that follows offset start
// in the body (after whitespace, a colon or a comma) is valid UTF-8 and
// has no unpaired surrogate escape.
func (w *strictWalker) validText(start int64) bool {
	raw := w.body[start:w.dec.InputOffset()]
	if i := bytes.IndexByte(raw, '"'); i >= 0 {
		raw = raw[i+1:]
	}
	raw = bytes.TrimSuffix(raw, []byte{'"'})
	return validJSONText(raw)
}

// validJSONText reports whether the inside of a JSON string (valid JSON
// syntax) is valid UTF-8 with every \u surrogate escape paired.
func validJSONText(raw []byte) bool {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\' && i+1 < len(raw) && raw[i+1] == 'u' && i+6 <= len(raw):
			r := hex4(raw[i+2 : i+6])
			i += 6
			if !utf16.IsSurrogate(r) {
				continue
			}
			if r >= 0xDC00 || i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
				return false // a low surrogate first, or a high one alone
			}
			if utf16.DecodeRune(r, hex4(raw[i+2:i+6])) == utf8.RuneError {
				return false
			}
			i += 6
		case c == '\\':
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n <= 1 {
				return false
			}
			i += n
		}
	}
	return true
}

// hex4 reads four hex digits (JSON syntax guarantees them).
func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}

// displayPath is the path for a message ("the request body" at the top).
func displayPath(path string) string {
	if path == "" {
		return "(the request body)"
	}
	return path
}
