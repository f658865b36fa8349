package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/redisserver"
	"github.com/relayhq/relay/internal/registry"
	"github.com/relayhq/relay/internal/registry/registrytest"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/bolt"
	"github.com/relayhq/relay/internal/store/redisstore"
)

// benchClients is how many connections register at once.
const benchClients = 32

// BenchmarkRegister measures registrations per second through the API over
// loopback HTTP, benchClients clients at once, with the real registry on a
// bbolt file and on a real redis-server (skipped when none is on PATH):
//
//	go test -run '^$' -bench BenchmarkRegister -benchtime 100000x ./internal/api/
//
// b.N is the number of registrations (distinct tokens). The cable pool is a
// stub that only records the subscription: the measure is the API, the
// registry and the store.
func BenchmarkRegister(b *testing.B) {
	for _, backend := range []string{"bolt", "redis"} {
		b.Run(backend+"/single", func(b *testing.B) {
			runRegister(b, openBenchStore(b, backend), registerOne)
		})
		b.Run(backend+"/batch", func(b *testing.B) {
			runRegister(b, openBenchStore(b, backend), registerBatches)
		})
	}
}

// registerFunc registers tokens[from:to] with one client.
type registerFunc func(c *http.Client, url string, tokens []string) error

// runRegister registers b.N tokens through a relay API over st, the tokens
// split evenly among benchClients clients.
func runRegister(b *testing.B, st store.Store, register registerFunc) {
	url := benchRelay(b, st)
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("bench-token-%012d", i)
	}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients}}
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for k := range benchClients {
		part := tokens[k*len(tokens)/benchClients : (k+1)*len(tokens)/benchClients]
		wg.Go(func() {
			if err := register(c, url, part); err != nil {
				failed.Store(err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	if n, err := st.CountSubscriptions(context.Background()); err != nil || n != b.N {
		b.Fatalf("%d subscriptions stored (%v), want %d", n, err, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "registrations/s")
}

// registerOne registers each token with its own POST /v1/subscriptions.
func registerOne(c *http.Client, url string, tokens []string) error {
	for _, tok := range tokens {
		if err := postJSON(c, url+"/v1/subscriptions", `{"pubsub_token":"`+tok+`"}`, http.StatusCreated); err != nil {
			return err
		}
	}
	return nil
}

// registerBatches registers the tokens with POST /v1/subscriptions/batch,
// api.MaxBatchRegistrations at a time.
func registerBatches(c *http.Client, url string, tokens []string) error {
	for len(tokens) > 0 {
		n := min(len(tokens), api.MaxBatchRegistrations)
		var body strings.Builder
		body.WriteString(`{"subscriptions":[`)
		for i, tok := range tokens[:n] {
			if i > 0 {
				body.WriteByte(',')
			}
			body.WriteString(`{"pubsub_token":"` + tok + `"}`)
		}
		body.WriteString(`]}`)
		if err := postJSON(c, url+"/v1/subscriptions/batch", body.String(), http.StatusOK); err != nil {
			return err
		}
		tokens = tokens[n:]
	}
	return nil
}

func postJSON(c *http.Client, url, body string, want int) error {
	resp, err := c.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, b)
	}
	return nil
}

// benchRelay serves the API over st on a loopback socket.
func benchRelay(b testing.TB, st store.Store) string {
	return serveRegistry(b, newRegistry(b, st))
}

// newRegistry is the relay's registry over st with a stub pool.
func newRegistry(b testing.TB, st store.Store) *registry.Registry {
	reg := registry.New(st, nil)
	reg.Attach(registrytest.NewPool())
	b.Cleanup(reg.Close)
	return reg
}

// serveRegistry serves the API over reg on a loopback socket.
func serveRegistry(b testing.TB, reg *registry.Registry) string {
	cw, err := chatwoot.New(chatwoot.Options{BaseURL: "http://chatwoot.invalid"})
	if err != nil {
		b.Fatal(err)
	}
	s, err := api.New(api.Options{Registry: reg, Chatwoot: cw, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	b.Cleanup(srv.Close)
	return srv.URL
}

// openBenchStore opens an empty store of the named backend.
func openBenchStore(b testing.TB, backend string) store.Store {
	var st store.Store
	var err error
	switch backend {
	case "bolt":
		st, err = bolt.Open(filepath.Join(b.TempDir(), "relay.db"), bolt.Options{})
	case "redis":
		st, err = redisstore.Open(startBenchRedis(b), redisstore.Options{})
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// startBenchRedis runs redis-server from PATH until the benchmark ends.
func startBenchRedis(b testing.TB) string {
	s, err := redisserver.Start(context.Background())
	if errors.Is(err, redisserver.ErrNotFound) {
		b.Skipf("SKIP: %v", err)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Stop)
	return s.URL
}
