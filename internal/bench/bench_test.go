package bench

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// The BENCH line is the harness's machine-readable contract.
func TestBenchLineFormat(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^BENCH [A-Z0-9.a-z]+ [a-z0-9-]+ value=-?[0-9.]+ unit=\S+ baseline=(-?[0-9.]+|-) ratio=(-?[0-9.]+|-)$`)
	for _, r := range []Result{
		{ID: "P1", Name: "sweep", Value: 19840.3957, Unit: "conn/s", Baseline: 29335.95, HasBase: true, Ratio: 0.6763, HasRatio: true},
		{ID: "P4.b", Name: "memory-history", Value: 408, Unit: "B/conn"},
		{ID: "P3", Name: "tick", Value: 0.00001, Unit: "ms", Baseline: 0.026, HasBase: true, Ratio: 1, HasRatio: true},
	} {
		if l := r.benchLine(); !re.MatchString(l) {
			t.Errorf("%q does not match %s", l, re)
		}
	}
	if got := (Result{ID: "P4.b", Name: "memory-history", Value: 408, Unit: "B/conn"}).benchLine(); got != "BENCH P4.b memory-history value=408 unit=B/conn baseline=- ratio=-" {
		t.Errorf("got %q", got)
	}
}

func TestSpreadHistogramAndChart(t *testing.T) {
	t.Parallel()
	ids := storeIDs(20000)
	h, err := SpreadHistogram(ids, spreadCreated, spreadInterval)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Counts) != 168 {
		t.Fatalf("%d buckets, want 168", len(h.Counts))
	}
	sum := 0
	for _, c := range h.Counts {
		sum += c
	}
	if sum != len(ids) {
		t.Fatalf("buckets hold %d IDs, want %d", sum, len(ids))
	}
	var b bytes.Buffer
	if err := WriteSpreadSVG(&b, h); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	if n := strings.Count(svg, "<title>hour "); n != 168 {
		t.Errorf("%d bars, want 168", n)
	}
	for _, want := range []string{"<svg ", "Day 1", "Day 7", "mean", "1.05 × mean", "</svg>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}

func TestSizes(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "full", "small", "SMALL"} {
		if _, err := SizesFor(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := SizesFor("huge"); err == nil {
		t.Error("huge: want an error")
	}
	if n := p6Tasks(FullSizes()); n < 2000*30 {
		t.Errorf("P6 queues %d tasks, fewer than it can take in 30 s", n)
	}
}
