package fanout

import (
	"encoding/json"
	"testing"
	"testing/synctest"
)

// TestLifecycleCatchupDoneCounts: the published catchup.done body always
// has its documented counts, zero included; subscription events have none.
func TestLifecycleCatchupDoneCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		f := newTestFanout(t, p, Options{Prefix: "cw"})
		for _, ev := range []LifecycleEvent{
			{Event: CatchupDone, SubscriptionID: "s1", Reason: "gone"},
			{Event: SubscriptionConfirmed, SubscriptionID: "s1"},
		} {
			if err := f.Lifecycle(ev); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		stored := p.storedMsgs()
		if len(stored) != 2 {
			t.Fatalf("stored %d", len(stored))
		}
		done, confirmed := keys(t, stored[0].Data), keys(t, stored[1].Data)
		for _, k := range []string{"subscription_id", "conversations", "replayed", "reason"} {
			if _, ok := done[k]; !ok {
				t.Errorf("catchup.done lacks %q: %s", k, stored[0].Data)
			}
		}
		if done["replayed"] != 0.0 || done["conversations"] != 0.0 {
			t.Errorf("catchup.done counts: %s", stored[0].Data)
		}
		if _, ok := confirmed["replayed"]; ok {
			t.Errorf("subscription.confirmed carries catch-up counts: %s", stored[1].Data)
		}
	})
}

func keys(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
