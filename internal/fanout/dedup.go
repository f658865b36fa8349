package fanout

import (
	"hash/maphash"
	"sync"
)

// window is the in-process dedup window: a map from key to its slot in a
// fixed ring, evicted in insertion order when an entry has expired or the
// ring is full. Every operation is O(1) (amortized over evictions).
//
// Entries carry their own expiry, so short-lived "instant" keys (typing,
// presence) and long-lived message keys share one ring; an expired entry
// that has not reached the front yet is treated as absent.
//
// The window stores a 128-bit hash of each key, never the key itself: keys
// are substrings of the per-event string built by builder.build, so keeping
// one would keep the whole event string alive until the entry is evicted,
// and the index and ring would be pointer-bearing memory the GC must scan.
// With fixed-size, pointer-free keys the window's memory is independent of
// key length and is allocated noscan.
type window struct {
	seed0, seed1 maphash.Seed // random per window; see wkey
	mu           sync.Mutex
	idx          map[wkey]uint64 // key hash -> sequence number of its slot
	ring         []wslot
	head         uint64 // sequence number of the oldest slot
	tail         uint64 // sequence number of the next slot
}

// wkey is the 128-bit hash of a dedup key: two maphash values of the key
// under independent random seeds. Two distinct keys get the same wkey with
// probability 2^-128, so among n keys held at once a collision occurs with
// probability about n²/2^129: ~1.5e-29 for the default 100,000 keys. (A
// collision would only make the window treat a new event as a duplicate of
// an unrelated one.) The seeds are random per window and never exposed, so
// colliding keys cannot be crafted either.
type wkey struct{ h0, h1 uint64 }

type wslot struct {
	key wkey
	exp int64 // unix nanoseconds
}

// newWindow returns a window holding at most size keys; size <= 0 disables
// deduplication.
func newWindow(size int) *window {
	if size <= 0 {
		return nil
	}
	return &window{
		seed0: maphash.MakeSeed(),
		seed1: maphash.MakeSeed(),
		idx:   make(map[wkey]uint64, size),
		ring:  make([]wslot, size),
	}
}

// hash returns the window's 128-bit hash of key. It reads only the
// immutable seeds, so callers compute it before taking mu.
func (w *window) hash(key string) wkey {
	return wkey{maphash.String(w.seed0, key), maphash.String(w.seed1, key)}
}

// admit records key and reports true, or reports false when key was
// admitted before and has not expired (a duplicate).
func (w *window) admit(key string, now, ttl int64) bool {
	if w == nil || key == "" {
		return true
	}
	k := w.hash(key)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.put(k, now, now+ttl)
}

// load records key as admitted earlier, expiring at exp: how the window is
// restored after a restart. Keys already expired or held are skipped; keys
// must come oldest first, like admissions, so eviction stays in age order.
func (w *window) load(key string, now, exp int64) {
	if w == nil || key == "" || exp <= now {
		return
	}
	k := w.hash(key)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.put(k, now, exp)
}

// put records k until exp unless it is held and not expired, evicting the
// oldest slot when the ring is full, and reports whether it recorded k.
// The caller holds mu.
func (w *window) put(k wkey, now, exp int64) bool {
	w.expire(now)
	if seq, ok := w.idx[k]; ok && w.slot(seq).exp > now {
		return false
	}
	if w.tail-w.head == uint64(len(w.ring)) {
		w.pop()
	}
	*w.slot(w.tail) = wslot{key: k, exp: exp}
	w.idx[k] = w.tail
	w.tail++
	return true
}

// seen reports whether key is in the window and not expired.
func (w *window) seen(key string, now int64) bool {
	if w == nil || key == "" {
		return false // "" is never admitted
	}
	k := w.hash(key)
	w.mu.Lock()
	defer w.mu.Unlock()
	seq, ok := w.idx[k]
	return ok && w.slot(seq).exp > now
}

// forget removes key, so a later copy (say, a catch-up replay) is admitted.
// Used when an admitted event could not be published.
func (w *window) forget(key string) {
	if w == nil || key == "" {
		return
	}
	k := w.hash(key)
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.idx, k)
}

func (w *window) len() int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.idx)
}

func (w *window) slot(seq uint64) *wslot { return &w.ring[seq%uint64(len(w.ring))] }

// expire drops expired entries from the front.
func (w *window) expire(now int64) {
	for w.head != w.tail && w.slot(w.head).exp <= now {
		w.pop()
	}
}

// pop drops the oldest slot; its key leaves the index only if the index
// still points at this slot (the key may have been re-admitted or forgotten).
func (w *window) pop() {
	s := w.slot(w.head)
	if seq, ok := w.idx[s.key]; ok && seq == w.head {
		delete(w.idx, s.key)
	}
	*s = wslot{}
	w.head++
}
