package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuFlags are the cpu scenario's flags; zero keeps the default.
type cpuFlags struct {
	rates       intList
	run         time.Duration
	relayBefore string
}

func (c *cpuFlags) register(fs *flag.FlagSet) {
	fs.Var(&c.rates, "cpu-rates", "cpu: paced rates in events/s, comma-separated (default 10000,40000)")
	fs.DurationVar(&c.run, "cpu-run", 0, "cpu: length of one paced run (default 10s)")
	fs.StringVar(&c.relayBefore, "relay-before", "", "cpu: a second relay binary, measured as relay-core-before and relay-jetstream-before in the same rounds")
}

func (c cpuFlags) validate() error {
	if c.run < 0 {
		return errors.New("-cpu-run must not be negative")
	}
	if c.relayBefore != "" {
		if fi, err := os.Stat(c.relayBefore); err != nil || fi.IsDir() {
			return fmt.Errorf("-relay-before %s: not a binary", c.relayBefore)
		}
	}
	return nil
}

// overrideCPU applies the cpu flags that were given.
func (p *Params) overrideCPU(c cpuFlags) {
	if len(c.rates) > 0 {
		p.CPURates = c.rates
	}
	setDur(&p.CPURun, c.run)
}

// intList is a comma-separated list of positive integers.
type intList []int

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	var out intList
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("want positive integers separated by commas, got %q", v)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}
