package catchup

import (
	"context"
	"encoding/json"
	"testing"
	"testing/synctest"
	"time"
)

// TestCatchupDoneCarriesDocumentedFields: every catchup.done body has
// subscription_id, conversations and replayed, zeros included, whichever
// way the catch-up ended.
func TestCatchupDoneCarriesDocumentedFields(t *testing.T) {
	for _, tt := range []struct {
		name   string
		setup  func(e *env)
		reason string
	}{
		{"nothing to replay", func(e *env) {}, ""},
		{"gave up", func(e *env) {
			e.src.onList = func(context.Context, string) error { return upstreamDown }
		}, ReasonError},
		{"contact gone", func(e *env) {
			e.src.onList = func(context.Context, string) error { return contactGone }
		}, ReasonGone},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, Options{MaxAttempts: 1}, "a")
				tt.setup(e)

				done := e.run(e.meta("a", time.Now()))

				if done.Reason != tt.reason {
					t.Fatalf("reason %q, want %q", done.Reason, tt.reason)
				}
				b, err := json.Marshal(done)
				if err != nil {
					t.Fatal(err)
				}
				var body map[string]any
				if err := json.Unmarshal(b, &body); err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"subscription_id", "conversations", "replayed"} {
					if _, ok := body[k]; !ok {
						t.Errorf("catchup.done lacks %q: %s", k, b)
					}
				}
				if body["replayed"] != 0.0 || body["conversations"] != 0.0 {
					t.Errorf("catchup.done counts: %s", b)
				}
			})
		})
	}
}
