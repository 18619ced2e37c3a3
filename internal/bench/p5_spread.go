package bench

import (
	"context"
	"encoding/base32"
	"fmt"
	"html"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/checkd/checkd/checks"
)

// spreadCreated is the one minute P5's connections are created in.
var spreadCreated = time.Date(2026, 3, 4, 13, 37, 0, 0, time.UTC)

// spreadInterval is the weekly check interval.
const spreadInterval = 168 * time.Hour

// Histogram is the weekly load of connections created together: Counts[h]
// is how many have their first slot in hour h after the creation minute.
type Histogram struct {
	Created time.Time
	Counts  []int
	N       int
	Source  string // where the IDs came from
}

// Mean is the mean count per hour.
func (h Histogram) Mean() float64 { return float64(h.N) / float64(len(h.Counts)) }

// MaxMin returns the largest and smallest hourly counts.
func (h Histogram) MaxMin() (mx, mn int) {
	mn = math.MaxInt
	for _, c := range h.Counts {
		mx, mn = max(mx, c), min(mn, c)
	}
	return mx, mn
}

// ChiSquare is the chi-square statistic of the counts against uniform.
func (h Histogram) ChiSquare() float64 {
	m := h.Mean()
	var x float64
	for _, c := range h.Counts {
		x += (float64(c) - m) * (float64(c) - m) / m
	}
	return x
}

// SpreadHistogram buckets checks.NextSlot of every ID, from created, by hour.
func SpreadHistogram(ids []string, created time.Time, interval time.Duration) (Histogram, error) {
	h := Histogram{Created: created, Counts: make([]int, int(interval/time.Hour)), N: len(ids)}
	for _, id := range ids {
		d := checks.NextSlot(id, created, interval).Sub(created)
		if d <= 0 || d > interval {
			return h, fmt.Errorf("slot of %s is %s after creation, want within (0, %s]", id, d, interval)
		}
		h.Counts[min(int(d/time.Hour), len(h.Counts)-1)]++
	}
	return h, nil
}

// storeIDs returns n IDs in the store's format ("cn_" + 16 characters of
// its base32 alphabet over 80 random bits), from a fixed seed.
func storeIDs(n int) []string {
	enc := base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)
	r := rand.New(rand.NewChaCha8([32]byte{'c', 'h', 'e', 'c', 'k', 'd'}))
	out := make([]string, n)
	var b [10]byte
	for i := range out {
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		out[i] = "cn_" + enc.EncodeToString(b[:])
	}
	return out
}

// runP5: the spread of weekly slots, and its SVG bar chart.
func runP5(ctx context.Context, e *env) (r Result) {
	r = Result{ID: "P5", Name: "spread", Unit: "conn/hour", Goal: "max hour ≤ 1.05 × mean"}
	n := e.sz.SpreadIDs
	ids, src := e.ds.ids, "the IDs of the connections this run created with the store"
	if len(ids) >= n {
		ids = ids[:n]
	} else {
		ids, src = storeIDs(n), "IDs in the store's format from a fixed seed (the run created fewer connections)"
	}
	began := time.Now()
	h, err := SpreadHistogram(ids, spreadCreated, spreadInterval)
	if err != nil {
		r.Err = err
		return r
	}
	h.Source = src
	took := time.Since(began)
	mx, mn := h.MaxMin()
	mean := h.Mean()
	path := filepath.Join(e.opts.OutDir, "spread.svg")
	f, err := os.Create(path)
	if err != nil {
		r.Err = err
		return r
	}
	if err := WriteSpreadSVG(f, h); err != nil {
		f.Close()
		r.Err = err
		return r
	}
	if err := f.Close(); err != nil {
		r.Err = err
		return r
	}
	r.Value, r.Baseline, r.HasBase, r.Ratio, r.HasRatio = float64(mx), mean, true, float64(mx)/mean, true
	r.Met = verdict(r.Ratio <= 1.05)
	sd := math.Sqrt(mean)
	r.Details = append(r.Details,
		fmt.Sprintf("%d connections created %s, interval 168h: busiest hour %d = %.3f × mean %.0f, quietest %d = %.3f × mean; chi-square %.1f on 167 degrees of freedom (uniform: 167 ± 18)",
			n, spreadCreated.Format("Mon 2006-01-02 15:04 MST"), mx, float64(mx)/mean, mean, mn, float64(mn)/mean, h.ChiSquare()),
		fmt.Sprintf("value = busiest hour, baseline = mean hour; a perfectly uniform hash still has binomial noise of ±%.0f (%.1f%%) per hour, so the max of 168 hours sits about 2.5–3 sd (≈ +%.1f%%) above the mean",
			sd, 100*sd/mean, 100*2.75*sd/mean),
		fmt.Sprintf("IDs: %s; histogram in %s; chart: %s", src, took.Round(time.Millisecond), path))
	return r
}

