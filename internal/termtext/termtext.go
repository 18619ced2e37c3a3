// Package termtext decides which text is safe to show on an operator's
// terminal: the runes a terminal acts on rather than shows (control
// characters, escape sequences' ESC among them, the bidirectional controls
// that reorder what follows them, the line separators) can hide or rewrite
// what an operator reads. The store refuses them in names; checkctl shows
// them escaped in whatever the API returns.
package termtext

import (
	"fmt"
	"strings"
	"unicode"
)

// Unsafe reports whether a terminal acts on r rather than shows it.
func Unsafe(r rune) bool {
	switch {
	case unicode.IsControl(r), r == 0x061C, r == 0x200E, r == 0x200F, r >= 0x202A && r <= 0x202E,
		r >= 0x2066 && r <= 0x2069, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// Escape returns s with every Unsafe rune written as an escape (\x1b,
// \u202e), which a terminal shows as it is.
func Escape(s string) string {
	if !strings.ContainsFunc(s, Unsafe) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !Unsafe(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}
