package fanout

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Header names. Values are validated tokens, a dedup key built from them,
// or a timestamp the relay formats itself.
const (
	HeaderMsgID            = "Nats-Msg-Id"
	HeaderEvent            = "Chatwoot-Event"
	HeaderAccount          = "Chatwoot-Account-Id"
	HeaderInbox            = "Chatwoot-Inbox-Id"
	HeaderContact          = "Chatwoot-Contact-Id"
	HeaderConversation     = "Chatwoot-Conversation-Id"
	HeaderSubscription     = "Relay-Subscription"
	HeaderReceivedAt       = "Relay-Received-At"
	HeaderReplayed         = "Relay-Replayed"
	HeaderVisibility       = "Chatwoot-Visibility"
	receivedAtLayout       = "2006-01-02T15:04:05.000000000Z07:00"
	itemOverhead       int = 512 // bookkeeping bytes charged per buffered event
)

const (
	hMsgID = iota
	hEvent
	hAccount
	hInbox
	hContact
	hConversation
	hSubscription
	hReceivedAt
	hReplayed
	hVisibility
	numHeaders
)

var headerNames = [numHeaders]string{
	HeaderMsgID, HeaderEvent, HeaderAccount, HeaderInbox, HeaderContact,
	HeaderConversation, HeaderSubscription, HeaderReceivedAt, HeaderReplayed, HeaderVisibility,
}

// item is one event waiting for (or in) publication.
type item struct {
	msg  nats.Msg
	hv   [numHeaders]string // backing store for msg.Header values
	key  string             // in-process dedup key admitted for this event
	kind Kind
	// borrowed: msg.Data is the caller's buffer (Event.Borrowed) until
	// enqueue copies it.
	borrowed bool
	size     int64
	enq      time.Time
	ack      Ack
	// attempts counts failed publications the server answered with an error.
	attempts int
	// sub, subID and route are kept for Options.Published and the
	// record's owner.
	sub   *Sub
	subID string
	route Route
	done  func(error) // Event.Done
	// waiters are duplicates that arrived while this event was in flight;
	// they share its outcome. Guarded by Fanout.pendMu.
	waiters []waiter
}

// waiter is a duplicate of an event still in flight. Reporting it as
// published at once would let its subscription's cursor pass an event NATS
// may never get (the relay could die first, or the event be dropped).
type waiter struct {
	sub   *Sub
	subID string
	route Route
	done  func(error)
	live  bool
}

// items recycles the items Handle published itself (core NATS): taken and
// given back on the same goroutine, so the per-P cache serves them, with
// their header map.
var items = sync.Pool{New: func() any { return new(item) }}

func newItem(k Kind) *item {
	it := items.Get().(*item)
	it.kind = k
	return it
}

// recycle gives an item nothing refers to any more back to items, keeping
// its header map (emptied) for the next event.
func recycle(it *item) {
	h := it.msg.Header
	clear(h)
	*it = item{}
	it.msg.Header = h
	items.Put(it)
}

// finish reports the event's fate to its Event.Done.
func (it *item) finish(outcome error) {
	if it.done != nil {
		it.done(outcome)
		it.done = nil
	}
}

// setHeaders builds msg.Header from hv; empty values are left out.
func (it *item) setHeaders() {
	n := 0
	for _, v := range it.hv {
		if v != "" {
			n++
		}
	}
	h := it.msg.Header
	if h == nil {
		h = make(nats.Header, n)
	}
	for i, v := range it.hv {
		if v != "" {
			h[headerNames[i]] = it.hv[i : i+1 : i+1]
		}
	}
	it.msg.Header = h
}

// builder turns an Event into a routed, redacted, ready-to-publish item.
type builder struct {
	prefix  string
	forward secrets // what build keeps in bodies; the rest is blanked
	instant time.Duration
}

// span is a [start, end) range in the combined string of one event.
type span [2]int

func (s span) of(str string) string { return str[s[0]:s[1]] }

// layout records where each part sits in the combined string.
type layout struct {
	subject, account, inbox, contact, conv, event span
	key, msgID, messageID, status, receivedAt     span
}

// build routes ev and prepares its item, by the fields the cable reader
// captured or else by scanning the message. ev.Message is redacted in place
// (all but b.forward), after it was read: nothing routing needs is blanked. All
// strings of the result share one allocation.
func (b *builder) build(ev *Event) (*item, Route, error) {
	var f fields
	if err := f.read(ev); err != nil {
		return nil, Route{}, err
	}
	var r route
	if err := resolveRoute(&f, ev.Hints, &r); err != nil {
		return nil, Route{}, err
	}
	if ev.Sub != nil && !r.contact.set() && r.conv.set() {
		if err := findRoute(ev, &f, &r); err != nil {
			return nil, Route{}, err
		}
	}
	if ev.SubID != "" && !headerSafe(ev.SubID) {
		return nil, Route{}, &RoutingError{Field: "subscription id"}
	}
	var arr [384]byte
	buf, l := b.compose(arr[:0], ev, &r)
	s := string(buf)
	rt := routeOf(s, &l, &r, ev.Replayed)
	body := ev.Message
	if blank := allSecrets &^ b.forward; blank != 0 {
		body = redact(body, blank)
	}
	it := newItem(r.kind)
	it.msg.Subject = l.subject.of(s)
	it.msg.Data = body
	it.fillHeaders(s, &l, ev, &r)
	it.size = int64(len(body) + len(s) + itemOverhead)
	return it, rt, nil
}

