package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
)

// The plot: median throughput per mode (bars, with the targets) on the
// left, latency by percentile on the right (x: 50 %, 90 %, 99 %, 99.9 %,
// 99.99 % on a log-tail axis), scale and storm numbers underneath.
const (
	plotW, plotH = 1280, 760
	textScale    = 2
	lineH        = 18
)

var (
	white     = color.RGBA{255, 255, 255, 255}
	black     = color.RGBA{30, 30, 30, 255}
	grid      = color.RGBA{225, 225, 225, 255}
	targetRed = color.RGBA{200, 40, 40, 255}
	modeColor = map[string]color.RGBA{
		modeRelayCore: {31, 119, 180, 255},
		modeRelayJS:   {44, 160, 44, 255},
		modeFloorA:    {127, 127, 127, 255},
		modeFloorB:    {255, 127, 14, 255},
		modeFloorBJS:  {148, 103, 189, 255},
	}
)

// rect is a plot area.
type rect struct{ x0, y0, x1, y1 int }

func writePlot(path string, res *Results) error {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	fillRect(img, 0, 0, plotW, plotH, white)
	title := "RELAY-BENCH " + res.Started.Format("2006-01-02") + fmt.Sprintf("  %d CPUS  %s", res.Machine.CPUs, res.Machine.GoVersion)
	if res.Quick {
		title += "  (QUICK: NOT A MEASUREMENT)"
	}
	drawText(img, 20, 12, title, textScale, black)
	if res.Throughput != nil {
		drawThroughput(img, rect{90, 80, 600, 560}, res.Throughput)
	}
	if res.Latency != nil {
		drawLatency(img, rect{740, 80, 1200, 560}, res.Latency)
	}
	if res.Soak != nil && res.Throughput == nil && res.Latency == nil {
		drawSoak(img, res.Soak)
	}
	if res.CPU != nil && res.Throughput == nil && res.Latency == nil {
		drawCPU(img, res.CPU)
	}
	drawFooter(img, 620, res)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func drawThroughput(img *image.RGBA, r rect, t *ThroughputResult) {
	drawText(img, r.x0-70, r.y0-40, fmt.Sprintf("THROUGHPUT, EVENTS/S (MEDIAN OF %d)", t.Rounds), textScale, black)
	top := 100_000.0
	for _, m := range t.Modes {
		top = math.Max(top, m.EventsPerSec)
	}
	top = niceCeil(top * 1.1)
	y := func(v float64) int { return r.y1 - int(v/top*float64(r.y1-r.y0)) }
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		hline(img, r.x0, r.x1, y(v), grid, false)
		drawText(img, r.x0-textWidth(si(v), textScale)-8, y(v)-7, si(v), textScale, black)
	}
	slot := (r.x1 - r.x0) / max(1, len(t.Modes))
	for i, m := range t.Modes {
		x := r.x0 + i*slot + slot/6
		fillRect(img, x, y(m.EventsPerSec), slot*2/3, r.y1-y(m.EventsPerSec), modeColor[m.Mode])
		drawText(img, x, y(m.EventsPerSec)-20, si(m.EventsPerSec), textScale, black)
		drawText(img, x-4, r.y1+10, shortMode(m.Mode)[0], textScale, black)
		drawText(img, x-4, r.y1+10+lineH, shortMode(m.Mode)[1], textScale, black)
	}
	for _, tg := range []float64{100_000, 50_000} {
		hline(img, r.x0, r.x1, y(tg), targetRed, true)
	}
	drawText(img, r.x1-textWidth("TARGETS", textScale), y(100_000)-20, "TARGETS", textScale, targetRed)
	vline(img, r.x0, r.y0, r.y1, black)
	hline(img, r.x0, r.x1, r.y1, black, false)
}

func shortMode(m string) [2]string {
	switch m {
	case modeRelayCore:
		return [2]string{"RELAY", "CORE"}
	case modeRelayJS:
		return [2]string{"RELAY", "JETSTR"}
	case modeFloorA:
		return [2]string{"FLOOR", "A"}
	case modeFloorB:
		return [2]string{"FLOOR", "B"}
	}
	return [2]string{"FLOOR", "B JS"}
}

// tailX maps a quantile to -log10(1-q): 50 % → 0.3, 99 % → 2, 99.99 % → 4.
func tailX(q float64) float64 { return -math.Log10(math.Max(1-q, 1e-4)) }

