package console

import (
	"fmt"
	"math"
	"time"

	"github.com/checkd/checkd/store"
)

// forecastHours is how many hourly bars the load forecast draws: a week.
const forecastHours = 7 * 24

// forecastBounds are the forecast's windows: from now to the end of this
// hour, then whole hours (UTC), forecastHours windows in all.
func forecastBounds(now time.Time) []time.Time {
	out := []time.Time{now}
	for end := now.UTC().Truncate(time.Hour).Add(time.Hour); len(out) <= forecastHours; end = end.Add(time.Hour) {
		out = append(out, end)
	}
	return out
}

// The chart's geometry, in the SVG's viewBox units.
const (
	chartWidth  = 1000
	chartHeight = 232
	plotLeft    = 56
	plotRight   = 992
	plotTop     = 14
	plotBottom  = 196
)

// chart is the load forecast drawn as an SVG: one bar per hour.
type chart struct {
	Width, Height           int
	PlotLeft, PlotRight     int
	PlotTop, PlotBottom     int
	Bars                    []bar
	Days                    []dayTick
	Grid                    []gridLine
	Total, Weekly, OnDemand int64
	// Busiest is the bar with the most checks (the first of equals); nil
	// when no check is due.
	Busiest *bar
	Summary string
}

type bar struct {
	X, Y, W, H          float64
	Start, End          time.Time
	N, Weekly, OnDemand int64
	Label               string
	Busiest             bool
}

type dayTick struct {
	X, LabelX float64
	// Label is drawn under the axis unless too close to its end (ShowLabel).
	Label     string
	ShowLabel bool
	Total     int64
	Day       string // the day in full, for the table
}

type gridLine struct {
	Y     float64
	Label string
}

// hourLabel names the hour of a bar: "Tue 3 Mar 14:00–15:00 UTC", the
// first bar from its start to the end of its hour.
func (b *bar) hourLabel() string {
	return fmt.Sprintf("%s %s–%s UTC", b.Start.Format("Mon 2 Jan"), b.Start.Format("15:04"), b.End.Format("15:04"))
}

// drawForecast lays out the bars of windows (one per hour).
func drawForecast(windows []store.DueCount) *chart {
	ch := &chart{Width: chartWidth, Height: chartHeight, PlotLeft: plotLeft, PlotRight: plotRight, PlotTop: plotTop, PlotBottom: plotBottom}
	var most int64
	for _, w := range windows {
		ch.Weekly += w.Weekly
		ch.OnDemand += w.OnDemand
		most = max(most, w.Total())
	}
	ch.Total = ch.Weekly + ch.OnDemand
	top := niceCeil(most)
	slot := float64(plotRight-plotLeft) / float64(len(windows))
	height := float64(plotBottom - plotTop)
	ch.Bars = make([]bar, len(windows))
	busiest := -1
	for i, w := range windows {
		h := 0.0
		if n := w.Total(); n > 0 {
			h = round1(math.Max(1, height*float64(n)/float64(top))) // a check or two still shows
		}
		b := bar{X: round1(plotLeft + float64(i)*slot + slot*0.1), W: round1(slot * 0.8), H: h, Y: round1(plotBottom - h),
			Start: w.Start, End: w.End, N: w.Total(), Weekly: w.Weekly, OnDemand: w.OnDemand}
		b.Label = fmt.Sprintf("%s: %s checks (%s weekly, %s on demand)", b.hourLabel(), num(b.N), num(b.Weekly), num(b.OnDemand))
		ch.Bars[i] = b
		if b.N > 0 && (busiest < 0 || b.N > ch.Bars[busiest].N) {
			busiest = i
		}
		if i == 0 || w.Start.Hour() == 0 {
			x := round1(plotLeft + float64(i)*slot)
			ch.Days = append(ch.Days, dayTick{X: x, LabelX: x + 3, Label: w.Start.Format("Mon 2"), ShowLabel: x < plotRight-40,
				Day: w.Start.Format("Monday 2 January")})
		}
		ch.Days[len(ch.Days)-1].Total += b.N
	}
	for j := 1; j < len(ch.Days); j++ { // labels that would overlap: the later one wins
		if ch.Days[j].X-ch.Days[j-1].X < 40 {
			ch.Days[j-1].ShowLabel = false
		}
	}
	if busiest >= 0 {
		ch.Bars[busiest].Busiest = true
		ch.Busiest = &ch.Bars[busiest]
	}
	for _, f := range []int64{top, top / 2} {
		ch.Grid = append(ch.Grid, gridLine{Y: round1(plotBottom - height*float64(f)/float64(top)), Label: num(f)})
	}
	ch.Grid = append(ch.Grid, gridLine{Y: plotBottom, Label: "0"})
	ch.Summary = fmt.Sprintf("%s checks come due in the next 7 days (%s weekly, %s on demand).", num(ch.Total), num(ch.Weekly), num(ch.OnDemand))
	if ch.Busiest != nil {
		ch.Summary += fmt.Sprintf(" The busiest hour is %s with %s checks.", ch.Busiest.hourLabel(), num(ch.Busiest.N))
	}
	return ch
}

// BusiestLabel names the busiest hour.
func (ch *chart) BusiestLabel() string {
	if ch.Busiest == nil {
		return ""
	}
	return ch.Busiest.hourLabel()
}

// niceCeil is the smallest of 2, 4, 6, 8 × 10^k (k ≥ 0) at or above n:
// a round top for the axis whose half, the middle grid line, is a whole
// number.
func niceCeil(n int64) int64 {
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{2, 4, 6, 8, 10} {
			if m*p >= n {
				return m * p
			}
		}
	}
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
