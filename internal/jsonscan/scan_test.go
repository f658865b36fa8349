package jsonscan

import (
	"math/rand/v2"
	"testing"
)

// naivePlainRun is the byte-at-a-time definition plainRun must match.
func naivePlainRun(b []byte) int {
	for i, c := range b {
		if c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return len(b)
}

func TestPlainRun(t *testing.T) {
	// Every byte value at every position of a 20-byte run of plain text
	// (covers both the word loop and the tail loop).
	for pos := range 20 {
		for c := range 256 {
			b := []byte("abcdefghijklmnopqrst")
			b[pos] = byte(c)
			if got, want := plainRun(b), naivePlainRun(b); got != want {
				t.Fatalf("byte %#x at %d: plainRun = %d, want %d", c, pos, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
			if r.IntN(4) > 0 {
				b[i] = 'a' + byte(r.IntN(26)) // mostly plain, like real payloads
			}
		}
		if got, want := plainRun(b), naivePlainRun(b); got != want {
			t.Fatalf("%q: plainRun = %d, want %d", b, got, want)
		}
	}
}
