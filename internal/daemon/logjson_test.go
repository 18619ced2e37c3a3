package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/configs"
)

// Types whose JSON form is not their kind's, to check the fast path leaves
// them to encoding/json.
type (
	plainName  string
	textName   string
	jsonNumber int
	ptrText    string
	errName    string
)

func (t textName) MarshalText() ([]byte, error) { return []byte("text:" + string(t)), nil }
func (n jsonNumber) MarshalJSON() ([]byte, error) {
	return []byte(`{"n":` + string(rune('0'+int(n)%10)) + `}`), nil
}
func (p *ptrText) MarshalText() ([]byte, error) { return []byte("ptr"), nil }
func (e errName) Error() string                 { return "err:" + string(e) }

// logEntry is an entry as logrus hands it to a formatter: its own buffer,
// a time with a zone.
func logEntry(fields logrus.Fields, msg string) *logrus.Entry {
	e := logrus.NewEntry(logrus.New())
	e.Data = fields
	e.Message = msg
	e.Level = logrus.InfoLevel
	e.Time = time.Date(2026, 11, 30, 4, 5, 6, 789, time.FixedZone("x", 3600))
	e.Buffer = new(bytes.Buffer)
	return e
}

// sameAsStock formats the entry with both formatters and fails unless the
// bytes are equal (or both fail).
func sameAsStock(t *testing.T, fields logrus.Fields, msg string) {
	t.Helper()
	want, werr := (&logrus.JSONFormatter{}).Format(logEntry(fields, msg))
	got, gerr := (&jsonFormatter{}).Format(logEntry(fields, msg))
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("fields %#v: stock error %v, fast error %v", fields, werr, gerr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("fields %#v msg %q:\n got %s\nwant %s", fields, msg, got, want)
	}
}

