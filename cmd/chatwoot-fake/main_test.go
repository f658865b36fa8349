package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// call sends a JSON request and decodes a JSON answer into out.
func call(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, data)
		}
	}
	return resp.StatusCode
}

// startRun runs the program until the test ends and returns the URL it
// printed.
func startRun(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, args, []string{"CHATWOOT_FAKE_LISTEN=127.0.0.1:0"}, pw); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("nothing printed: %v", <-errc)
	}
	go io.Copy(io.Discard, pr)
	url, ok := strings.CutPrefix(strings.Fields(lines.Text())[2], "http://")
	if !ok {
		t.Fatalf("first line %q names no URL", lines.Text())
	}
	return "http://" + url
}

// The standalone fake serves its setup, takes an agent reply through the
// control API, and shows it on the public API like Chatwoot.
func TestRunServesSeededFakeWithControlAPI(t *testing.T) {
	base := startRun(t, "-contacts", "1", "-seed", "3")
	var s setup
	if code := call(t, "GET", base+"/fake/setup", "", &s); code != 200 || len(s.Contacts) != 1 {
		t.Fatalf("setup: %d %+v", code, s)
	}
	if s.ChatwootURL != base || s.RelayEnv["RELAY_CHATWOOT_URL"] != base {
		t.Errorf("setup names %q / %q, want %s", s.ChatwootURL, s.RelayEnv["RELAY_CHATWOOT_URL"], base)
	}
	c := s.Contacts[0]
	var msg messageJSON
	body := `{"conversation_id":` + itoa(c.ConversationID) + `,"content":"Your parcel left"}`
	if code := call(t, "POST", base+"/fake/reply", body, &msg); code != 200 || msg.MessageType != 1 {
		t.Fatalf("agent reply: %d %+v", code, msg)
	}
	var page struct {
		Payload []struct {
			Content     string `json:"content"`
			MessageType int    `json:"message_type"`
		} `json:"payload"`
	}
	messages := base + "/public/api/v1/inboxes/" + c.InboxIdentifier + "/contacts/" + c.SourceID + "/conversations/" + itoa(c.ConversationID) + "/messages"
	if code := call(t, "GET", messages, "", &page.Payload); code != 200 {
		t.Fatalf("public messages: %d", code)
	}
	got := []string{}
	for _, m := range page.Payload {
		got = append(got, m.Content)
	}
	if len(got) != 2 || got[1] != "Your parcel left" {
		t.Errorf("public API lists %q, want the first message and the agent reply", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// newControl serves a seeded fake with its control API on httptest.
func newControl(t *testing.T, o options) (string, *chatwoottest.Server) {
	t.Helper()
	fake := chatwoottest.New(chatwoottest.Options{Seed: 1})
	t.Cleanup(func() { fake.Close() })
	s, err := seed(fake, o, "http://fake.test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler(fake, &control{fake: fake, agents: newAgents(fake, 0), setup: s}, true))
	t.Cleanup(srv.Close)
	return srv.URL, fake
}

func TestControlRefusesBadInput(t *testing.T) {
	base, _ := newControl(t, options{inboxes: 1})
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/fake/reply", `{"conversation_id":`, 400},
		{"POST", "/fake/reply", `{"conversation":1}`, 400},
		{"POST", "/fake/reply", `{"conversation_id":99,"content":"x"}`, 404},
		{"POST", "/fake/status", `{"conversation_id":99,"status":"closed"}`, 400},
		{"POST", "/fake/agents", `{"replies_per_second":-1}`, 400},
		{"POST", "/fake/load", `{"replies":1}`, 409}, // no conversation yet
		{"POST", "/fake/load", `{"replies":0}`, 400},
		{"POST", "/fake/faults", `{"route":"nope","status":500}`, 400},
		{"POST", "/fake/faults", `{"route":"*","delay":"soon"}`, 400},
		{"POST", "/fake/rate-limit", `{"per_minute":-5}`, 400},
		{"POST", "/fake/contacts", `{"inbox_identifier":"nope"}`, 404},
		{"POST", "/fake/reply", strings.Repeat(" ", maxControlBody+1) + "{}", 400},
		{"GET", "/fake/nothing", "", 404},
	} {
		if got := call(t, tc.method, base+tc.path, tc.body, nil); got != tc.want {
			t.Errorf("%s %s %.40q: %d, want %d", tc.method, tc.path, tc.body, got, tc.want)
		}
	}
}

// Control calls reach the fake: a contact, a load burst, a fault, a stall.
func TestControlDrivesTheFake(t *testing.T) {
	base, fake := newControl(t, options{inboxes: 1})
	var c contactInfo
	if code := call(t, "POST", base+"/fake/contacts", `{"name":"Jane"}`, &c); code != 200 || c.PubsubToken == "" {
		t.Fatalf("contact: %d %+v", code, c)
	}
	var load struct{ Sent int }
	if code := call(t, "POST", base+"/fake/load", `{"replies":5}`, &load); code != 200 || load.Sent != 5 {
		t.Fatalf("load: %d %+v", code, load)
	}
	if msgs, _ := fake.Messages(c.AccountID, c.ConversationID); len(msgs) != 6 {
		t.Errorf("%d messages after a load of 5, want 6", len(msgs))
	}
	call(t, "POST", base+"/fake/faults", `{"route":"messages.index","status":503,"count":1}`, nil)
	messages := base + "/public/api/v1/inboxes/" + c.InboxIdentifier + "/contacts/" + c.SourceID + "/conversations/" + itoa(c.ConversationID) + "/messages"
	if code := call(t, "GET", messages, "", nil); code != 503 {
		t.Errorf("faulted messages.index: %d, want 503", code)
	}
	if code := call(t, "POST", base+"/fake/stall", `{"on":true}`, nil); code != 200 {
		t.Errorf("stall: %d", code)
	}
	if n := fake.Broadcast(c.PubsubToken, []byte(`{}`)); n != 0 || fake.Stats().BroadcastsLost != 1 {
		t.Errorf("a stalled fake delivered a broadcast")
	}
}

// Simulated agents reply at the rate asked, round-robin, until set to 0.
func TestAgentsReplyAtRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := chatwoottest.New(chatwoottest.Options{Seed: 1})
		defer fake.Close()
		s, err := seed(fake, options{inboxes: 1, contacts: 2}, "http://fake.test")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		a := newAgents(fake, 2)
		go a.run(ctx)
		time.Sleep(5*time.Second + time.Millisecond)
		synctest.Wait()
		a.setRate(0)
		time.Sleep(time.Minute)
		synctest.Wait()
		for _, c := range s.Contacts {
			msgs, _ := fake.Messages(c.AccountID, c.ConversationID)
			if agentReplies := len(msgs) - 1; agentReplies != 5 {
				t.Errorf("conversation %d: %d agent replies, want 5 (10 in 5 s at 2/s, round-robin)", c.ConversationID, agentReplies)
			}
		}
	})
}

