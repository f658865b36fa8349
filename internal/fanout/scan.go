package fanout

import (
	"bytes"
	"encoding/json"
	"errors"
)

// The scanner walks a message object once and captures only the values
// routing, filtering and dedup need, as sub-slices of the input: no maps,
// no reflection, no allocation. It descends only into the objects listed in
// the field tree below and skips everything else (arrays included). It is
// not a validator: the cable client has already decoded the frame.

// slot names one captured value.
type slot int8

const (
	slotEvent          slot = iota // event
	slotAccount                    // data.account_id
	slotInbox                      // data.inbox_id
	slotConversationID             // data.conversation_id (messages)
	slotID                         // data.id (message id / conversation display_id)
	slotUpdatedAt                  // data.updated_at
	slotTimestamp                  // data.timestamp
	slotMessageType                // data.message_type
	slotPrivate                    // data.is_private (typing)
	slotStatus                     // data.status
	slotSenderType                 // data.sender_type ("Contact", "User", ...)
	slotSenderID                   // data.sender_id
	slotCIContact                  // data.contact_inbox.contact_id
	slotCIInbox                    // data.contact_inbox.inbox_id
	slotMetaSender                 // data.meta.sender.id
	slotSenderObjID                // data.sender.id
	slotSenderObjType              // data.sender.type ("contact", "user", ...)
	slotConvObjID                  // data.conversation.id (typing)
	slotConvObjInbox               // data.conversation.inbox_id
	slotConvObjStatus              // data.conversation.status
	slotConvCIContact              // data.conversation.contact_inbox.contact_id
	slotConvMetaSender             // data.conversation.meta.sender.id
	slotEchoID                     // data.echo_id (a contact's own message, echoed)
	slotMsgPrivate                 // data.private (a message that is a private note)
	numSlots
	noSlot slot = -1
)

// Value kinds.
const (
	kindAbsent  = 0
	kindString  = 's' // raw holds the content between the quotes, no escapes
	kindEscaped = 'e' // string content containing backslash escapes
	kindNumber  = 'n'
	kindBool    = 'b'
	kindNull    = 'z'
	kindNested  = 'o' // object or array where a scalar was expected
)

type value struct {
	raw  []byte
	kind byte
}

// present reports whether the value carries something other than null.
func (v value) present() bool { return v.kind != kindAbsent && v.kind != kindNull }

// text returns the value as text: string content (unescaped if needed) or
// the literal. Only escaped strings allocate.
func (v value) text() []byte {
	if v.kind != kindEscaped {
		return v.raw
	}
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, v.raw...), '"'), &s); err != nil {
		return nil
	}
	return []byte(s)
}

type fields [numSlots]value

// node is the field tree as written below; compile turns it into tables.
type node map[string]entry

type entry struct {
	slot  slot
	child node
}

func leaf(s slot) entry      { return entry{slot: s} }
func sub(n node) entry       { return entry{slot: noSlot, child: n} }
func senderNode(s slot) node { return node{"id": leaf(s)} }

// keyTable finds a key of one object level by length first: every key of a
// message is looked up, most of them are not wanted, and comparing a few
// strings of equal length is cheaper than hashing each key.
type keyTable struct {
	byLen [][]tableEntry // indexed by key length
}

type tableEntry struct {
	key   string
	slot  slot
	child *keyTable
}

func compile(n node) *keyTable {
	t := &keyTable{}
	for k, e := range n {
		for len(t.byLen) <= len(k) {
			t.byLen = append(t.byLen, nil)
		}
		te := tableEntry{key: k, slot: e.slot}
		if e.child != nil {
			te.child = compile(e.child)
		}
		t.byLen[len(k)] = append(t.byLen[len(k)], te)
	}
	return t
}

// find returns the entry for key, or nil.
func (t *keyTable) find(key []byte) *tableEntry {
	if len(key) >= len(t.byLen) {
		return nil
	}
	bucket := t.byLen[len(key)]
	for i := range bucket {
		if bucket[i].key == string(key) {
			return &bucket[i]
		}
	}
	return nil
}

var rootTable = compile(rootNode)

var rootNode = node{
	"event": leaf(slotEvent),
	"data": sub(node{
		"account_id":      leaf(slotAccount),
		"inbox_id":        leaf(slotInbox),
		"conversation_id": leaf(slotConversationID),
		"id":              leaf(slotID),
		"updated_at":      leaf(slotUpdatedAt),
		"timestamp":       leaf(slotTimestamp),
		"message_type":    leaf(slotMessageType),
		"is_private":      leaf(slotPrivate),
		"status":          leaf(slotStatus),
		"sender_type":     leaf(slotSenderType),
		"sender_id":       leaf(slotSenderID),
		"echo_id":         leaf(slotEchoID),
		"private":         leaf(slotMsgPrivate),
		"contact_inbox":   sub(node{"contact_id": leaf(slotCIContact), "inbox_id": leaf(slotCIInbox)}),
		"meta":            sub(node{"sender": sub(senderNode(slotMetaSender))}),
		"sender":          sub(node{"id": leaf(slotSenderObjID), "type": leaf(slotSenderObjType)}),
		"conversation": sub(node{
			"id":            leaf(slotConvObjID),
			"inbox_id":      leaf(slotConvObjInbox),
			"status":        leaf(slotConvObjStatus),
			"contact_inbox": sub(node{"contact_id": leaf(slotConvCIContact)}),
			"meta":          sub(node{"sender": sub(senderNode(slotConvMetaSender))}),
		}),
	}),
}

