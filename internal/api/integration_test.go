package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// TestIntegrationLoopback runs the relay and the fake Chatwoot on loopback
// sockets: no API tokens (loopback only), a contact created and subscribed
// through the proxy, then an idempotent message send with an attachment.
func TestIntegrationLoopback(t *testing.T) {
	fake := chatwoottest.New(chatwoottest.Options{})
	t.Cleanup(func() { fake.Close() })
	addr, err := fake.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := fake.AddInbox(chatwoottest.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	reg := newFakeRegistry()
	s := newServer(t, Options{Registry: reg, Chatwoot: newClient(t, "http://"+addr.String(), nil), Store: openStore(t)})
	relay := httptest.NewServer(s.Handler())
	t.Cleanup(relay.Close)
	base := relay.URL + "/public/api/v1/inboxes/" + inbox.Identifier

	resp := post(t, base+"/contacts", "application/json", `{"name":"Jane"}`, nil)
	var contact struct {
		SourceID    string `json:"source_id"`
		PubsubToken string `json:"pubsub_token"`
	}
	json.Unmarshal(readAll(t, resp), &contact)
	if resp.StatusCode != 200 || resp.Header.Get(headerSubscription) != fakeID(contact.PubsubToken) {
		t.Fatalf("contact create: %d %v", resp.StatusCode, resp.Header)
	}
	resp = post(t, base+"/contacts/"+contact.SourceID+"/conversations", "application/json", `{}`, nil)
	var conv struct {
		ID int64 `json:"id"`
	}
	json.Unmarshal(readAll(t, resp), &conv)

	mp, ct := multipartBody(t, map[string]string{"content": "photo"}, map[string]string{"p.jpg": "JPEG"})
	target := base + "/contacts/" + contact.SourceID + "/conversations/" + itoa(conv.ID) + "/messages"
	key := http.Header{headerIdempotencyKey: {"send-1"}}
	first := post(t, target, ct, string(mp), key)
	firstBody := readAll(t, first)
	second := post(t, target, ct, string(mp), key)
	secondBody := readAll(t, second)
	if first.StatusCode != 200 || second.StatusCode != 200 || second.Header.Get(headerReplay) != "true" ||
		!bytes.Equal(firstBody, secondBody) {
		t.Fatalf("sends: %d %d replay=%q", first.StatusCode, second.StatusCode, second.Header.Get(headerReplay))
	}
	msgs := fake.AllMessages()
	if len(msgs) != 1 || msgs[0].Attachments != 1 || msgs[0].EchoID != first.Header.Get(headerEchoID) {
		t.Errorf("messages = %+v, echo header %q", msgs, first.Header.Get(headerEchoID))
	}
}

func post(t *testing.T, url, contentType, body string, h http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