func TestOptionsFromEnvAndFlags(t *testing.T) {
	o, err := parseOptions([]string{"-inboxes", "3"}, []string{"CHATWOOT_FAKE_INBOXES=2", "CHATWOOT_FAKE_AGENT_RATE=1.5"}, io.Discard)
	if err != nil || o.inboxes != 3 || o.agentRate != 1.5 || o.listen != "127.0.0.1:3000" {
		t.Errorf("got %+v, %v", o, err)
	}
	for _, bad := range []struct {
		args []string
		env  string
	}{
		{[]string{"-inboxes", "0"}, ""},
		{nil, "CHATWOOT_FAKE_AGENT_RATE=NaN"},
		{nil, "CHATWOOT_FAKE_CONTACTS=many"},
		{[]string{"-hmac", "-control=false"}, ""},
		{[]string{"-public-url", "chatwoot:3000"}, ""},
		{[]string{"-listen", "3000"}, ""},
		{[]string{"extra"}, ""},
	} {
		var out bytes.Buffer
		if _, err := parseOptions(bad.args, []string{bad.env}, &out); err == nil {
			t.Errorf("%q %q: no error", bad.args, bad.env)
		}
	}
}

// With -hmac the seeded contacts are identified with a valid hash and the
// relay's HMAC variable is in the setup, not on stdout.
func TestHMACSetupStaysOffStdout(t *testing.T) {
	fake := chatwoottest.New(chatwoottest.Options{})
	defer fake.Close()
	s, err := seed(fake, options{inboxes: 2, contacts: 1, hmac: true, control: true}, "http://fake.test")
	if err != nil {
		t.Fatal(err)
	}
	in := s.Inboxes[0]
	if want := in.Identifier + "=" + in.HMACToken; !strings.HasPrefix(s.RelayEnv["RELAY_INBOX_HMAC_TOKENS"], want+",") {
		t.Errorf("RELAY_INBOX_HMAC_TOKENS %q, want it to start with %q", s.RelayEnv["RELAY_INBOX_HMAC_TOKENS"], want)
	}
	var out bytes.Buffer
	printSetup(&out, s, true)
	for _, secret := range []string{in.HMACToken, s.Contacts[0].PubsubToken, s.Contacts[0].SourceID} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("stdout shows a credential:\n%s", out.String())
		}
	}
}

// The setup names an administrator whose access token the Application API
// takes: what an account feed needs.
func TestSetupHasAFeedUser(t *testing.T) {
	base := startRun(t, "-contacts", "1", "-seed", "3")
	var s setup
	if code := call(t, "GET", base+"/fake/setup", "", &s); code != 200 || len(s.Users) != 1 || s.Users[0].Role != "administrator" {
		t.Fatalf("setup: %d %+v", code, s.Users)
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/profile", nil)
	req.Header.Set("api_access_token", s.Users[0].AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("profile with the setup's access token: %d", resp.StatusCode)
	}
}
