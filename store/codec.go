package store

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/checkd/checkd/internal/jsontext"
)

// Hand-written JSON for what every write encodes and every load decodes
// (connRec, histRec, Event): encoding/json's reflection was most of the
// store's CPU on the check path. The encoders write exactly what
// json.Marshal writes and leave values they do not cover to it; the
// decoder reads what the encoder writes and leaves anything else to
// json.Unmarshal, so results never differ from encoding/json's
// (codec_test.go fuzzes both against it). The JSON primitives they are
// built on (strings, numbers, where a value ends) are package jsontext.

// codecField is a JSON field of connRec or acctRec, as its tag has it.
type codecField struct {
	name string
	key  string // "name":
	omit bool   // omitempty
}

// connFields and acctFields are the records' fields in order, which their
// fields methods list pointers to.
var (
	connFields = tagFields(func(r *connRec) []any { f := r.fields(); return f[:] })
	acctFields = tagFields(func(a *acctRec) []any { f := a.fields(); return f[:] })
)

// fields lists pointers to r's JSON fields, in connFields' order.
func (r *connRec) fields() [30]any {
	return [...]any{&r.CompanyID, &r.Datasource, &r.Name, &r.CreatedAt, &r.Inactive, &r.Cred, &r.Status,
		&r.FirstSeen, &r.LastUpdate, &r.Detail, &r.LastCheck, &r.LastSuccess, &r.Failures, &r.Attempt,
		&r.Started, &r.Gen, &r.PrevStatus, &r.PrevDetail, &r.PrevFirst, &r.StartDate, &r.Occupancy, &r.CredUpdated, &r.Joined,
		&r.SiteIDs, &r.Esc, &r.ProvFails, &r.LastOut, &r.LastOutDetail, &r.Accounts, &r.Hist}
}

// fields lists pointers to a's JSON fields, in acctFields' order.
func (a *acctRec) fields() [16]any {
	return [...]any{&a.ID, &a.Number, &a.Name, &a.Tracking, &a.Status, &a.FirstSeen, &a.LastUpdate,
		&a.Detail, &a.CreatedAt, &a.Prev, &a.PrevDetail, &a.PrevFirst, &a.FlagPrev, &a.FlagPrevDetail, &a.FlagPrevFirst, &a.Dup}
}

// tagFields reads T's JSON fields from its struct tags and checks that
// fields lists exactly them, so the two cannot drift apart.
func tagFields[T any](fields func(*T) []any) []codecField {
	var v T
	ptrs := fields(&v)
	var out []codecField
	t := reflect.TypeFor[T]()
	for i := range t.NumField() {
		f := t.Field(i)
		name, opt, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		// The encoder writes no null: slices must be omitempty.
		if name == "" || len(out) == len(ptrs) || reflect.ValueOf(ptrs[len(out)]).Pointer() != reflect.ValueOf(&v).Pointer()+f.Offset ||
			(opt != "" || f.Type.Kind() == reflect.Slice) && opt != "omitempty" {
			panic("store: codec fields do not match " + t.Name() + "." + f.Name)
		}
		out = append(out, codecField{name: name, key: string(jsontext.AppendString(nil, name)) + ":", omit: opt != ""})
	}
	if len(out) != len(ptrs) {
		panic("store: codec fields do not match " + t.Name())
	}
	return out
}

// encodeBufs holds buffers to encode into. A buffer on the stack would
// cost more than it saves: asynq runs every check on a fresh goroutine,
// whose small stack would grow, and be copied, to hold it.
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// withBuffer calls f with an empty pooled buffer, whose contents must not
// outlive the call.
func withBuffer[T any](f func(b []byte) ([]byte, T)) T {
	bp := encodeBufs.Get().(*[]byte)
	b, v := f((*bp)[:0])
	if cap(b) <= 64<<10 { // an outsized one goes back to the GC
		*bp = b[:0]
		encodeBufs.Put(bp)
	}
	return v
}

// marshalConn is json.Marshal(r), as the string the write sends: one
// copy out of the pooled buffer.
func marshalConn(r *connRec) (string, error) {
	f := r.fields()
	var ok bool
	out := withBuffer(func(b []byte) ([]byte, string) {
		b, ok = appendObject(b, connFields, f[:])
		if !ok {
			return b, ""
		}
		return b, string(b)
	})
	if ok {
		return out, nil
	}
	b, err := json.Marshal(r)
	return string(b), err
}

