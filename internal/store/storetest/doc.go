// Package storetest provides the contract suite every store.Store backend
// must pass, and shared benchmarks.
//
// A backend's test calls Run with a function that opens a fresh, empty store
// and describes how its clock can be moved:
//
//	storetest.Run(t, func(t *testing.T) *storetest.Backend {
//		clock := storetest.NewClock()
//		s, err := bolt.Open(filepath.Join(t.TempDir(), "relay.db"), bolt.Options{Now: clock.Now})
//		...
//		return &storetest.Backend{Store: s, Advance: clock.Advance, Reopen: ...}
//	})
//
// Backends on real time (a real Redis server) leave Advance nil: the suite
// then uses short TTLs and polls, with a bound, until expiry is observed.
package storetest