// findRoute completes the route of an event that names a conversation but
// not its contact from what the subscription's owner knows (an account
// feed's earlier events), on the fields already scanned.
func findRoute(ev *Event, f *fields, r *route) error {
	rf, ok := ev.Sub.Owner.(RouteFinder)
	if !ok {
		return nil
	}
	inbox, contact, ok := rf.FindRoute(ev.Sub, string(r.account.appendTo(nil)), string(r.conv.appendTo(nil)))
	if !ok {
		return nil
	}
	h := ev.Hints
	fill(&h.InboxID, inbox)
	fill(&h.ContactID, contact)
	return resolveRoute(f, h, r)
}

// compose writes subject, dedup key, Nats-Msg-Id, message id, status and
// receive time into buf and records their positions.
func (b *builder) compose(buf []byte, ev *Event, r *route) ([]byte, layout) {
	var l layout
	buf = append(append(buf, b.prefix...), '.')
	buf, l.account = appendTok(buf, r.account)
	buf = append(buf, '.')
	buf, l.inbox = appendTok(buf, r.inbox)
	buf = append(buf, '.')
	buf, l.contact = appendTok(buf, r.contact)
	buf = append(buf, '.')
	buf, l.conv = appendTok(buf, r.conv)
	buf = append(buf, '.')
	l.event = span{len(buf), len(buf) + len(r.event)}
	buf = append(buf, r.event...)
	l.subject = span{0, len(buf)}

	l.key[0] = len(buf)
	if r.kind.instant() {
		buf = appendInstantKey(buf, r, bodyHash(ev.Message), ev.SubID)
		l.key[1] = len(buf)
		buf = appendBucket(buf, ev.ReceivedAt.UnixNano(), int64(b.instant))
	} else {
		buf = appendDedupKey(buf, r)
		l.key[1] = len(buf)
	}
	l.msgID = span{l.key[0], len(buf)}
	l.messageID = span{len(buf), len(buf) + len(r.msgID)}
	buf = append(buf, r.msgID...)
	l.status = span{len(buf), len(buf) + len(r.status)}
	buf = append(buf, r.status...)
	l.receivedAt[0] = len(buf)
	buf = ev.ReceivedAt.UTC().AppendFormat(buf, receivedAtLayout)
	l.receivedAt[1] = len(buf)
	return buf, l
}

// appendTok appends t and returns where it landed. (A direct call, not a
// method value: through a func value the buffer would escape, and build's
// stack array with it, one 384-byte allocation per event.)
func appendTok(buf []byte, t tok) ([]byte, span) {
	start := len(buf)
	buf = t.appendTo(buf)
	return buf, span{start, len(buf)}
}

// instant reports whether events of this kind are deduplicated only
// against copies received at the same instant.
func (k Kind) instant() bool {
	return k == KindTyping || k == KindPresence || k == KindOther
}

func routeOf(s string, l *layout, r *route, replayed bool) Route {
	return Route{
		Kind:           r.kind,
		Event:          l.event.of(s),
		AccountID:      l.account.of(s),
		InboxID:        l.inbox.of(s),
		ContactID:      l.contact.of(s),
		ConversationID: l.conv.of(s),
		MessageID:      l.messageID.of(s),
		MessageType:    r.msgType,
		Status:         l.status.of(s),
		Private:        r.private,
		Visibility:     r.visibility,
		EchoID:         string(r.echo),
		DedupKey:       l.key.of(s),
		MsgID:          l.msgID.of(s),
		Replayed:       replayed,
	}
}

func (it *item) fillHeaders(s string, l *layout, ev *Event, r *route) {
	it.hv[hMsgID] = l.msgID.of(s)
	it.hv[hEvent] = l.event.of(s)
	it.hv[hAccount] = l.account.of(s)
	it.hv[hInbox] = l.inbox.of(s)
	it.hv[hContact] = l.contact.of(s)
	it.hv[hConversation] = l.conv.of(s)
	it.hv[hSubscription] = ev.SubID
	it.hv[hReceivedAt] = l.receivedAt.of(s)
	if ev.Replayed {
		it.hv[hReplayed] = "true"
	}
	it.hv[hVisibility] = r.visibility
	it.setHeaders()
}

// Resolve routes one event without publishing it and without modifying
// ev.Message. Catch-up uses it to compute the dedup key of a replay; the
// key of a live event and of its replay are the same when both carry (or
// are given through Hints) the same account id.
func Resolve(ev Event) (Route, error) {
	b := builder{prefix: DefaultPrefix, forward: allSecrets, instant: DefaultInstantWindow}
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = time.Now()
	}
	_, r, err := b.build(&ev)
	return r, err
}
