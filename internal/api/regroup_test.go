package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
)

// TestRegistrationsGrouped: registrations that arrive while one is being
// stored wait for it, then go to the registry together, in one batch; each
// client gets its own answer.
func TestRegistrationsGrouped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := newFakeRegistry()
		gate := make(chan struct{})
		var once sync.Once
		reg.onBatch = func(context.Context, []Registration) { once.Do(func() { <-gate }) }
		s := newServer(t, Options{Registry: reg, APITokens: []string{apiToken}})
		codes := make([]int, 6)
		ids := make([]string, 6)
		var wg sync.WaitGroup
		post := func(i int) {
			wg.Go(func() {
				rec := serve(s, request("POST", "/v1/subscriptions", fmt.Sprintf(`{"pubsub_token":"tok-%d"}`, i)))
				codes[i], ids[i] = rec.Code, decode[Subscription](t, rec).ID
			})
		}
		post(0)
		synctest.Wait() // the first registration is being stored
		for i := 1; i < 6; i++ {
			post(i)
		}
		synctest.Wait() // the others queued behind it
		close(gate)
		wg.Wait()
		if !slices.Equal(reg.sizes, []int{1, 5}) {
			t.Errorf("batches of %v, want [1 5]", reg.sizes)
		}
		for i := range 6 {
			if codes[i] != http.StatusCreated || ids[i] != fakeID(fmt.Sprintf("tok-%d", i)) {
				t.Errorf("registration %d: %d %s", i, codes[i], ids[i])
			}
		}
	})
}

// TestRegistrationGroupOutlivesClient: a client that goes away while its
// registration is stored does not cancel the others' registrations.
func TestRegistrationGroupOutlivesClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := newFakeRegistry()
		gate := make(chan struct{})
		var batchErr error
		reg.onBatch = func(ctx context.Context, _ []Registration) {
			<-gate
			batchErr = ctx.Err()
		}
		s := newServer(t, Options{Registry: reg, APITokens: []string{apiToken}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int)
		go func() {
			req := request("POST", "/v1/subscriptions", `{"pubsub_token":"tok-gone"}`).WithContext(ctx)
			done <- serve(s, req).Code
		}()
		synctest.Wait() // the registration is being stored
		cancel()
		close(gate)
		<-done
		if batchErr != nil || reg.batches != 1 {
			t.Errorf("%d batches, the batch saw %v", reg.batches, batchErr)
		}
		if regs := reg.registrations(); len(regs) != 1 || regs[0].Token != "tok-gone" {
			t.Errorf("registrations = %v", regs)
		}
	})
}

// TestRegistrationRefusedInGroup: a registration refused in its batch gets
// the registry's error without the batch's index.
func TestRegistrationRefusedInGroup(t *testing.T) {
	s := newServer(t, Options{Registry: newFakeRegistry(), APITokens: []string{apiToken}})
	rec := serve(s, request("POST", "/v1/subscriptions", `{"pubsub_token":"`+refusedToken+`x"}`))
	wantError(t, rec, http.StatusInsufficientStorage, CodeLimit, refusedToken)
	if strings.Contains(rec.Body.String(), "registration 0") {
		t.Errorf("answer names the batch index: %s", rec.Body)
	}
}

// panicRegistry panics in its first RegisterBatch call.
type panicRegistry struct {
	*fakeRegistry
	once sync.Once
}

func (p *panicRegistry) RegisterBatch(ctx context.Context, regs []Registration) ([]BatchResult, error) {
	p.once.Do(func() { panic("registry broke") })
	return p.fakeRegistry.RegisterBatch(ctx, regs)
}

// TestRegistrationPanicReleasesGroup: a batch that panics answers its
// registrations with 500 and leaves the next ones free to run.
func TestRegistrationPanicReleasesGroup(t *testing.T) {
	s := newServer(t, Options{Registry: &panicRegistry{fakeRegistry: newFakeRegistry()}, APITokens: []string{apiToken}})
	wantError(t, serve(s, request("POST", "/v1/subscriptions", `{"pubsub_token":"tok-1"}`)), http.StatusInternalServerError, CodeInternal)
	if rec := serve(s, request("POST", "/v1/subscriptions", `{"pubsub_token":"tok-2"}`)); rec.Code != http.StatusCreated {
		t.Fatalf("after the panic: %d %s", rec.Code, rec.Body)
	}
}