// WriteSpreadSVG draws the histogram as a bar chart: one bar per hour of
// the week, day labels, the mean and the 1.05 × mean goal.
func WriteSpreadSVG(w io.Writer, h Histogram) error {
	const (
		W, H                  = 1280, 520
		left, right, top, bot = 80, 30, 78, 92
	)
	pw, ph := float64(W-left-right), float64(H-top-bot)
	mx, mn := h.MaxMin()
	mean := h.Mean()
	// y from 0: the eye judges bar heights against zero honestly.
	ymax := niceCeil(math.Max(float64(mx), 1.05*mean) * 1.08)
	y := func(v float64) float64 { return float64(top) + ph - v/ymax*ph }
	bw := pw / float64(len(h.Counts))
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`+"\n", W, H, W, H)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	p(`<text x="%d" y="30" font-size="20" font-weight="bold" fill="#222">Weekly check load of %s connections created in one minute</text>`+"\n",
		left, thousands(h.N))
	p(`<text x="%d" y="54" font-size="14" fill="#444">Created %s; interval 168 h. Busiest hour %s = %.3f × mean, quietest %s = %.3f × mean (goal: busiest ≤ 1.05 × mean).</text>`+"\n",
		left, html.EscapeString(h.Created.Format("Mon 2 Jan 2006 15:04 MST")), thousands(mx), float64(mx)/mean, thousands(mn), float64(mn)/mean)
	// y grid and labels
	for i := 0; i <= 5; i++ {
		v := ymax * float64(i) / 5
		yy := y(v)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left, yy, W-right, yy)
		p(`<text x="%d" y="%.1f" font-size="12" fill="#555" text-anchor="end">%s</text>`+"\n", left-8, yy+4, thousands(int(v+0.5)))
	}
	p(`<text transform="translate(20 %.1f) rotate(-90)" font-size="13" fill="#444" text-anchor="middle">checks due per hour</text>`+"\n", float64(top)+ph/2)
	// bars
	for i, c := range h.Counts {
		x := float64(left) + float64(i)*bw
		fill := "#4a7fb5"
		if c == mx {
			fill = "#c0504d"
		}
		p(`<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>hour %d (%s): %d</title></rect>`+"\n",
			x+0.4, y(float64(c)), math.Max(bw-0.8, 0.5), y(0)-y(float64(c)), fill, i,
			h.Created.Add(time.Duration(i)*time.Hour).Format("Mon 15:04"), c)
	}
	// day separators and labels
	for d := 0; d <= 7; d++ {
		x := float64(left) + float64(d*24)*bw
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#888" stroke-width="1"/>`+"\n", x, top, x, y(0)+6)
		if d == 7 {
			break
		}
		for q := 1; q < 4; q++ { // 6-hour ticks
			xq := x + float64(q*6)*bw
			p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888"/>`+"\n", xq, y(0), xq, y(0)+4)
		}
		start := h.Created.Add(time.Duration(d) * 24 * time.Hour)
		cx := x + 12*bw
		p(`<text x="%.1f" y="%.1f" font-size="14" font-weight="bold" fill="#333" text-anchor="middle">Day %d</text>`+"\n", cx, y(0)+24, d+1)
		p(`<text x="%.1f" y="%.1f" font-size="12" fill="#555" text-anchor="middle">from %s</text>`+"\n", cx, y(0)+42,
			html.EscapeString(start.Format("Mon 2 Jan 15:04")))
	}
	p(`<text x="%.1f" y="%d" font-size="12" fill="#555" text-anchor="middle">hours after creation (one bar per hour, 168 bars; ticks every 6 h)</text>`+"\n",
		float64(left)+pw/2, H-12)
	// mean and goal lines
	p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#222" stroke-width="2" stroke-dasharray="8 5"/>`+"\n", left, y(mean), W-right, y(mean))
	p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#d98b00" stroke-width="1.5" stroke-dasharray="2 3"/>`+"\n", left, y(1.05*mean), W-right, y(1.05*mean))
	// legend
	lx, ly := W-right-330, 72
	p(`<rect x="%d" y="%d" width="330" height="24" fill="#ffffff" fill-opacity="0.85"/>`+"\n", lx-6, ly-16)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#222" stroke-width="2" stroke-dasharray="8 5"/>`+"\n", lx, ly-4, lx+28, ly-4)
	p(`<text x="%d" y="%d" font-size="12" fill="#222">mean %s</text>`+"\n", lx+34, ly, thousands(int(mean+0.5)))
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d98b00" stroke-width="1.5" stroke-dasharray="2 3"/>`+"\n", lx+120, ly-4, lx+148, ly-4)
	p(`<text x="%d" y="%d" font-size="12" fill="#222">1.05 × mean</text>`+"\n", lx+154, ly)
	p(`<rect x="%d" y="%d" width="12" height="12" fill="#c0504d"/>`+"\n", lx+236, ly-11)
	p(`<text x="%d" y="%d" font-size="12" fill="#222">busiest</text>`+"\n", lx+254, ly)
	p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", left, y(0), W-right, y(0))
	p("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to a round multiple of a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5, 8, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func thousands(n int) string {
	if n < 100 {
		return fmt.Sprint(n)
	}
	return human(float64(n))
}
