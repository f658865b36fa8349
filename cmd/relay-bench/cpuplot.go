package main

import (
	"fmt"
	"image"
)

// drawCPU writes the cpu scenario as a table: per mode and rate the CPU
// time per delivered event (median, range), context switches per event and,
// for relays, the ratio to their floor.
func drawCPU(img *image.RGBA, r *CPUResult) {
	y := 60
	line := func(s string) {
		drawText(img, 20, y, s, textScale, black)
		y += lineH * 3 / 2
	}
	line(fmt.Sprintf("CPU PER DELIVERED EVENT, EACH PROCESS ALONE (MEDIAN AND RANGE OF %d ROUNDS OF %.0f S)", r.Rounds, r.RunSeconds))
	line(fmt.Sprintf("%-23s %7s %22s %9s %12s", "MODE", "RATE/S", "CPU µS/EVENT", "SWITCHES", "RATIO"))
	for _, m := range r.Modes {
		ratio := ""
		if q := r.floorRatio(m); q != nil {
			ratio = fmt.Sprintf("%.2f %s", q.Median, q.To)
		}
		line(fmt.Sprintf("%-23s %7d %7.2f (%5.2f-%5.2f) %9.2f  %s", m.Mode, m.Rate, m.CPUPerEvent.Median,
			m.CPUPerEvent.Min, m.CPUPerEvent.Max, m.Switches.Median, ratio))
	}
	for _, t := range r.Targets {
		line(fmt.Sprintf("TARGET %s %s: %s", t.Name, t.Want, t.Got))
	}
}

// floorRatio is the ratio of a relay mode to its floor, nil for floors.
func (r *CPUResult) floorRatio(m *ModeCPU) *CPURatio {
	for _, p := range cpuPairs[:4] {
		if p[0] == m.Mode {
			return r.ratio(p[0], p[1], m.Rate)
		}
	}
	return nil
}