// appendObject appends the fields ptrs points to as json.Marshal writes
// them, false for a value left to json.Marshal: an infinite or NaN float
// (an error there) or a RawMessage json.Marshal would rewrite or reject.
func appendObject(b []byte, fs []codecField, ptrs []any) ([]byte, bool) {
	var f [16]any // an account's fields: declared in a loop, it would be moved to the heap
	b = append(b, '{')
	start := len(b)
	for i, p := range ptrs {
		mark := len(b)
		if len(b) > start {
			b = append(b, ',')
		}
		b = append(b, fs[i].key...)
		var empty bool
		switch p := p.(type) {
		case *string:
			b, empty = jsontext.AppendString(b, *p), *p == ""
		case *int64:
			b, empty = strconv.AppendInt(b, *p, 10), *p == 0
		case *int:
			b, empty = strconv.AppendInt(b, int64(*p), 10), *p == 0
		case *uint64:
			b, empty = strconv.AppendUint(b, *p, 10), *p == 0
		case *bool:
			b, empty = strconv.AppendBool(b, *p), !*p
		case *float64:
			if math.IsInf(*p, 0) || math.IsNaN(*p) {
				return b, false
			}
			b, empty = jsontext.AppendFloat(b, *p), *p == 0
		case *[]byte:
			b, empty = append(base64.StdEncoding.AppendEncode(append(b, '"'), *p), '"'), len(*p) == 0
		case *json.RawMessage:
			if empty = len(*p) == 0; !empty && !jsontext.MarshalsAsIs(*p) {
				return b, false
			}
			b = append(b, *p...)
		case *[]string:
			b, empty = jsontext.AppendStrings(b, *p), len(*p) == 0
		case *[]acctRec:
			b, empty = append(b, '['), len(*p) == 0
			for j := range *p {
				if j > 0 {
					b = append(b, ',')
				}
				f = (*p)[j].fields()
				var ok bool
				if b, ok = appendObject(b, acctFields, f[:]); !ok {
					return b, false
				}
			}
			b = append(b, ']')
		default:
			return b, false
		}
		if empty && fs[i].omit {
			b = b[:mark]
		}
	}
	return append(b, '}'), true
}

// appendHist appends h as json.Marshal writes it.
func appendHist(b []byte, h *histRec) []byte {
	b = strconv.AppendInt(append(b, `{"t":`...), h.T, 10)
	b = jsontext.AppendString(append(b, `,"c":`...), h.C)
	if h.A != "" {
		b = jsontext.AppendString(append(b, `,"a":`...), h.A)
	}
	if h.B != "" {
		b = jsontext.AppendString(append(b, `,"b":`...), h.B)
	}
	if h.Tr == nil {
		return append(b, `,"x":null}`...)
	}
	b = append(b, `,"x":[`...)
	for i := range h.Tr {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsontext.AppendStrings(b, h.Tr[i][:])
	}
	return append(b, "]}"...)
}

// marshalEvent appends json.Marshal(ev) to dst.
func marshalEvent(dst []byte, ev *Event) ([]byte, error) {
	if b, ok := appendEvent(dst, ev); ok {
		return b, nil
	}
	b, err := json.Marshal(ev)
	return append(dst, b...), err
}

// appendEvent appends ev as json.Marshal writes it, false when ev holds
// what newEvent does not build: a time outside UTC or one Time.MarshalJSON
// rejects, or a map value other than a string or []map[string]string.
func appendEvent(b []byte, ev *Event) ([]byte, bool) {
	b = append(b, '{')
	if ev.ID != "" {
		b = append(jsontext.AppendString(append(b, `"id":`...), ev.ID), ',')
	}
	b = jsontext.AppendString(append(b, `"type":`...), ev.Type)
	b = jsontext.AppendString(append(b, `,"connectionId":`...), ev.ConnectionID)
	b = jsontext.AppendString(append(b, `,"companyId":`...), ev.CompanyID)
	n := len(b) + len(`,"time":"`)
	b = ev.Time.AppendFormat(append(b, `,"time":"`...), time.RFC3339Nano)
	if b[n+4] != '-' || b[len(b)-1] != 'Z' { // a year Time.MarshalJSON rejects, or a zone
		return b, false
	}
	b = jsontext.AppendString(append(b, `","cause":`...), ev.Cause)
	b = jsontext.AppendString(append(b, `,"actor":`...), ev.Actor)
	if len(ev.ProtectedChanges) > 0 {
		b = jsontext.AppendStrings(append(b, `,"protectedChanges":`...), ev.ProtectedChanges)
	}
	ok := true
	if len(ev.Old) > 0 {
		b, ok = appendMap(append(b, `,"old":`...), ev.Old)
	}
	if len(ev.New) > 0 && ok {
		b, ok = appendMap(append(b, `,"new":`...), ev.New)
	}
	return append(b, '}'), ok
}

