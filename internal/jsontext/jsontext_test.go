package jsontext

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

// Every primitive is checked against encoding/json: the table tests name
// the cases that are easy to get wrong, the fuzz tests look for the rest.

var stringCases = []string{
	"", "plain", `quote " and backslash \`, "tab\tnewline\ncr\r\b\f", "\x00\x01\x1f\x7f",
	"<html> & 'js'", "line\u2028para\u2029", "é ü 中文 🙂", "\xff\xfe invalid", "half \xe2\x80",
	"\u2027\u202a", "ctrl \x1b[31m",
}

func TestAppendString(t *testing.T) {
	for _, s := range stringCases {
		want, _ := json.Marshal(s)
		if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got[1:], want)
		}
	}
}

func TestAppendStrings(t *testing.T) {
	for _, ss := range [][]string{{}, {""}, stringCases} {
		want, _ := json.Marshal(ss)
		if got := AppendStrings(nil, ss); string(got) != string(want) {
			t.Errorf("AppendStrings(%q) = %s, want %s", ss, got, want)
		}
	}
}

func TestAppendFloat(t *testing.T) {
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1.5, 0.1, 1e-6, 1e-7, 123456789, 1e20, 1e21, 1.5e300, -2.5e-300,
		math.MaxFloat64, math.SmallestNonzeroFloat64} {
		want, _ := json.Marshal(f)
		if got := AppendFloat(nil, f); string(got) != string(want) {
			t.Errorf("AppendFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

func TestMarshalsAsIs(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want bool
	}{
		{`[1,"a",{"b":null}]`, true}, {`[1, 2]`, false}, {`"<"`, false}, {`"&"`, false},
		{"\"\u2028\"", false}, {`"\u003c"`, true}, {`[1,`, false}, {``, false}, {`1 `, false},
	} {
		if got := MarshalsAsIs([]byte(c.raw)); got != c.want {
			t.Errorf("MarshalsAsIs(%s) = %v, want %v", c.raw, got, c.want)
		}
		if c.want {
			b, err := json.Marshal(json.RawMessage(c.raw))
			if err != nil || string(b) != c.raw {
				t.Errorf("json.Marshal(%s) = %s, %v: the case is wrong", c.raw, b, err)
			}
		}
	}
}

func TestScanValue(t *testing.T) {
	for _, c := range []struct {
		in  string
		end int
	}{
		{`{"a":[1,2,{"b":"c"}],"d":true}`, 30}, {`[]`, 2}, {`{}`, 2}, {`"x",`, 3}, {`-1.5e3]`, 6},
		{`nullx`, 4}, {`[1 ]`, -1}, {`{"a" :1}`, -1}, {`[1,]`, -1}, {`tru`, -1}, {``, -1}, {`01`, 1},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), 2 * (MaxDepth + 1)},
		{strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2), -1},
	} {
		if got := ScanValue(c.in, 0); got != c.end {
			t.Errorf("ScanValue(%s) = %d, want %d", c.in, got, c.end)
		}
		if got := ScanValue([]byte(c.in), 0); got != c.end {
			t.Errorf("ScanValue([]byte(%s)) = %d, want %d", c.in, got, c.end)
		}
	}
}

func TestDecodeString(t *testing.T) {
	for _, s := range stringCases {
		raw, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if got, err := DecodeString(raw); err != nil || got != want {
			t.Errorf("DecodeString(%s) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{`"\ud83d\ude42"`, `"\ud83d"`, `"\ude42\ud83d"`, `"\/"`, "\"\xff\""} {
		var want string
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatal(err)
		}
		if got, err := DecodeString([]byte(raw)); err != nil || got != want {
			t.Errorf("DecodeString(%s) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{`"\x"`, "\"a\x01\"", `"a"b"`, `x`, `"`, `'a'`} {
		if got, err := DecodeString([]byte(raw)); err == nil {
			t.Errorf("DecodeString(%s) = %q, want an error", raw, got)
		}
	}
}

func TestSplitArray(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string // nil: an error
	}{
		{`[]`, []string{}}, {` [ ] `, []string{}}, {`[1]`, []string{"1"}},
		{`[1,"a,]",[2,[3]],{"b":[4,"]"]}]`, []string{`1`, `"a,]"`, `[2,[3]]`, `{"b":[4,"]"]}`}},
		{`[ 1 , "\"]" ]`, []string{`1`, `"\"]"`}},
		{`[1,]`, nil}, {`[,1]`, nil}, {`[1]]`, nil}, {`[1][2]`, nil}, {`[1`, nil}, {`{}`, nil}, {`"[1]"`, nil}, {`["a]`, nil},
	} {
		got, err := SplitArray([]byte(c.in), nil)
		if c.want == nil {
			if err == nil {
				t.Errorf("SplitArray(%s) = %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || len(got) != len(c.want) {
			t.Errorf("SplitArray(%s) = %q, %v; want %q", c.in, got, err, c.want)
			continue
		}
		for i := range got {
			if string(got[i]) != c.want[i] {
				t.Errorf("SplitArray(%s)[%d] = %s, want %s", c.in, i, got[i], c.want[i])
			}
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
		// What json.Marshal writes, DecodeString reads back as json.Unmarshal does.
		var back string
		if err := json.Unmarshal(want, &back); err != nil {
			t.Fatal(err)
		}
		if got, err := DecodeString(want); err != nil || got != back {
			t.Fatalf("DecodeString(%s) = %q, %v; want %q", want, got, err, back)
		}
	})
}

func FuzzAppendFloat(f *testing.F) {
	f.Add(1.5)
	f.Add(1e21)
	f.Add(1e-7)
	f.Fuzz(func(t *testing.T, v float64) {
		if math.IsInf(v, 0) || math.IsNaN(v) {
			t.Skip("json.Marshal refuses it; callers leave it to encoding/json")
		}
		want, _ := json.Marshal(v)
		if got := AppendFloat(nil, v); !bytes.Equal(got, want) {
			t.Fatalf("AppendFloat(%v) = %s, want %s", v, got, want)
		}
	})
}

// depth is how deep the JSON value b nests (0: a scalar), or -1 when b is
// not one valid JSON value.
func depth(b []byte) int {
	d := json.NewDecoder(bytes.NewReader(b))
	cur, deepest := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return deepest
		}
		if err != nil {
			return -1
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			cur++
			deepest = max(deepest, cur)
		case json.Delim(']'), json.Delim('}'):
			cur--
		}
	}
}

