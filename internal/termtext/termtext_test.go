package termtext_test

import (
	"fmt"
	"testing"

	"github.com/checkd/checkd/internal/termtext"
)

func TestEscape(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"Main office", "Main office"},
		{"Zürich Énergie 東京", "Zürich Énergie 東京"},
		{"a\x1b[8mb", `a\x1b[8mb`},
		{"tab\there\nnew\rcr", `tab\x09here\x0anew\x0dcr`},
		{"del\x7f c1\u0085\u009b", `del\x7f c1\x85\x9b`},
		{"abc\u202eevil\u202c", `abc\u202eevil\u202c`},
		{"\u2066iso\u2069 \u200e\u200f\u061c", `\u2066iso\u2069 \u200e\u200f\u061c`},
		{"line\u2028para\u2029", `line\u2028para\u2029`},
		{"zwj\u200d emoji 👩‍💻", "zwj\u200d emoji 👩‍💻"}, // joiners shape scripts and emoji: shown
	} {
		if got := termtext.Escape(c.in); got != c.want {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "plain", "a\x1bb", "\u202e", "\xff\xfe", "é\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := termtext.Escape(s)
		for _, r := range out {
			if termtext.Unsafe(r) {
				t.Fatalf("Escape(%q) = %q keeps unsafe rune %U", s, out, r)
			}
		}
		if termtext.Escape(out) != out {
			t.Fatalf("Escape(%q) = %q is not a fixed point", s, out)
		}
	})
}

func ExampleEscape() {
	fmt.Println(termtext.Escape("Acme\x1b[8m hidden"))
	// Output: Acme\x1b[8m hidden
}
