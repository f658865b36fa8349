package fanout

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/relayhq/relay/internal/cable"
)

// recOwner records what the fan-out reports to a record's owner.
type recOwner struct {
	mu        sync.Mutex
	published []string
	lost      int
	learned   int
}

func (o *recOwner) State(*Sub, cable.StateChange[*Sub]) {}
func (o *recOwner) Verify(context.Context, *Sub) (cable.Verdict, error) {
	return cable.VerdictUnknown, nil
}
func (o *recOwner) Published(s *Sub, r Route) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.published = append(o.published, s.ID+":"+r.MessageID)
}
func (o *recOwner) Lost(*Sub) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lost++
}
func (o *recOwner) Learned(*Sub) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.learned++
}

func (o *recOwner) snapshot() (string, int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprint(o.published), o.lost, o.learned
}

// A delivery from the pool reaches the record's owner with no lookup: the
// record learns the event's ids once, and hears of the event once NATS
// holds it.
func TestDeliverReportsToOwner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		p.manual = true
		f := newTestFanout(t, p, Options{})
		o := &recOwner{}
		s := NewSub("a", o, Hints{})
		f.Deliver(cable.Delivery[*Sub]{ID: "a", Meta: s, Message: msgCreated(7), ReceivedAt: time.Unix(100, 0)})
		synctest.Wait()
		if pub, _, learned := o.snapshot(); pub != "[]" || learned != 1 {
			t.Fatalf("before the ack: published %s, learned %d", pub, learned)
		}
		if h := s.Hints(); h != (Hints{AccountID: "1", InboxID: "2"}) {
			t.Fatalf("hints %+v", h)
		}
		if !s.LastActivity().Equal(time.Unix(100, 0)) {
			t.Fatalf("activity %v", s.LastActivity())
		}
		p.resolve(1, nil)
		synctest.Wait()
		f.Deliver(cable.Delivery[*Sub]{ID: "a", Meta: s, Message: msgCreated(8), ReceivedAt: time.Unix(101, 0)})
		synctest.Wait()
		p.resolve(1, nil)
		synctest.Wait()
		if pub, _, learned := o.snapshot(); pub != "[a:7 a:8]" || learned != 1 {
			t.Fatalf("published %s, learned %d (ids are learned once)", pub, learned)
		}
		_ = closeNow(f)
	})
}

// A live event dropped for lack of room is reported to the owner as lost.
func TestDeliverReportsLostToOwner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(false)
		f := newTestFanout(t, p, Options{BufferEvents: 1})
		o := &recOwner{}
		s := NewSub("a", o, Hints{})
		for i := range 3 {
			f.Deliver(cable.Delivery[*Sub]{ID: "a", Meta: s, Message: msgCreated(i + 1)})
		}
		if _, lost, _ := o.snapshot(); lost == 0 {
			t.Fatal("no loss reported for events the buffer refused")
		}
		_ = closeNow(f)
	})
}

// Observe counts message and conversation events as activity, never
// typing, presence or replays, and keeps ids the registration set.
func TestSubObserve(t *testing.T) {
	s := NewSub("a", &recOwner{}, Hints{AccountID: "1"})
	at := time.Unix(50, 0)
	if s.Observe(&Route{Kind: KindPresence, AccountID: "9", InboxID: Unknown, ContactID: Unknown}, at) || !s.LastActivity().IsZero() {
		t.Fatalf("presence: hints %+v, activity %v", s.Hints(), s.LastActivity())
	}
	if s.Observe(&Route{Kind: KindMessage, Replayed: true, InboxID: "3"}, at) || !s.LastActivity().IsZero() {
		t.Fatal("a replay taught the record")
	}
	if !s.Observe(&Route{Kind: KindConversation, AccountID: "9", InboxID: "3", ContactID: "42"}, at) {
		t.Fatal("new ids not learned")
	}
	if h := s.Hints(); h != (Hints{AccountID: "1", InboxID: "3", ContactID: "42"}) || !s.LastActivity().Equal(at) {
		t.Fatalf("hints %+v, activity %v", h, s.LastActivity())
	}
	s.SetActivity(at.Add(-time.Second))
	if !s.LastActivity().Equal(at) {
		t.Fatal("activity moved back")
	}
}

// Route fields are substrings of an event's routing string; what the
// record keeps for the subscription's life must not point into it.
func TestSubObserveKeepsNoEventMemory(t *testing.T) {
	s := NewSub("a", &recOwner{}, Hints{})
	event := strings.Repeat("x", 200) + "17|23|4242"
	s.Observe(&Route{Kind: KindMessage, AccountID: event[200:202], InboxID: event[203:205], ContactID: event[206:210]}, time.Now())
	h := s.Hints()
	lo := uintptr(unsafe.Pointer(unsafe.StringData(event)))
	hi := lo + uintptr(len(event))
	for name, v := range map[string]string{"account": h.AccountID, "inbox": h.InboxID, "contact": h.ContactID} {
		if at := uintptr(unsafe.Pointer(unsafe.StringData(v))); v == "" || (at >= lo && at < hi) {
			t.Errorf("learned %s id %q points into the event string", name, v)
		}
	}
}

// Registering ids a record has already (or none) allocates nothing: the
// registry sets them on every registration and restart.
func TestSetHintsUnchangedAllocatesNothing(t *testing.T) {
	s := NewSub("s", nil, Hints{})
	if n := testing.AllocsPerRun(10, func() { s.SetHints(Hints{}) }); n != 0 {
		t.Errorf("empty hints: %v allocations", n)
	}
	s.SetHints(Hints{AccountID: "1", InboxID: "2"})
	if n := testing.AllocsPerRun(10, func() { s.SetHints(Hints{AccountID: "1"}) }); n != 0 {
		t.Errorf("same hints: %v allocations", n)
	}
	if h := s.Hints(); h != (Hints{AccountID: "1", InboxID: "2"}) {
		t.Errorf("hints = %+v", h)
	}
}
