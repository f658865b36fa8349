package bolt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/storetest"
)

func open(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fill writes one live and one soon-expired record of each expiring kind.
func fill(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	steps := []error{
		s.CompleteIdempotency(ctx, "keep", []byte("r"), time.Hour),
		s.CompleteIdempotency(ctx, "drop", []byte("r"), time.Second),
		s.Heartbeat(ctx, "keep", time.Hour),
		s.Heartbeat(ctx, "drop", time.Second),
	}
	_, err := s.AcquireLease(ctx, "keep", "h", time.Hour)
	steps = append(steps, err)
	_, err = s.AcquireLease(ctx, "drop", "h", time.Second)
	steps = append(steps, err)
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
}

// keys returns the keys left in each expiring bucket.
func keys(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketIdempotency, bucketLeases, bucketMembers} {
			out[string(name)] = []string{}
			err := tx.Bucket(name).ForEach(func(k, _ []byte) error {
				out[string(name)] = append(out[string(name)], string(k))
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func wantOnlyKept(t *testing.T, got map[string][]string) {
	t.Helper()
	for bucket, ks := range got {
		if len(ks) != 1 || ks[0] != "keep" {
			t.Errorf("bucket %s holds %v, want [keep]", bucket, ks)
		}
	}
}

func TestSweepDeletesExpired(t *testing.T) {
	clock := storetest.NewClock()
	s := open(t, filepath.Join(t.TempDir(), "relay.db"), Options{Now: clock.Now, SweepInterval: -1})
	fill(t, s)
	if n, err := s.Sweep(t.Context()); err != nil || n != 0 {
		t.Fatalf("Sweep before expiry = %d, %v", n, err)
	}
	clock.Advance(2 * time.Second)
	n, err := s.Sweep(t.Context())
	if err != nil || n != 3 {
		t.Fatalf("Sweep = %d, %v; want 3", n, err)
	}
	wantOnlyKept(t, keys(t, s))
}

// TestSweepLoop runs the background sweep on the bubble's fake clock.
func TestSweepLoop(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		s, err := Open(filepath.Join(dir, "relay.db"), Options{SweepInterval: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fill(t, s)
		time.Sleep(30 * time.Second) // records expired, sweep not yet due
		synctest.Wait()
		if got := keys(t, s); len(got[string(bucketLeases)]) != 2 {
			t.Fatalf("swept before the interval: %v", got)
		}
		time.Sleep(31 * time.Second)
		synctest.Wait()
		wantOnlyKept(t, keys(t, s))
	})
}

func TestCloseStopsSweep(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		s, err := Open(filepath.Join(dir, "relay.db"), Options{SweepInterval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// synctest.Test fails if the sweep goroutine outlives the bubble.
	})
}

func TestFileModeAndDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "data", "relay.db")
	open(t, path, Options{SweepInterval: -1})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("file mode %o, want 600 (it holds tokens)", mode)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if mode := di.Mode().Perm(); mode != 0o700 {
		t.Fatalf("dir mode %o, want 700", mode)
	}
}

func TestSecondOpenFailsWhileLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	open(t, path, Options{SweepInterval: -1})
	s, err := Open(path, Options{SweepInterval: -1, LockTimeout: 50 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("a second Open of a locked file succeeded")
	}
	if !errors.Is(err, bbolt.ErrTimeout) {
		t.Fatalf("err = %v, want a lock timeout", err)
	}
}

func TestRejectsOtherVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	s := open(t, path, Options{SweepInterval: -1})
	err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, []byte("99")) })
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s2, err := Open(path, Options{SweepInterval: -1}); !errors.Is(err, ErrVersion) {
		if err == nil {
			s2.Close()
		}
		t.Fatalf("Open of version 99 = %v, want ErrVersion", err)
	}
}

func TestCorruptRecordsDoNotLeakOrPanic(t *testing.T) {
	clock := storetest.NewClock()
	s := open(t, filepath.Join(t.TempDir(), "relay.db"), Options{Now: clock.Now, SweepInterval: -1})
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return errors.Join(
			tx.Bucket(bucketSubscriptions).Put([]byte("bad"), []byte(`{"token":"secret-tok"`)),
			tx.Bucket(bucketIdempotency).Put([]byte("bad"), []byte("x")),
			tx.Bucket(bucketLeases).Put([]byte("bad"), []byte("{")),
		)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.GetSubscription(t.Context(), "bad")
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get corrupt = %v", err)
	}
	if strings.Contains(err.Error(), "secret-tok") {
		t.Fatalf("error leaks record content: %v", err)
	}
	// Malformed expiring records count as expired: they are replaced.
	if st, _, err := s.ReserveIdempotency(t.Context(), "bad", time.Minute); err != nil || st != store.IdempotencyReserved {
		t.Fatalf("Reserve over corrupt = %v, %v", st, err)
	}
	if ok, err := s.AcquireLease(t.Context(), "bad", "h", time.Minute); err != nil || !ok {
		t.Fatalf("Acquire over corrupt = %v, %v", ok, err)
	}
}

// A state file whose subscriptions were written as JSON (before format 1)
// is read as before, and a record is rewritten in format 1 when next put.
func TestReadsJSONSubscriptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path, Options{SweepInterval: -1})
	legacy := `{"id":"sid","token":"tok","source_id":"src","origin":"file",` +
		`"created_at":"2025-01-01T00:00:00Z","updated_at":"2025-01-01T00:00:00Z","last_activity_at":"0001-01-01T00:00:00Z"}`
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSubscriptions).Put([]byte("sid"), []byte(legacy))
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	got, err := s.GetSubscription(ctx, "sid")
	if err != nil || got.Token != "tok" || got.SourceID != "src" || !got.CreatedAt.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("legacy record read as %+v, %v", got, err)
	}
	got.ContactID = "9"
	if _, _, err := s.PutSubscription(ctx, got); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	s.db.View(func(tx *bbolt.Tx) error {
		raw = append(raw, tx.Bucket(bucketSubscriptions).Get([]byte("sid"))...)
		return nil
	})
	if len(raw) == 0 || raw[0] == '{' || len(raw) >= len(legacy) {
		t.Fatalf("rewritten record is %d bytes starting %q, want format 1", len(raw), raw[:1])
	}
	if again, err := s.GetSubscription(ctx, "sid"); err != nil || again.ContactID != "9" || !again.CreatedAt.Equal(got.CreatedAt) {
		t.Fatalf("after the rewrite: %+v, %v", again, err)
	}
}