func drawLatency(img *image.RGBA, r rect, l *LatencyResult) {
	drawText(img, r.x0-70, r.y0-40, fmt.Sprintf("LATENCY AT %d/S, MS (ALL ROUNDS, CLIPPED)", l.Rate), textScale, black)
	top := 1.0 // ms; twice the worst p99, longer tails are clipped
	for _, m := range l.Modes {
		for _, q := range m.Quantiles {
			if q.Q == 0.99 {
				top = math.Max(top, 2*q.US/1e3)
			}
		}
	}
	top = niceCeil(top)
	x := func(q float64) int { return r.x0 + int(tailX(q)/4*float64(r.x1-r.x0)) }
	y := func(us float64) int { return r.y1 - int(math.Min(us/1e3, top)/top*float64(r.y1-r.y0)) }
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		hline(img, r.x0, r.x1, y(v*1e3), grid, false)
		label := fmt.Sprintf("%.1f", v)
		drawText(img, r.x0-textWidth(label, textScale)-8, y(v*1e3)-7, label, textScale, black)
	}
	for _, q := range []struct {
		q     float64
		label string
	}{{0.5, "50%"}, {0.9, "90%"}, {0.99, "99%"}, {0.999, "99.9%"}, {0.9999, "99.99%"}} {
		vline(img, x(q.q), r.y0, r.y1, grid)
		drawText(img, x(q.q)-textWidth(q.label, textScale)/2, r.y1+10, q.label, textScale, black)
	}
	hline(img, r.x0, r.x1, y(1000), targetRed, true)
	for i, m := range l.Modes {
		drawCurve(img, m.Quantiles, x, y, modeColor[m.Mode])
		drawText(img, r.x0+10, r.y0+10+i*lineH, fmt.Sprintf("%s P99 %.2f MS (MEDIAN)", m.Mode, m.P99/1e3), textScale, modeColor[m.Mode])
	}
	vline(img, r.x0, r.y0, r.y1, black)
	hline(img, r.x0, r.x1, r.y1, black, false)
}

func drawCurve(img *image.RGBA, qs []Quantile, x func(float64) int, y func(float64) int, c color.Color) {
	for i := 1; i < len(qs); i++ {
		if qs[i-1].Q < 0.5 {
			continue
		}
		line(img, x(qs[i-1].Q), y(qs[i-1].US), x(qs[i].Q), y(qs[i].US), c)
	}
}

func drawFooter(img *image.RGBA, y int, res *Results) {
	var lines []string
	if s := res.Scale; s != nil {
		lines = append(lines, fmt.Sprintf("SCALE %d SUBS: RSS %.0f B/SUB (ANON %.0f), HEAP %.0f B/SUB, %d CABLE SOCKETS, IDLE CPU %.2f%%",
			s.Subscriptions, s.RSSPerSub, s.AnonPerSub, s.HeapPerSub, int(s.Loaded.CableConns), s.IdleCPUPercent))
	}
	if s := res.Storm; s != nil {
		lines = append(lines, fmt.Sprintf("STORM %d SUBS AT %.0f/S: RECONFIRMED IN %.1fS (BUDGET %.1fS), MAX %d SUBSCRIBES IN 1S",
			s.Subscriptions, s.Rate, s.ReconfirmSeconds, s.BudgetSeconds, s.MaxIn1s))
	}
	if s := res.Soak; s != nil {
		lines = append(lines, soakFooter(s)...)
	}
	if t := res.Throughput; t != nil {
		for _, q := range t.Ratios {
			lines = append(lines, fmt.Sprintf("%s / %s = %.2f (MEDIAN OF ROUNDS)", q.Of, q.To, q.Median))
		}
	}
	for i, l := range lines {
		drawText(img, 20, y+i*lineH*3/2, l, textScale, black)
	}
}

// si formats 123456 as 123K.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fK", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fK", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// niceCeil rounds up to a round multiple of a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 3, 4, 5, 6, 8, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color, dashed bool) {
	for x := x0; x <= x1; x++ {
		if !dashed || (x/8)%2 == 0 {
			img.Set(x, y, c)
			img.Set(x, y+1, c)
		}
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	for y := y0; y <= y1; y++ {
		img.Set(x, y, c)
	}
}

// line draws a 2-pixel line (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		fillRect(img, x0, y0, 2, 2, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
