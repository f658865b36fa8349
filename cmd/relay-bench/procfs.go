package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// metricSet maps a series as exposed ("name{label=\"v\"}") to its value.
type metricSet map[string]float64

// parseMetrics reads the Prometheus text format, keeping every sample.
func parseMetrics(r io.Reader) (metricSet, error) {
	m := metricSet{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// procStats is what /proc says about a process.
type procStats struct {
	RSS      int64 `json:"rss_bytes"`      // VmRSS
	RSSAnon  int64 `json:"rss_anon_bytes"` // RssAnon: heap, stacks
	RSSFile  int64 `json:"rss_file_bytes"` // RssFile: mapped files (binary, bbolt)
	CPUTicks int64 `json:"-"`              // utime + stime, in clock ticks
	FDs      int   `json:"fds"`
	Sockets  int   `json:"sockets"`
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func readProc(pid int) (procStats, error) {
	var st procStats
	if err := readStatus(pid, &st); err != nil {
		return st, err
	}
	if err := readCPU(pid, &st); err != nil {
		return st, err
	}
	return st, countFDs(pid, &st)
}

func readStatus(pid int, st *procStats) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			st.RSS = kb << 10
		case "RssAnon:":
			st.RSSAnon = kb << 10
		case "RssFile:":
			st.RSSFile = kb << 10
		}
	}
	return nil
}

// readCPU reads utime and stime (fields 14 and 15 of /proc/<pid>/stat).
func readCPU(pid int, st *procStats) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	st.CPUTicks = utime + stime
	return nil
}

func countFDs(pid int, st *procStats) error {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	st.FDs = len(ents)
	for _, e := range ents {
		if target, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			st.Sockets++
		}
	}
	return nil
}

// Machine describes where the numbers were taken.
type Machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	MemTotalMB int64  `json:"mem_total_mb"`
	Kernel     string `json:"kernel"`
	GoVersion  string `json:"go_version"`
	LoadAvg    string `json:"load_average_at_start"`
	LoadAvgEnd string `json:"load_average_at_end"`
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if kb, err := strconv.ParseInt(strings.Fields(procField("/proc/meminfo", "MemTotal") + " 0")[0], 10, 64); err == nil {
		m.MemTotalMB = kb >> 10
	}
	m.Kernel = strings.TrimSpace(readString("/proc/sys/kernel/osrelease"))
	m.LoadAvg = loadAvg()
	return m
}

// loadAvg is the 1, 5 and 15 minute load average: other work on the
// machine shows up here and in every number the bench takes.
func loadAvg() string {
	if f := strings.Fields(readString("/proc/loadavg")); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(file, key string) string {
	for _, line := range strings.Split(readString(file), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func readString(file string) string {
	b, _ := os.ReadFile(file)
	return string(b)
}
