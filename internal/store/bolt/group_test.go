package bolt

import (
	"errors"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"go.etcd.io/bbolt"
)

// Writes that arrive while a commit is under way share the next commit,
// and one failing write fails alone.
func TestGroupCommit(t *testing.T) {
	db, g := openGroup(t)
	bucket := []byte("b")

	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- g.do(func(tx *bbolt.Tx) error {
			<-release // hold the first commit open while the others queue
			_, err := tx.CreateBucketIfNotExists(bucket)
			return err
		})
	}()
	waitRunning(g)
	const n = 10
	boom := errors.New("boom")
	var mu sync.Mutex
	txs := map[*bbolt.Tx]bool{}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = g.do(func(tx *bbolt.Tx) error {
				mu.Lock()
				txs[tx] = true
				mu.Unlock()
				if i == 3 {
					return boom
				}
				return tx.Bucket(bucket).Put([]byte{byte(i)}, []byte("v"))
			})
		})
	}
	for queued := 0; queued < n; runtime.Gosched() {
		_, queued = g.q.State()
	}
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if (i == 3) != errors.Is(err, boom) || (i != 3 && err != nil) {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	// One shared transaction failed on write 3, then each ran alone.
	if len(txs) != 1+n {
		t.Fatalf("%d transactions, want the shared one and %d alone", len(txs), n)
	}
	err := db.View(func(tx *bbolt.Tx) error {
		if k := tx.Bucket(bucket).Stats().KeyN; k != n-1 {
			t.Errorf("%d keys stored, want %d", k, n-1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Without a failure the queued writes share one transaction.
	clear(txs)
	release = make(chan struct{})
	go func() { first <- g.do(func(*bbolt.Tx) error { <-release; return nil }) }()
	waitRunning(g)
	for i := range n {
		wg.Go(func() {
			errs[i] = g.do(func(tx *bbolt.Tx) error {
				mu.Lock()
				txs[tx] = true
				mu.Unlock()
				return nil
			})
		})
	}
	for queued := 0; queued < n; runtime.Gosched() {
		_, queued = g.q.State()
	}
	close(release)
	wg.Wait()
	<-first
	if len(txs) != 1 {
		t.Fatalf("%d transactions for %d queued writes, want 1", len(txs), n)
	}
}

// waitRunning returns once a commit is under way.
func waitRunning(g *groupCommit) {
	for running := false; !running; runtime.Gosched() {
		running, _ = g.q.State()
	}
}

// A write that panics fails with an error, and later writes still commit.
func TestGroupCommitSurvivesPanic(t *testing.T) {
	_, g := openGroup(t)
	if err := g.do(func(*bbolt.Tx) error { panic("boom") }); !errors.Is(err, errPanicked) {
		t.Fatalf("panicking write: %v", err)
	}
	if err := g.do(func(tx *bbolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("b")); return err }); err != nil {
		t.Fatalf("write after a panic: %v", err)
	}
}

// The leader returns once its own write is committed, while writes queued
// behind it are still being committed.
func TestGroupCommitLeaderReturnsAfterItsBatch(t *testing.T) {
	_, g := openGroup(t)
	release, hold := make(chan struct{}), make(chan struct{})
	leader := make(chan error, 1)
	go func() { leader <- g.do(func(*bbolt.Tx) error { <-release; return nil }) }()
	waitRunning(g)
	follower := make(chan error, 1)
	go func() { follower <- g.do(func(*bbolt.Tx) error { <-hold; return nil }) }()
	for queued := 0; queued < 1; runtime.Gosched() {
		_, queued = g.q.State()
	}
	close(release)
	if err := <-leader; err != nil { // returns while the follower's commit is held
		t.Fatal(err)
	}
	close(hold)
	if err := <-follower; err != nil {
		t.Fatal(err)
	}
}

// openGroup opens a bbolt file of the test and its group committer.
func openGroup(t *testing.T) (*bbolt.DB, *groupCommit) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, newGroupCommit(db)
}
