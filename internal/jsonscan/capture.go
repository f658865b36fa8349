package jsonscan

import (
	"fmt"
	"math"
)

// MaxFields is how many values one Table can capture: the fan-out's
// routing fields. Fields travel with every broadcast delivered, so they
// are kept small.
const MaxFields = 24

// Kind is the kind of a captured value.
type Kind uint8

// Value kinds.
const (
	Absent  Kind = 0
	String  Kind = 's' // the span is the content between the quotes, without escapes
	Escaped Kind = 'e' // string content holding backslash escapes
	Number  Kind = 'n'
	Bool    Kind = 'b'
	Null    Kind = 'z'
	Nested  Kind = 'o' // an object or array
)

// Field is one captured value: its span, relative to the first byte of
// the value Capture scanned, and its kind.
type Field struct {
	Start, End uint32
	Kind       Kind
}

// Fields are the values one Table captured from one JSON value. Their
// offsets are relative to that value's first byte, so they hold for any
// copy of the value's bytes.
type Fields struct {
	table *Table // nil: nothing captured
	spans [MaxFields][2]uint32
	kinds [MaxFields]Kind
}

// Of reports whether f holds what t captured.
func (f *Fields) Of(t *Table) bool { return t != nil && f.table == t }

// Get returns the value of slot i (Absent if the value had none).
func (f *Fields) Get(i int) Field {
	return Field{Start: f.spans[i][0], End: f.spans[i][1], Kind: f.kinds[i]}
}

// set records the value of slot i, at [start, end) of the scanned buffer
// whose value began at base.
func (f *Fields) set(i, base, start, end int, k Kind) {
	f.spans[i] = [2]uint32{uint32(start - base), uint32(end - base)}
	f.kinds[i] = k
}

// Node names the values to capture in one object: a key either captures
// its value into a slot (Leaf) or, when its value is an object, names the
// values to capture there (Object). Keys are compared unescaped.
type Node map[string]Entry

// Entry is what a Node does with one key.
type Entry struct {
	slot  int
	child Node
}

// Leaf captures the value into slot, below MaxFields.
func Leaf(slot int) Entry { return Entry{slot: slot} }

// Object descends into the value, when it is an object.
func Object(n Node) Entry { return Entry{slot: -1, child: n} }

// Table is a compiled Node. Every key of a scanned object is looked up and
// most are not wanted: the table finds a key by its length first, since
// comparing a few strings of equal length is cheaper than hashing each key.
type Table struct {
	byLen [][]tableEntry // indexed by key length
}

type tableEntry struct {
	key   string
	slot  int
	child *Table
}

// Compile builds the Table of n. A slot outside [0, MaxFields) is a
// programming error: it panics.
func Compile(n Node) *Table {
	t := &Table{}
	for k, e := range n {
		if e.child == nil && (e.slot < 0 || e.slot >= MaxFields) {
			panic(fmt.Sprintf("jsonscan: slot %d of %q outside [0, %d)", e.slot, k, MaxFields))
		}
		for len(t.byLen) <= len(k) {
			t.byLen = append(t.byLen, nil)
		}
		te := tableEntry{key: k, slot: e.slot}
		if e.child != nil {
			te.child = Compile(e.child)
		}
		t.byLen[len(k)] = append(t.byLen[len(k)], te)
	}
	return t
}

// find returns the entry for a key's content, or nil (always, in the nil
// Table).
func (t *Table) find(key []byte, esc bool) *tableEntry {
	if t == nil {
		return nil
	}
	if esc && len(key) < 6*len(t.byLen) {
		key = Unescape(key) // rare: allocates
	}
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

// Capture moves past one value, like Value, and when it is an object
// captures the values t names into f (which it resets first): offsets are
// relative to the value's first byte. It descends only into the objects t
// names and captures a repeated key's last value.
func (s *Scanner) Capture(t *Table, f *Fields) bool {
	*f = Fields{table: t}
	if s.Peek() != '{' || len(s.b)-s.i > math.MaxUint32 {
		return s.value(0)
	}
	return s.captureObject(t, f, s.i, 1)
}

func (s *Scanner) captureObject(t *Table, f *Fields, base, depth int) bool {
	s.i++ // {
	s.Space()
	if s.Consume('}') {
		return true
	}
	for {
		s.Space()
		if t == nil { // moving past: no lookup
			if _, _, _, ok := s.Str(); !ok || !s.colon() || !s.value(depth) {
				return false
			}
		} else if !s.captureMember(t, f, base, depth) {
			return false
		}
		if more, ok := s.More('}'); !more {
			return ok
		}
	}
}

// captureMember scans `"key": value`, capturing what t names.
func (s *Scanner) captureMember(t *Table, f *Fields, base, depth int) bool {
	key, esc, ok := s.Key()
	if !ok {
		return false
	}
	e := t.find(key, esc)
	switch {
	case e == nil:
		return s.value(depth)
	case e.child == nil:
		return s.captureValue(f, e.slot, base, depth)
	case s.Peek() == '{' && depth <= MaxDepth:
		return s.captureObject(e.child, f, base, depth+1)
	}
	return s.value(depth)
}

// captureValue scans one value into slot of f.
func (s *Scanner) captureValue(f *Fields, slot, base, depth int) bool {
	start := s.i
	kind := Number
	switch s.Peek() {
	case '"':
		cs, ce, esc, ok := s.Str()
		if !ok {
			return false
		}
		kind = String
		if esc {
			kind = Escaped
		}
		f.set(slot, base, cs, ce, kind)
		return true
	case '{', '[':
		kind = Nested
	case 't', 'f':
		kind = Bool
	case 'n':
		kind = Null
	}
	if !s.value(depth) {
		return false
	}
	f.set(slot, base, start, s.i, kind)
	return true
}
