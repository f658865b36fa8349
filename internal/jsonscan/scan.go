package jsonscan

import (
	"encoding/binary"
	"encoding/json"
)

// MaxDepth bounds nesting so hostile input cannot exhaust the stack.
const MaxDepth = 64

// Scanner is a strict, allocation-free JSON reader over one buffer: it
// validates a value's structure and moves past it, so callers can keep raw
// slices of the buffer.
type Scanner struct {
	b []byte
	i int
}

// At returns a scanner of b at position i.
func At(b []byte, i int) Scanner { return Scanner{b: b, i: i} }

// Pos is the position of the next byte to read.
func (s *Scanner) Pos() int { return s.i }

// Done reports whether everything was read.
func (s *Scanner) Done() bool { return s.i >= len(s.b) }

// Peek returns the next byte, or 0 at the end.
func (s *Scanner) Peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// Space moves past white space.
func (s *Scanner) Space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// Consume moves past c if it is the next byte.
func (s *Scanner) Consume(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// Str scans the string at the position and returns the span of its
// content (between the quotes, still escaped) and whether it holds
// escapes.
func (s *Scanner) Str() (start, end int, esc, ok bool) {
	if !s.Consume('"') {
		return 0, 0, false, false
	}
	start = s.i
	for s.i < len(s.b) {
		s.i += plainRun(s.b[s.i:])
		if s.i >= len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return start, s.i - 1, esc, true
		case c == '\\':
			if !s.escape() {
				return 0, 0, false, false
			}
			esc = true
		case c < 0x20:
			return 0, 0, false, false
		default:
			s.i++
		}
	}
	return 0, 0, false, false
}

// Word-at-a-time scanning of string content: a string's bytes need
// attention only at '"', '\\' and control characters, and most of a
// broadcast is long runs of plain text.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plainRun returns how many leading bytes of b are plain string content.
func plainRun(b []byte) int {
	n := 0
	for ; len(b)-n >= 8; n += 8 {
		if special(binary.LittleEndian.Uint64(b[n:])) {
			break
		}
	}
	for n < len(b) && b[n] >= 0x20 && b[n] != '"' && b[n] != '\\' {
		n++
	}
	return n
}

// special reports whether any byte of w is '"', '\\' or below 0x20. Each
// test is exact about whether such a byte exists (not which one it is).
func special(w uint64) bool {
	q := w ^ (ones * '"')
	bs := w ^ (ones * '\\')
	return ((q-ones)&^q|(bs-ones)&^bs|(w-ones*0x20)&^w)&highs != 0
}

func (s *Scanner) escape() bool {
	s.i++ // backslash
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i++
		return true
	case 'u':
		if s.i+4 >= len(s.b) {
			return false
		}
		for _, h := range s.b[s.i+1 : s.i+5] {
			if !isHex(h) {
				return false
			}
		}
		s.i += 5
		return true
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Unescape returns the text of string content that holds escapes. It
// allocates: callers use it on the rare content Str reports escaped.
func Unescape(content []byte) []byte {
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, content...), '"'), &s); err != nil {
		return nil
	}
	return []byte(s)
}

// Value moves past one JSON value.
func (s *Scanner) Value() bool { return s.value(0) }

func (s *Scanner) value(depth int) bool {
	if depth > MaxDepth || s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, _, _, ok := s.Str()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

// object moves past an object: a capture without a table.
func (s *Scanner) object(depth int) bool { return s.captureObject(nil, nil, 0, depth) }

func (s *Scanner) array(depth int) bool {
	s.i++ // [
	s.Space()
	if s.Consume(']') {
		return true
	}
	for {
		s.Space()
		if !s.value(depth) {
			return false
		}
		if more, ok := s.More(']'); !more {
			return ok
		}
	}
}

// Key scans an object member's key and its colon, up to the value, and
// returns the key's content (still escaped) and whether it holds escapes.
func (s *Scanner) Key() (key []byte, esc, ok bool) {
	start, end, esc, ok := s.Str()
	if !ok || !s.colon() {
		return nil, false, false
	}
	return s.b[start:end], esc, true
}

// colon moves past the colon between a key and its value.
func (s *Scanner) colon() bool {
	s.Space()
	ok := s.Consume(':')
	s.Space()
	return ok
}

// More moves past what follows a member or an element: another one
// follows after a comma (more), or closing ends the object or array (ok);
// anything else is malformed.
func (s *Scanner) More(closing byte) (more, ok bool) {
	s.Space()
	if s.i < len(s.b) {
		if c := s.b[s.i]; c == ',' || c == closing {
			s.i++
			return c == ',', true
		}
	}
	return false, false
}

func (s *Scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// number follows the JSON grammar: -?int frac? exp?
func (s *Scanner) number() bool {
	s.Consume('-')
	if s.Consume('0') {
		// no leading zeros
	} else if !s.digits() {
		return false
	}
	if s.Consume('.') && !s.digits() {
		return false
	}
	if s.Consume('e') || s.Consume('E') {
		if !s.Consume('+') {
			s.Consume('-')
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

func (s *Scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