func TestJSONFormatterMatchesLogrus(t *testing.T) {
	t.Parallel()
	p := ptrText("p")
	for _, tc := range []struct {
		name   string
		fields logrus.Fields
		msg    string
	}{
		{"no fields", nil, "worker started"},
		{"the check line", logrus.Fields{"connectionId": "cn_0123456789abcdef", "taskId": "check:cn_0123456789abcdef:1764475506000",
			"datasource": "sandbox", "from": plainName("PENDING"), "to": plainName("CONNECTED"), "outcome": plainName("applied"),
			"transitions": 3, "durationMs": int64(0)}, "check recorded"},
		{"strings to escape", logrus.Fields{"a": `<b>&"q"\`, "c": "tab\there\nnl", "d": "\u2028\u2029", "e": "caf\xe9", "ü": "ok"}, "m<&>\x01"},
		{"integers and bools", logrus.Fields{"i8": int8(-8), "u": uint(7), "u64": uint64(math.MaxUint64), "i64": int64(math.MinInt64),
			"b": true, "f": false, "up": uintptr(9), "d": 1500 * time.Millisecond}, ""},
		{"errors", logrus.Fields{logrus.ErrorKey: errors.New("redis: connection refused <here>"), "named": errName("x")}, "failed"},
		{"nil and pointers", logrus.Fields{"nil": nil, "nilptr": (*int)(nil), "p": &p, "ip": new(int)}, "m"},
		{"left to encoding/json", logrus.Fields{"text": textName("t"), "json": jsonNumber(4), "ptr": ptrText("v"),
			"float": 1.5, "big": 1e21, "small": 1e-7, "map": map[string]int{"b": 1, "a": 2}, "slice": []string{"x", "<"},
			"time": time.Unix(0, 0).UTC(), "struct": struct{ A int }{1}, "raw": json.RawMessage(`{"z":1}`)}, "m"},
		{"keys logrus renames", logrus.Fields{"msg": "a", "level": 1, "logrus_error": "e", "fields.time": "keep"}, "m"},
		{"a value json rejects", logrus.Fields{"nan": math.NaN()}, "m"},
		{"a channel", logrus.Fields{"ch": make(chan int)}, "m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sameAsStock(t, tc.fields, tc.msg)
		})
	}
}

// TestJSONFormatterManyFields: past the stack array the stock formatter
// writes the entry, so the bytes are still the same.
func TestJSONFormatterManyFields(t *testing.T) {
	t.Parallel()
	f := logrus.Fields{}
	for i := range maxFastFields + 4 {
		f[string(rune('a'+i))] = i
		sameAsStock(t, f, "many")
	}
}

// TestJSONFormatterCaller: a logger that reports callers gets the stock
// formatter's func and file fields.
func TestJSONFormatterCaller(t *testing.T) {
	t.Parallel()
	e := logEntry(logrus.Fields{"a": 1}, "m")
	e.Caller = &runtime.Frame{Function: "pkg.F", File: "/x/f.go", Line: 12}
	want, _ := (&logrus.JSONFormatter{}).Format(e)
	e2 := logEntry(logrus.Fields{"a": 1}, "m")
	e2.Caller = e.Caller
	got, err := (&jsonFormatter{}).Format(e2)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %s (%v), want %s", got, err, want)
	}
}

// TestNewLoggerWritesJSON: the daemon's logger writes the fast formatter's
// JSON, one object per line, through logrus's own entry path.
func TestNewLoggerWritesJSON(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l, err := NewLogger(configs.Log{Level: "info", Format: configs.FormatJSON}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Formatter.(*jsonFormatter); !ok {
		t.Fatalf("formatter %T, want *jsonFormatter", l.Formatter)
	}
	l.WithFields(logrus.Fields{"connectionId": "cn_1", "transitions": 2}).Info("check recorded")
	l.WithError(errors.New("boom")).Warn("task failed")
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %s", len(lines), buf.Bytes())
	}
	var first, second map[string]any
	if err := json.Unmarshal(lines[0], &first); err != nil {
		t.Fatalf("line 1 %s: %v", lines[0], err)
	}
	if err := json.Unmarshal(lines[1], &second); err != nil {
		t.Fatalf("line 2 %s: %v", lines[1], err)
	}
	if first["msg"] != "check recorded" || first["level"] != "info" || first["connectionId"] != "cn_1" || first["transitions"] != 2.0 {
		t.Errorf("line 1: %v", first)
	}
	if second["error"] != "boom" || second["level"] != "warning" {
		t.Errorf("line 2: %v", second)
	}
	if _, err := time.Parse(time.RFC3339, first["time"].(string)); err != nil {
		t.Errorf("time %v: %v", first["time"], err)
	}
}

// FuzzJSONFormatter: for any keys, message and string, integer and named
// values, the fast formatter writes the stock formatter's bytes.
func FuzzJSONFormatter(f *testing.F) {
	f.Add("connectionId", "cn_0123", "check recorded", int64(3), "<&>")
	f.Add("msg", "\xff\xfe", "\u2028", int64(-1), "\"\\")
	f.Add("", "", "", int64(0), "")
	f.Fuzz(func(t *testing.T, key, val, msg string, n int64, named string) {
		sameAsStock(t, logrus.Fields{key: val, key + "n": n, key + "p": plainName(named), key + "e": errName(val),
			"t" + key: textName(named)}, msg)
	})
}

// BenchmarkJSONFormatter formats the worker's per-check line with the
// stock logrus formatter and with the daemon's.
func BenchmarkJSONFormatter(b *testing.B) {
	fields := logrus.Fields{"connectionId": "cn_0123456789abcdef", "taskId": "check:cn_0123456789abcdef:1764475506000",
		"datasource": "sandbox", "from": plainName("PENDING"), "to": plainName("CONNECTED"), "outcome": plainName("applied"),
		"transitions": 3, "durationMs": int64(0)}
	for _, bb := range []struct {
		name string
		f    logrus.Formatter
	}{{"stock", &logrus.JSONFormatter{}}, {"daemon", &jsonFormatter{}}} {
		b.Run(bb.name, func(b *testing.B) {
			e := logEntry(fields, "check recorded")
			b.ReportAllocs()
			for b.Loop() {
				e.Buffer.Reset()
				if _, err := bb.f.Format(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLogLine is the worker's per-check line through a whole logger
// (fields, entry, formatter, output) writing to io.Discard.
func BenchmarkLogLine(b *testing.B) {
	for _, bb := range []struct {
		name string
		f    logrus.Formatter
	}{{"stock", &logrus.JSONFormatter{}}, {"daemon", &jsonFormatter{}}} {
		b.Run(bb.name, func(b *testing.B) {
			l := logrus.New()
			l.SetOutput(io.Discard)
			l.SetFormatter(bb.f)
			b.ReportAllocs()
			for b.Loop() {
				l.WithFields(logrus.Fields{"connectionId": "cn_0123456789abcdef", "taskId": "check:cn_0123456789abcdef:1764475506000",
					"datasource": "sandbox", "from": plainName("PENDING"), "to": plainName("CONNECTED"), "outcome": plainName("applied"),
					"transitions": 3, "durationMs": int64(0)}).Info("check recorded")
			}
		})
	}
}
