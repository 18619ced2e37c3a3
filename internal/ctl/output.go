package ctl

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/checkd/checkd/internal/termtext"
)

// tw writes aligned columns; line writes free text between tables.
type tw struct {
	out io.Writer
	w   *tabwriter.Writer
	err error
}

func newTW(out io.Writer) *tw {
	return &tw{out: out, w: tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)}
}

// row writes one row; values from the API are escaped (termtext.Escape), so
// none breaks the columns or hides or reorders what the operator reads (the
// API refuses such names; this covers data stored before, and details).
func (t *tw) row(cells ...string) {
	for i, c := range cells {
		cells[i] = termtext.Escape(c)
	}
	if _, err := fmt.Fprintln(t.w, strings.Join(cells, "\t")); err != nil && t.err == nil {
		t.err = err
	}
}

// line flushes the pending rows and writes a line of text; string
// arguments are escaped as in row.
func (t *tw) line(format string, a ...any) {
	t.flush()
	for i, v := range a {
		if s, ok := v.(string); ok {
			a[i] = termtext.Escape(s)
		}
	}
	if _, err := fmt.Fprintf(t.out, format+"\n", a...); err != nil && t.err == nil {
		t.err = err
	}
}

// flush writes the pending rows and returns the first write error.
func (t *tw) flush() error {
	if err := t.w.Flush(); err != nil && t.err == nil {
		t.err = err
	}
	if t.err != nil {
		return fmt.Errorf("write output: %w", t.err)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
