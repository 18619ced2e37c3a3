package console

import (
	"testing"
	"time"

	"github.com/checkd/checkd/store"
)

func TestForecastBounds(t *testing.T) {
	t.Parallel()
	for _, now := range []time.Time{
		time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 2, 23, 59, 59, 0, time.UTC),
		time.Date(2026, 3, 2, 9, 30, 0, 0, time.FixedZone("CET", 3600)),
	} {
		b := forecastBounds(now)
		if len(b) != forecastHours+1 || !b[0].Equal(now) {
			t.Fatalf("%s: %d bounds from %s", now, len(b), b[0])
		}
		for i := 1; i < len(b); i++ {
			if b[i].Truncate(time.Hour) != b[i] || b[i].Sub(b[i-1]) > time.Hour || !b[i].After(b[i-1]) {
				t.Fatalf("%s: bound %d is %s after %s: want whole hours", now, i, b[i], b[i-1])
			}
		}
		if end := now.UTC().Truncate(time.Hour).Add(forecastHours * time.Hour); !b[len(b)-1].Equal(end) {
			t.Errorf("%s: last bound %s, want %s", now, b[len(b)-1], end)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]int64{0: 2, 1: 2, 2: 2, 3: 4, 5: 6, 9: 10, 10: 10, 11: 20, 45: 60, 81: 100, 101: 200, 12345: 20000} {
		if got := niceCeil(n); got != want || got%2 != 0 {
			t.Errorf("niceCeil(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestDrawForecast(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 2, 22, 30, 0, 0, time.UTC)
	bounds := forecastBounds(start)
	ws := make([]store.DueCount, forecastHours)
	for i := range ws {
		ws[i] = store.DueCount{Start: bounds[i], End: bounds[i+1]}
	}
	if ch := drawForecast(ws); ch.Busiest != nil || ch.Total != 0 || len(ch.Bars) != forecastHours {
		t.Errorf("no checks: busiest %v, total %d, %d bars", ch.Busiest, ch.Total, len(ch.Bars))
	}
	ws[3].Weekly, ws[5].Weekly, ws[5].OnDemand, ws[9].Weekly = 7, 5, 2, 7
	ch := drawForecast(ws)
	if ch.Busiest == nil || ch.Busiest.Start != bounds[3] || !ch.Bars[3].Busiest || ch.Bars[5].Busiest || ch.Bars[9].Busiest {
		t.Fatalf("busiest: %+v, want the first of the two hours of 7", ch.Busiest)
	}
	if got, want := ch.BusiestLabel(), "Tue 3 Mar 01:00–02:00 UTC"; got != want {
		t.Errorf("busiest label %q, want %q", got, want)
	}
	if ch.Total != 21 || ch.Weekly != 19 || ch.OnDemand != 2 {
		t.Errorf("totals %d (%d weekly, %d on demand)", ch.Total, ch.Weekly, ch.OnDemand)
	}
	top := ch.Bars[3]
	if top.H != round1(float64(plotBottom-plotTop)*7/8) || round1(top.Y+top.H) != plotBottom {
		t.Errorf("a bar of 7 on an axis to 8: y %v h %v", top.Y, top.H)
	}
	if b := ch.Bars[0]; b.H != 0 || b.Y != plotBottom {
		t.Errorf("an empty hour: %+v", b)
	}
	// Day ticks: the partial first day, then each midnight; the first
	// day's label hidden (it would overlap the next, an hour and a half on).
	if len(ch.Days) != 8 || ch.Days[0].ShowLabel || !ch.Days[1].ShowLabel || ch.Days[1].Label != "Tue 3" {
		t.Errorf("day ticks %+v", ch.Days)
	}
	var sum int64
	for _, d := range ch.Days {
		sum += d.Total
	}
	if sum != ch.Total || ch.Days[1].Total != 21 {
		t.Errorf("day totals: %+v", ch.Days)
	}
}
