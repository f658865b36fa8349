package webhook

import (
	"strings"
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	s := []time.Duration{5 * time.Second, 5 * time.Minute}
	for range 200 {
		d := retryDelay(s, 0, 0.2, 0, time.Hour)
		if d < 4*time.Second || d > 6*time.Second {
			t.Fatalf("jittered delay %v outside 5 s ± 20%%", d)
		}
	}
	if d := retryDelay(s, 0, 0, 2*time.Minute, time.Hour); d != 2*time.Minute {
		t.Fatalf("Retry-After 2 min gave %v", d)
	}
	if d := retryDelay(s, 1, 0, 2*time.Minute, time.Hour); d != 5*time.Minute {
		t.Fatalf("Retry-After shorter than the schedule gave %v", d)
	}
	if d := retryDelay(s, 0, 0, 48*time.Hour, time.Hour); d != time.Hour {
		t.Fatalf("Retry-After is capped: got %v", d)
	}
	if d := retryDelay(s, 9, 0, 0, time.Hour); d != 5*time.Minute {
		t.Fatalf("past the schedule: %v", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"99999999999999":                365 * 24 * time.Hour,
		"Fri, 02 Jan 2026 03:05:05 GMT": time.Minute,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("Retry-After %q = %v, want %v", in, got, want)
		}
	}
}

func TestEndpointValidate(t *testing.T) {
	good := Endpoint{ID: "crm-1", URL: "https://crm.example/hook", Subjects: []string{"chatwoot.*.*.*.*.message.created"}, Secrets: []Secret{NewSecret()}}
	if err := good.Validate("chatwoot"); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Endpoint){
		"id":           func(e *Endpoint) { e.ID = "a.b" },
		"http":         func(e *Endpoint) { e.URL = "http://crm.example/hook" },
		"scheme":       func(e *Endpoint) { e.URL = "ftp://crm.example/" },
		"relative":     func(e *Endpoint) { e.URL = "/hook" },
		"userinfo":     func(e *Endpoint) { e.URL = "https://u:p@crm.example/" },
		"no subjects":  func(e *Endpoint) { e.Subjects = nil },
		"other prefix": func(e *Endpoint) { e.Subjects = []string{"other.>"} },
		"gt inside":    func(e *Endpoint) { e.Subjects = []string{"chatwoot.>.x"} },
		"bad token":    func(e *Endpoint) { e.Subjects = []string{"chatwoot.a b"} },
		"no secret":    func(e *Endpoint) { e.Secrets = nil },
		"concurrency":  func(e *Endpoint) { e.Concurrency = -1 },
		"rate":         func(e *Endpoint) { e.RateLimit = -1 },
	} {
		e := good
		e.Subjects = append([]string(nil), good.Subjects...)
		mod(&e)
		if err := e.Validate("chatwoot"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	plain := good
	plain.URL, plain.AllowHTTP = "http://crm.internal/hook", true
	if err := plain.Validate("chatwoot"); err != nil {
		t.Fatalf("http allowed per endpoint: %v", err)
	}
	bad := Endpoint{ID: "x y", URL: "http://h", Subjects: nil}
	if err := bad.Validate("chatwoot"); err == nil || strings.Count(err.Error(), "\n") < 2 {
		t.Fatalf("all problems at once: %v", err)
	}
}

func TestLaneKey(t *testing.T) {
	for subj, want := range map[string]string{
		"chatwoot.1.2.3.44.message.created":        "1.c.44",
		"chatwoot.1.2.3._.presence.update":         "1.p.3",
		"chatwoot.relay.subscription.confirmed":    "relay",
		"chatwoot.relay.x.y.z.catchup.done.extra":  "relay",
		"chatwoot.1.2.3.44.conversation.typing_on": "1.c.44",
	} {
		if got := laneKey(subj); got != want {
			t.Errorf("laneKey(%q) = %q, want %q", subj, got, want)
		}
	}
}
