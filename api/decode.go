package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

// decode reads the request body as exactly one JSON object of dst's type,
// strictly: no unknown fields, field names exactly as documented (not in
// another case, which encoding/json would accept), no field twice, and
// only valid UTF-8 text (no unpaired \u surrogate escape either, which
// encoding/json would turn into U+FFFD). On failure it answers (415, 413
// or 400, naming the field) and returns false.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	// An absent Content-Type is read as JSON: curl -d sends
	// form-urlencoded only when told, and plain clients often send none.
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, fmt.Sprintf(
				"Content-Type %.100q is not supported: send the body as JSON with Content-Type: application/json", ct))
			return false
		}
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		s.tooLarge(w)
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		s.badBody(w, err, dst)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		s.badBody(w, err, dst)
		return false
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest,
			"request body has data after the JSON object: send exactly one JSON object")
		return false
	}
	if msg := strictProblem(body, reflect.TypeOf(dst)); msg != "" {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, msg)
		return false
	}
	return true
}

func (s *Server) tooLarge(w http.ResponseWriter) {
	writeError(w, http.StatusRequestEntityTooLarge, CodePayloadTooLarge,
		fmt.Sprintf("request body is larger than %d bytes: send a smaller JSON object", s.cfg.MaxBodyBytes))
}

// badBody answers a decoding error with what to fix.
func (s *Server) badBody(w http.ResponseWriter, err error, dst any) {
	var (
		mbe *http.MaxBytesError
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	msg := ""
	switch {
	case errors.As(err, &mbe):
		s.tooLarge(w)
		return
	case errors.Is(err, io.EOF):
		msg = "request body is empty: send a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		msg = "request body is truncated JSON: send a complete JSON object"
	case errors.As(err, &syn):
		msg = fmt.Sprintf("request body is not valid JSON (at byte %d: %v): send a JSON object", syn.Offset, syn)
	case errors.As(err, &typ) && typ.Field == "":
		msg = fmt.Sprintf("request body is a JSON %s: send a JSON object", typ.Value)
	case errors.As(err, &typ):
		// For a map element Field names the map, so say where, not what the field is.
		msg = fmt.Sprintf("field %q has a JSON %s where %s is expected", typ.Field, typ.Value, jsonKind(typ.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for this one; its text is stable.
		msg = fmt.Sprintf("request body has an unknown field %s: valid fields are %s",
			strings.TrimPrefix(err.Error(), "json: unknown field "), strings.Join(jsonFields(reflect.TypeOf(dst), ""), ", "))
	default:
		msg = fmt.Sprintf("request body could not be read (%v): send a JSON object", err)
	}
	writeError(w, http.StatusBadRequest, CodeInvalidRequest, msg)
}

// jsonKind names the JSON shape a Go type expects.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return "an object of strings"
		}
		return "an object"
	case reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "a " + t.String()
}

// jsonFields lists the JSON field paths of a struct type ("credentials.username"),
// for messages about unknown fields.
func jsonFields(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, jsonFields(ft, prefix+name+".")...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}