// Scanner errors.
var (
	errNotObject = errors.New("fanout: message is not a JSON object")
	errSyntax    = errors.New("fanout: malformed JSON")
)

// scanMessage fills f from the message object b.
func scanMessage(b []byte, f *fields) error {
	s := scanner{b: b}
	s.skipWS()
	if s.peek() != '{' {
		return errNotObject
	}
	if err := s.object(rootTable, f); err != nil {
		return err
	}
	s.skipWS()
	if s.i != len(b) {
		return errSyntax
	}
	return nil
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) skipWS() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// expect consumes c (after optional whitespace).
func (s *scanner) expect(c byte) error {
	s.skipWS()
	if s.peek() != c {
		return errSyntax
	}
	s.i++
	return nil
}

// object scans an object whose '{' is at s.i, capturing the fields of t.
func (s *scanner) object(t *keyTable, f *fields) error {
	s.i++
	s.skipWS()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		if err := s.member(t, f); err != nil {
			return err
		}
		s.skipWS()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// member scans `"key": value`.
func (s *scanner) member(t *keyTable, f *fields) error {
	s.skipWS()
	start, end, esc, err := s.str()
	if err != nil {
		return err
	}
	if err := s.expect(':'); err != nil {
		return err
	}
	s.skipWS()
	key := s.b[start:end]
	if esc {
		key = value{raw: key, kind: kindEscaped}.text() // rare: allocates
	}
	e := t.find(key)
	if e == nil {
		return s.skip()
	}
	if e.child != nil {
		if s.peek() == '{' {
			return s.object(e.child, f)
		}
		return s.skip()
	}
	return s.capture(&f[e.slot])
}

// capture scans one value into v.
func (s *scanner) capture(v *value) error {
	switch c := s.peek(); c {
	case '"':
		start, end, esc, err := s.str()
		if err != nil {
			return err
		}
		v.raw, v.kind = s.b[start:end], kindString
		if esc {
			v.kind = kindEscaped
		}
		return nil
	case '{', '[':
		v.raw, v.kind = nil, kindNested
		return s.skipNested()
	default:
		start := s.i
		k, err := s.literal()
		v.raw, v.kind = s.b[start:s.i], k
		return err
	}
}

// str scans a string at s.i and returns its content span and whether it
// contains escapes.
func (s *scanner) str() (start, end int, esc bool, err error) {
	if s.peek() != '"' {
		return 0, 0, false, errSyntax
	}
	start = s.i + 1
	for i := start; ; {
		j := bytes.IndexByte(s.b[i:], '"')
		if j < 0 {
			return 0, 0, false, errSyntax
		}
		q := i + j
		k := q
		for k > start && s.b[k-1] == '\\' {
			k--
		}
		if (q-k)%2 == 0 {
			s.i = q + 1
			return start, q, esc || bytes.IndexByte(s.b[start:q], '\\') >= 0, nil
		}
		esc = true
		i = q + 1
	}
}

// skip scans over any value.
func (s *scanner) skip() error {
	switch s.peek() {
	case '"':
		_, _, _, err := s.str()
		return err
	case '{', '[':
		return s.skipNested()
	default:
		_, err := s.literal()
		return err
	}
}

// skipNested skips an object or array without recursion.
func (s *scanner) skipNested() error {
	depth := 0
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '"':
			if _, _, _, err := s.str(); err != nil {
				return err
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.i++
				return nil
			}
		}
		s.i++
	}
	return errSyntax
}

// literal scans a number, true, false or null.
func (s *scanner) literal() (byte, error) {
	start := s.i
	for s.i < len(s.b) && isLiteralByte(s.b[s.i]) {
		s.i++
	}
	switch lit := s.b[start:s.i]; {
	case len(lit) == 0:
		return kindAbsent, errSyntax
	case string(lit) == "true" || string(lit) == "false":
		return kindBool, nil
	case string(lit) == "null":
		return kindNull, nil
	case lit[0] == '-' || (lit[0] >= '0' && lit[0] <= '9'):
		return kindNumber, nil
	}
	return kindAbsent, errSyntax
}

func isLiteralByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '+' || c == '.'
}
