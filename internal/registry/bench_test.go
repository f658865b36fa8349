package registry

import (
	"context"
	"flag"
	"path/filepath"
	"testing"

	"github.com/relayhq/relay/internal/store/bolt"
)

var benchRegistrations = flag.Int("registrations", 100_000, "registrations per BenchmarkRegisterFile operation")

// BenchmarkRegisterFile registers -registrations (100,000) file
// subscriptions into a bbolt file in a temp dir, one op per full load:
//
//   - OneByOne: Register per subscription (what a file load did before
//     RegisterBatch); new: into an empty store, unchanged: into a store that
//     already holds them (a restart);
//   - Batch: RegisterBatch, same two cases.
//
// ns/registration is the cost per subscription. The one-by-one new case
// takes about a minute per op on a disk with real fsyncs: run it with
// -benchtime=1x.
func BenchmarkRegisterFile(b *testing.B) {
	regs := batchOf("bench-token", *benchRegistrations)
	oneByOne := func(b *testing.B, r *Registry) {
		for _, reg := range regs {
			if _, _, err := r.Register(context.Background(), reg); err != nil {
				b.Fatal(err)
			}
		}
	}
	batch := func(b *testing.B, r *Registry) {
		results, err := r.RegisterBatch(context.Background(), regs)
		if err != nil {
			b.Fatal(err)
		}
		if s := Summarize(results); s.Failed != 0 {
			b.Fatalf("summary %+v", s)
		}
	}
	for _, bc := range []struct {
		name     string
		prefill  bool
		register func(*testing.B, *Registry)
	}{
		{"OneByOne/new", false, oneByOne},
		{"OneByOne/unchanged", true, oneByOne},
		{"Batch/new", false, batch},
		{"Batch/unchanged", true, batch},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				b.StopTimer()
				r := benchRegistry(b)
				if bc.prefill {
					batch(b, r)
					r = restart(b, r)
				}
				b.StartTimer()
				bc.register(b, r)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(regs)), "ns/registration")
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/load")
		})
	}
}

// benchRegistry is a registry over a fresh bbolt file with a fake pool.
func benchRegistry(b *testing.B) *Registry {
	b.Helper()
	st, err := bolt.Open(filepath.Join(b.TempDir(), "relay.db"), bolt.Options{SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	r := New(st, nil)
	r.Attach(newFakePool())
	b.Cleanup(r.Close)
	return r
}

// restart returns a new registry and pool over r's store, as after a
// process restart (no live entries).
func restart(b *testing.B, r *Registry) *Registry {
	b.Helper()
	r2 := New(r.store, nil)
	r2.Attach(newFakePool())
	b.Cleanup(r2.Close)
	return r2
}
