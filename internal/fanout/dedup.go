package fanout

import "sync"

// window is the in-process dedup window: a map from key to its slot in a
// fixed ring, evicted in insertion order when an entry has expired or the
// ring is full. Every operation is O(1) (amortized over evictions).
//
// Entries carry their own expiry, so short-lived "instant" keys (typing,
// presence) and long-lived message keys share one ring; an expired entry
// that has not reached the front yet is treated as absent.
type window struct {
	mu   sync.Mutex
	idx  map[string]uint64 // key -> sequence number of its slot
	ring []wslot
	head uint64 // sequence number of the oldest slot
	tail uint64 // sequence number of the next slot
}

type wslot struct {
	key string
	exp int64 // unix nanoseconds
}

// newWindow returns a window holding at most size keys; size <= 0 disables
// deduplication.
func newWindow(size int) *window {
	if size <= 0 {
		return nil
	}
	return &window{idx: make(map[string]uint64, size), ring: make([]wslot, size)}
}

// admit records key and reports true, or reports false when key was
// admitted before and has not expired (a duplicate).
func (w *window) admit(key string, now, ttl int64) bool {
	if w == nil || key == "" {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now)
	if seq, ok := w.idx[key]; ok && w.slot(seq).exp > now {
		return false
	}
	if w.tail-w.head == uint64(len(w.ring)) {
		w.pop()
	}
	*w.slot(w.tail) = wslot{key: key, exp: now + ttl}
	w.idx[key] = w.tail
	w.tail++
	return true
}

// seen reports whether key is in the window and not expired.
func (w *window) seen(key string, now int64) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	seq, ok := w.idx[key]
	return ok && w.slot(seq).exp > now
}

// forget removes key, so a later copy (say, a catch-up replay) is admitted.
// Used when an admitted event could not be published.
func (w *window) forget(key string) {
	if w == nil || key == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.idx, key)
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
