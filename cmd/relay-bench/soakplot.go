package main

import (
	"fmt"
	"image"
	"image/color"
	"math"
)

// The soak's plot: the relay's RSS over the run on the left, its
// goroutines and open files on the right, each NATS restart a grey line
// and the end of the warm-up a dashed one.
var (
	rssColor       = color.RGBA{31, 119, 180, 255}
	goroutineColor = color.RGBA{44, 160, 44, 255}
	fdColor        = color.RGBA{255, 127, 14, 255}
)

// soakSeries is one curve: a value per sample.
type soakSeries struct {
	label string
	c     color.RGBA
	v     func(SoakSample) float64
}

func drawSoak(img *image.RGBA, r *SoakResult) {
	left, right := rect{90, 80, 600, 520}, rect{740, 80, 1200, 520}
	drawSoakPanel(img, left, r, "RELAY RSS, MIB", []soakSeries{
		{"RSS", rssColor, func(x SoakSample) float64 { return float64(x.RSSKiB) / 1024 }},
	})
	drawSoakPanel(img, right, r, "GOROUTINES AND OPEN FDS", []soakSeries{
		{"GOROUTINES", goroutineColor, func(x SoakSample) float64 { return float64(x.Goroutines) }},
		{"FDS", fdColor, func(x SoakSample) float64 { return float64(x.FDs) }},
	})
}

func drawSoakPanel(img *image.RGBA, p rect, r *SoakResult, title string, series []soakSeries) {
	drawText(img, p.x0-70, p.y0-40, title, textScale, black)
	span, top := 1.0, 1.0
	for _, x := range r.Samples {
		span = math.Max(span, x.Seconds)
		for _, s := range series {
			top = math.Max(top, s.v(x))
		}
	}
	top = niceCeil(top * 1.1)
	x := func(t float64) int { return p.x0 + int(t/span*float64(p.x1-p.x0)) }
	y := func(v float64) int { return p.y1 - int(v/top*float64(p.y1-p.y0)) }
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		hline(img, p.x0, p.x1, y(v), grid, false)
		drawText(img, p.x0-textWidth(si(v), textScale)-8, y(v)-7, si(v), textScale, black)
	}
	for _, rs := range r.Restarts {
		vline(img, x(rs.At), p.y0, p.y1, color.RGBA{160, 160, 160, 255})
	}
	for yy := p.y0; yy <= p.y1; yy += 12 {
		vline(img, x(r.WarmUpSeconds), yy, min(yy+5, p.y1), targetRed)
	}
	label := fmt.Sprintf("%.0f S", span)
	if span >= 120 {
		label = fmt.Sprintf("%.0f MIN", span/60)
	}
	drawText(img, p.x1-textWidth(label, textScale), p.y1+10, label, textScale, black)
	for i, s := range series {
		for k := 1; k < len(r.Samples); k++ {
			a, b := r.Samples[k-1], r.Samples[k]
			line(img, x(a.Seconds), y(s.v(a)), x(b.Seconds), y(s.v(b)), s.c)
		}
		drawText(img, p.x0+10, p.y0+10+i*lineH, s.label, textScale, s.c)
	}
	vline(img, p.x0, p.y0, p.y1, black)
	hline(img, p.x0, p.x1, p.y1, black, false)
}