// FuzzScanValue: ScanValue takes a whole input exactly when encoding/json
// finds it one valid value that compacting leaves as it is (within
// MaxDepth).
func FuzzScanValue(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":"c"}],"d":true}`, `[1, 2]`, `"x\u00e9"`, `-0.5e-3`, `[[[]]]`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := ScanValue(b, 0)
		valid := json.Valid(b)
		var compact bytes.Buffer
		plain := valid && json.Compact(&compact, b) == nil && bytes.Equal(compact.Bytes(), b)
		if end == len(b) && !plain {
			t.Fatalf("ScanValue took %q whole; encoding/json: valid %v, compact as is %v", b, valid, plain)
		}
		if plain && depth(b) <= MaxDepth && end != len(b) {
			t.Fatalf("ScanValue(%q) = %d, want %d", b, end, len(b))
		}
		if end > len(b) {
			t.Fatalf("ScanValue(%q) = %d, past the end", b, end)
		}
	})
}

// FuzzScanString: a string ScanString takes is one json.Unmarshal takes,
// and reads (as is, or through Unescape) as json.Unmarshal reads it.
func FuzzScanString(f *testing.F) {
	for _, s := range []string{`"abc"x`, `"a\"b"`, `"\ud83d\ude42"`, `"\u12"`, "\"\xff\"", "\"\x01\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end, plain := ScanString(b, 0)
		if end < 0 {
			if json.Valid(b) && len(b) > 0 && b[0] == '"' {
				t.Fatalf("ScanString refused %q, a valid JSON string", b)
			}
			return
		}
		var want string
		if err := json.Unmarshal(b[:end], &want); err != nil {
			t.Fatalf("ScanString took %q; json.Unmarshal: %v", b[:end], err)
		}
		got := string(b[1 : end-1])
		if !plain {
			got = Unescape(got)
		}
		if got != want {
			t.Fatalf("%q reads %q, json.Unmarshal %q", b[:end], got, want)
		}
	})
}

// FuzzScanNumber: a number ScanNumber takes whole is one encoding/json
// takes, and the other way round.
func FuzzScanNumber(f *testing.F) {
	for _, s := range []string{`0`, `-1.5e+3`, `01`, `1.`, `.5`, `-`, `1e`, `12a`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := ScanNumber(b, 0)
		var n json.Number
		isNumber := json.Unmarshal(b, &n) == nil && n != "" && len(b) > 0 && b[0] != '"' && bytes.Equal(bytes.TrimSpace(b), b)
		if (end == len(b)) != isNumber {
			t.Fatalf("ScanNumber(%q) = %d; encoding/json takes it as a number: %v", b, end, isNumber)
		}
	})
}

// FuzzDecodeString: DecodeString reads a JSON string exactly as
// json.Unmarshal does, and refuses what it refuses.
func FuzzDecodeString(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"`, `"\ud83d"`, `"\x"`, "\"\xff\"", "\"\x01\"", ` "a"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeString(b)
		var want string
		werr := json.Unmarshal(b, &want)
		switch {
		case err == nil && (werr != nil || got != want):
			t.Fatalf("DecodeString(%q) = %q; json.Unmarshal: %q, %v", b, got, want, werr)
		case err != nil && werr == nil && len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"':
			t.Fatalf("DecodeString(%q) refused a string json.Unmarshal reads as %q: %v", b, want, err)
		}
	})
}

// FuzzSplitArray: the values SplitArray finds in a valid JSON array are
// the elements json.Unmarshal finds.
func FuzzSplitArray(f *testing.F) {
	for _, s := range []string{`[1,"a,]",[2,[3]],{"b":[4,"]"]}]`, `[ 1 , "\"]" ]`, `[]`, `[1,]`, `{"a":[1]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := SplitArray(b, nil)
		var want []json.RawMessage
		if json.Unmarshal(b, &want) != nil {
			return // not a valid array: SplitArray may refuse it or split it
		}
		if want == nil { // null
			if err == nil {
				t.Fatalf("SplitArray(%q) = %q, want an error", b, got)
			}
			return
		}
		if err != nil || len(got) != len(want) {
			t.Fatalf("SplitArray(%q) = %q, %v; want %q", b, got, err, want)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("SplitArray(%q)[%d] = %s, want %s", b, i, got[i], want[i])
			}
		}
	})
}
