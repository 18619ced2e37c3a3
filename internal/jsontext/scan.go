// Package jsontext holds the JSON primitives of checkd's hand-written
// codecs (the store's records, history and events): where a JSON value,
// string or number ends, how a string decodes, how json.Marshal writes a
// string or a float. Each does exactly what encoding/json does with the
// same input, so a codec built on them can hand anything they refuse to
// encoding/json and get the same result either way (the tests fuzz them
// against it).
package jsontext

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds the nesting ScanValue follows; a caller leaves deeper
// values to encoding/json.
const MaxDepth = 32

// ScanValue returns the end of the JSON value at s[i], or -1 if there is
// none or it has whitespace (json.Marshal would compact it), or it nests
// deeper than MaxDepth.
func ScanValue[T ~string | ~[]byte](s T, i int) int { return scanValue(s, i, 0) }

// scanValue is ScanValue at nesting depth depth.
func scanValue[T ~string | ~[]byte](s T, i, depth int) int {
	if i >= len(s) || depth > MaxDepth {
		return -1
	}
	switch c := s[i]; c {
	case '"':
		end, _ := ScanString(s, i)
		return end
	case '[', '{':
		closing := c + 2 // ']' or '}'
		if i++; i < len(s) && s[i] == closing {
			return i + 1
		}
		for {
			if c == '{' {
				if i, _ = ScanString(s, i); i < 0 || i >= len(s) || s[i] != ':' {
					return -1
				}
				i++
			}
			if i = scanValue(s, i, depth+1); i < 0 || i >= len(s) {
				return -1
			}
			if s[i] == closing {
				return i + 1
			}
			if s[i] != ',' {
				return -1
			}
			i++
		}
	case 't', 'f', 'n':
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(s)-i >= len(lit) && string(s[i:i+len(lit)]) == lit {
				return i + len(lit)
			}
		}
		return -1
	}
	return ScanNumber(s, i)
}

// ScanString returns the end of the JSON string at s[i], or -1, and
// whether its content is as is: no escapes and valid UTF-8 (invalid UTF-8
// is valid JSON, decoded as U+FFFD).
func ScanString[T ~string | ~[]byte](s T, i int) (int, bool) {
	if i >= len(s) || s[i] != '"' {
		return -1, false
	}
	plain := true
	for i++; i < len(s); {
		switch c := s[i]; {
		case c == '"':
			return i + 1, plain
		case c < ' ':
			return -1, false
		case c == '\\':
			plain = false
			if i+1 < len(s) && strings.IndexByte(`"\/bfnrt`, s[i+1]) >= 0 {
				i += 2
			} else if i+6 <= len(s) && s[i+1] == 'u' && hex4(string(s[i+2:i+6])) >= 0 {
				i += 6
			} else {
				return -1, false
			}
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
			plain = plain && (r != utf8.RuneError || n > 1)
			i += n
		}
	}
	return -1, false
}

// ScanNumber returns the end of the JSON number at s[i], or -1.
func ScanNumber[T ~string | ~[]byte](s T, i int) int {
	digits := func(i int) int {
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = digits(i)
	default:
		return -1
	}
	if i < len(s) && s[i] == '.' {
		if i = digits(i + 1); s[i-1] == '.' {
			return -1
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		if i++; i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if j := digits(i); j > i {
			return j
		}
		return -1
	}
	return i
}

// hex4 is the value of the 4 hex digits h, -1 if they are not.
func hex4(h string) rune {
	v, err := strconv.ParseUint(h, 16, 16)
	if err != nil {
		return -1
	}
	return rune(v)
}

// Unescape decodes the content of a JSON string ScanString accepted, as
// json.Unmarshal does: a \u escape of half a surrogate pair and invalid
// UTF-8 become U+FFFD.
func Unescape(s string) string {
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && s[i+1] == 'u':
			r := hex4(s[i+2 : i+6])
			if i += 6; utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(s)-i >= 6 && s[i] == '\\' && s[i+1] == 'u' {
					r2 = hex4(s[i+2 : i+6])
				}
				if r = utf16.DecodeRune(r, r2); r != utf8.RuneError {
					i += 6 // a valid pair
				}
			}
			b = utf8.AppendRune(b, r)
		case c == '\\':
			switch c = s[i+1]; c {
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			} // else " \ or /, as is
			b = append(b, c)
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			b = utf8.AppendRune(b, r)
			i += n
		}
	}
	return string(b)
}

// DecodeString decodes the JSON string s as json.Unmarshal does: directly
// when it has no escape and is valid UTF-8, else by Unescape; a string
// ScanString refuses goes to json.Unmarshal, which says what is wrong.
func DecodeString(s []byte) (string, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", fmt.Errorf("%.40s is not a string", s)
	}
	end, plain := ScanString(s, 0)
	switch {
	case end != len(s):
		var v string
		err := json.Unmarshal(s, &v)
		return v, err
	case plain:
		return string(s[1 : end-1]), nil
	}
	return Unescape(string(s[1 : end-1])), nil
}

// SplitArray appends the values of the JSON array b to dst, as slices of
// b, each trimmed of whitespace. b must be valid JSON (a record that was
// decoded, say): SplitArray finds where each value ends (a comma or the
// closing bracket outside strings and nested values) but does not check
// the values themselves.
func SplitArray(b []byte, dst [][]byte) ([][]byte, error) {
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return nil, fmt.Errorf("%.40s is not an array", b)
	}
	depth, start := 0, 1
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			end, _ := ScanString(b, i)
			if end < 0 {
				return nil, fmt.Errorf("%.40s has an invalid string", b)
			}
			i = end - 1
		case c == '[' || c == '{':
			depth++
		case (c == ']' || c == '}') && depth > 0:
			depth--
		case (c == ',' || c == ']') && depth == 0:
			v := bytes.TrimSpace(b[start:i])
			if len(v) == 0 {
				if c == ']' && len(dst) == 0 && i == len(b)-1 {
					return dst, nil // []
				}
				return nil, fmt.Errorf("empty value in %.40s", b)
			}
			dst = append(dst, v)
			start = i + 1
			if c == ']' {
				if i != len(b)-1 {
					return nil, fmt.Errorf("%.40s is not one array", b)
				}
				return dst, nil
			}
		}
	}
	return nil, fmt.Errorf("%.40s is not a whole array", b)
}
