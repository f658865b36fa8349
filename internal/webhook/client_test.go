package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAddressPolicy(t *testing.T) {
	strict, open := AddressPolicy{}, AddressPolicy{AllowLoopback: true, AllowPrivate: true}
	for _, c := range []struct {
		addr           string
		strict, opened bool // allowed under each policy
	}{
		{"93.184.215.14", true, true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", true, true},
		{"169.254.169.254", false, false}, // cloud metadata
		{"169.254.0.1", false, false},
		{"fd00:ec2::254", false, false}, // AWS IPv6 metadata
		{"fe80::1", false, false},
		{"0.0.0.0", false, false},
		{"::", false, false},
		{"224.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"::ffff:169.254.169.254", false, false}, // v4-mapped
		{"127.0.0.1", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"10.1.2.3", false, true},
		{"172.16.0.1", false, true},
		{"192.168.1.1", false, true},
		{"100.64.0.1", false, true},
		{"fc00::1", false, true},
		{"0.1.2.3", false, false},              // this network
		{"100.100.100.200", false, false},      // Alibaba Cloud metadata, inside 100.64/10
		{"64:ff9b::a9fe:a9fe", false, false},   // NAT64 of 169.254.169.254
		{"64:ff9b:1::a9fe:a9fe", false, false}, // local-use NAT64
		{"2002:a9fe:a9fe::1", false, false},    // 6to4
		{"::a9fe:a9fe", false, false},          // IPv4-compatible
	} {
		a := netip.MustParseAddr(c.addr)
		if got := strict.check(a) == nil; got != c.strict {
			t.Errorf("strict %s allowed=%v, want %v", c.addr, got, c.strict)
		}
		if got := open.check(a) == nil; got != c.opened {
			t.Errorf("permissive %s allowed=%v, want %v", c.addr, got, c.opened)
		}
	}
}

// The check runs on the dialled address: a receiver on loopback is
// refused by the real client, whatever name or URL pointed there.
func TestClientRefusesLoopbackAtConnect(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits++ }))
	defer srv.Close()
	u := fmt.Sprintf("http://localhost:%d", srv.Listener.Addr().(*net.TCPAddr).Port)
	req, _ := http.NewRequest(http.MethodPost, u, nil)
	_, err := newClient(AddressPolicy{}, 1).Do(req)
	if !errors.Is(err, ErrAddress) || hits != 0 {
		t.Fatalf("err %v, hits %d; want ErrAddress and no request", err, hits)
	}
	res := failed(err, 0)
	if res.class != "refused" {
		t.Fatalf("class %q", res.class)
	}
}

func TestClientNeverFollowsRedirects(t *testing.T) {
	followed := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed = true
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	ep := &Endpoint{URL: srv.URL + "/hook", AllowHTTP: true}
	s, _ := newSigner([]Secret{NewSecret()}, false)
	res := post(context.Background(), newClient(AddressPolicy{AllowLoopback: true}, 1), ep, s, event{id: "x", body: []byte("{}")}, time.Second)
	if res.status != http.StatusTemporaryRedirect || followed || res.ok() {
		t.Fatalf("status %d followed %v", res.status, followed)
	}
}

// A receiver streaming an endless answer costs at most maxResponse bytes.
func TestClientBoundsResponseRead(t *testing.T) {
	written := make(chan int, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf, n := make([]byte, 32<<10), 0
		defer func() { written <- n }()
		for range 1 << 12 { // 128 MiB unless the client stops reading
			if _, err := w.Write(buf); err != nil {
				return
			}
			n += len(buf)
		}
	}))
	defer srv.Close()
	ep := &Endpoint{URL: srv.URL, AllowHTTP: true}
	s, _ := newSigner([]Secret{NewSecret()}, false)
	res := post(context.Background(), newClient(AddressPolicy{AllowLoopback: true}, 1), ep, s, event{id: "x", body: []byte("{}")}, 10*time.Second)
	if res.status != 200 || res.err != "" {
		t.Fatalf("result %+v", res)
	}
	if n := <-written; n > 32<<20 { // what was read plus socket buffers
		t.Fatalf("the receiver wrote %d bytes: the answer was read to the end", n)
	}
}

func TestFailedHidesURL(t *testing.T) {
	ep := &Endpoint{URL: "http://127.0.0.1:1/hook?key=receiver-credential", AllowHTTP: true}
	s, _ := newSigner([]Secret{NewSecret()}, false)
	res := post(context.Background(), newClient(AddressPolicy{AllowLoopback: true}, 1), ep, s, event{id: "x"}, time.Second)
	if res.ok() || res.err == "" || strings.Contains(res.err, "receiver-credential") {
		t.Fatalf("error %q", res.err)
	}
}

// An endpoint with more workers than the engine's default keeps a
// connection per worker: a second burst dials nothing new.
func TestClientKeepsAConnectionPerWorker(t *testing.T) {
	var dials atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	e, err := New(nil, Options{Stream: "CHATWOOT", Prefix: "chatwoot", Concurrency: 2, Addresses: AddressPolicy{AllowLoopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.client.CloseIdleConnections()
	u, _ := url.Parse(srv.URL)
	s, _ := newSigner([]Secret{NewSecret()}, false)
	const workers = 16
	for range 2 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range workers {
			wg.Go(func() {
				<-start
				if res := postTo(context.Background(), e.client, u, s, event{id: "x", body: []byte("{}")}, 5*time.Second); !res.ok() {
					t.Error(res.errorText())
				}
			})
		}
		close(start)
		wg.Wait()
	}
	if n := dials.Load(); n > workers {
		t.Fatalf("%d connections for %d workers", n, workers)
	}
}
