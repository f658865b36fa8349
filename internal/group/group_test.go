package group

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
)

// TestQueue: a lone operation runs at once in its caller; those added while
// a batch runs share the next batches, at most max each, in order.
func TestQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		var mu sync.Mutex
		var batches [][]int
		done := map[int]chan struct{}{}
		var q *Queue[int]
		q = New(3, func(ops []int) {
			if ops[0] == 0 {
				<-gate // hold the first batch while others queue
			}
			mu.Lock()
			batches = append(batches, slices.Clone(ops))
			for _, op := range ops {
				close(done[op])
			}
			mu.Unlock()
		})
		for i := range 9 {
			done[i] = make(chan struct{})
		}
		go q.Add(0)
		synctest.Wait()
		if running, queued := q.State(); !running || queued != 0 {
			t.Fatalf("state %v %d, want running, none queued", running, queued)
		}
		for i := 1; i < 8; i++ {
			q.Add(i) // returns at once: a batch is under way
		}
		if _, queued := q.State(); queued != 7 {
			t.Fatalf("%d queued, want 7", queued)
		}
		close(gate)
		for i := range 8 {
			<-done[i]
		}
		synctest.Wait()
		want := [][]int{{0}, {1, 2, 3}, {4, 5, 6}, {7}}
		if !slices.EqualFunc(batches, want, slices.Equal) {
			t.Errorf("batches %v, want %v", batches, want)
		}
		if running, queued := q.State(); running || queued != 0 {
			t.Errorf("state %v %d after the last batch", running, queued)
		}
		q.Add(8) // the queue is free again: runs in this goroutine, alone
		if last := batches[len(batches)-1]; !slices.Equal(last, []int{8}) {
			t.Errorf("last batch %v, want [8] run before Add returned", last)
		}
	})
}
