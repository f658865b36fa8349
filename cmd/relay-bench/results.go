package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"
)

// Results is the results file: every scenario that ran, with the machine
// and the parameters.
type Results struct {
	Machine    Machine           `json:"machine"`
	Started    time.Time         `json:"started"`
	Quick      bool              `json:"quick"`
	Params     Params            `json:"params"`
	Throughput *ThroughputResult `json:"throughput,omitempty"`
	Latency    *LatencyResult    `json:"latency,omitempty"`
	Scale      *ScaleResult      `json:"scale,omitempty"`
	Storm      *StormResult      `json:"storm,omitempty"`
	Soak       *SoakResult       `json:"soak,omitempty"`
	CPU        *CPUResult        `json:"cpu,omitempty"`
	Cluster    *ClusterResult    `json:"cluster,omitempty"`
}

// Target is one goal, met or not.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
}

func atLeast(name string, got, want float64, format string) Target {
	return Target{Name: name, Want: "≥ " + fmt.Sprintf(format, want), Got: fmt.Sprintf(format, got), Pass: got >= want}
}

func atMost(name string, got, want float64, format string) Target {
	return Target{Name: name, Want: "≤ " + fmt.Sprintf(format, want), Got: fmt.Sprintf(format, got), Pass: got <= want}
}

// summarizer is a scenario result.
type summarizer interface {
	summary() string
	targets() []Target
}

func printResult(w io.Writer, name string, r summarizer) error {
	pass, total := 0, 0
	for _, t := range r.targets() {
		total++
		if t.Pass {
			pass++
		}
	}
	fmt.Fprintf(w, "%s: %s [targets met: %d/%d]\n", name, r.summary(), pass, total)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// median of xs (NaN when empty).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// quantile of sorted nanosecond samples, nearest rank, in microseconds.
func quantile(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / 1e3
}

// round3 keeps JSON readable.
func round3(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1000) / 1000
}