// appendMap appends m with its keys sorted as json.Marshal sorts them
// (bytewise), false for a value that is not a string or
// []map[string]string.
func appendMap[V any](b []byte, m map[string]V) ([]byte, bool) {
	if m == nil {
		return append(b, "null"...), true
	}
	var buf [8]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(jsontext.AppendString(b, k), ':')
		switch v := any(m[k]).(type) {
		case string:
			b = jsontext.AppendString(b, v)
		case []map[string]string:
			if v == nil {
				b = append(b, "null"...)
				break
			}
			b = append(b, '[')
			for j, e := range v {
				if j > 0 {
					b = append(b, ',')
				}
				b, _ = appendMap(b, e)
			}
			b = append(b, ']')
		default:
			return b, false
		}
	}
	return append(b, '}'), true
}

// unmarshalConn is json.Unmarshal(raw, r) for a zero r.
func unmarshalConn(raw string, r *connRec) error {
	f := r.fields()
	if d := (decoder{s: raw}); d.object(connFields, f[:]) && d.i == len(raw) {
		return nil
	}
	*r = connRec{}
	return json.Unmarshal([]byte(raw), r)
}

// decoder reads the JSON appendObject writes: no whitespace, known keys,
// values of the fields' types. Its methods report false on anything else,
// for the caller to hand the input to json.Unmarshal. Strings without
// escapes are slices of the input, not copies.
type decoder struct {
	s string
	i int
}

// object reads the object at d.i into the fields ptrs points to. A key
// repeated keeps its last value, as with json.Unmarshal, but for a slice
// of records (json.Unmarshal would decode into the first one's elements).
func (d *decoder) object(fs []codecField, ptrs []any) bool {
	if !d.eat('{') {
		return false
	}
	if d.eat('}') {
		return true
	}
	next := 0
	for {
		var key string
		if !d.str(&key) || !d.eat(':') {
			return false
		}
		// Keys come in field order unless someone else wrote them.
		k := 0
		for k < len(fs) && fs[(next+k)%len(fs)].name != key {
			k++
		}
		if k == len(fs) || !d.value(ptrs[(next+k)%len(fs)]) {
			return false
		}
		next = (next + k + 1) % len(fs)
		if d.eat('}') {
			return true
		}
		if !d.eat(',') {
			return false
		}
	}
}

// value reads the value at d.i into p as json.Unmarshal does; a number
// that does not parse as the field's type is an error there.
func (d *decoder) value(p any) bool {
	var err error
	switch p := p.(type) {
	case *string:
		return d.str(p)
	case *int64:
		*p, err = strconv.ParseInt(d.number(), 10, 64)
	case *int:
		var v int64
		v, err = strconv.ParseInt(d.number(), 10, strconv.IntSize)
		*p = int(v)
	case *uint64:
		*p, err = strconv.ParseUint(d.number(), 10, 64)
	case *float64:
		*p, err = strconv.ParseFloat(d.number(), 64)
	case *bool:
		switch {
		case strings.HasPrefix(d.s[d.i:], "true"):
			*p, d.i = true, d.i+len("true")
		case strings.HasPrefix(d.s[d.i:], "false"):
			*p, d.i = false, d.i+len("false")
		default:
			return false
		}
	case *[]byte:
		var s string
		if !d.str(&s) {
			return false
		}
		*p, err = base64.StdEncoding.DecodeString(s)
	case *json.RawMessage:
		end := jsontext.ScanValue(d.s, d.i)
		if end < 0 {
			return false
		}
		*p = []byte(d.s[d.i:end])
		d.i = end
	case *[]string:
		if *p != nil || !d.eat('[') {
			return false
		}
		*p = []string{}
		for !d.eat(']') {
			var v string
			if len(*p) > 0 && !d.eat(',') || !d.str(&v) {
				return false
			}
			*p = append(*p, v)
		}
	case *[]acctRec:
		// [] is an empty, non-nil slice, as json.Unmarshal makes it.
		if *p != nil || !d.eat('[') {
			return false
		}
		*p = make([]acctRec, 0, 2)
		for !d.eat(']') {
			if len(*p) > 0 && !d.eat(',') {
				return false
			}
			*p = append(*p, acctRec{})
			if f := (*p)[len(*p)-1].fields(); !d.object(acctFields, f[:]) {
				return false
			}
		}
	default:
		return false
	}
	return err == nil
}

func (d *decoder) eat(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *decoder) str(p *string) bool {
	end, plain := jsontext.ScanString(d.s, d.i)
	if end < 0 {
		return false
	}
	if *p = d.s[d.i+1 : end-1]; !plain {
		*p = jsontext.Unescape(*p)
	}
	d.i = end
	return true
}

// number returns the JSON number at d.i, "" (which no parse accepts) if
// there is none.
func (d *decoder) number() string {
	end := jsontext.ScanNumber(d.s, d.i)
	if end < 0 {
		return ""
	}
	n := d.s[d.i:end]
	d.i = end
	return n
}
