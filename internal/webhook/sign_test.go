package webhook

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks specification's published test vector: a receiver
// using any of its libraries verifies what the relay signs.
const (
	vecSecret    = Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	vecID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTimestamp = 1614265330
	vecBody      = `{"test": 2432232314}`
	vecSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignPublishedVector(t *testing.T) {
	key, err := vecSecret.key()
	if err != nil {
		t.Fatal(err)
	}
	if got := Sign(key, vecID, vecTimestamp, []byte(vecBody)); got != vecSignature {
		t.Fatalf("signature %q, want %q", got, vecSignature)
	}
	h := http.Header{}
	h.Set(HeaderID, vecID)
	h.Set(HeaderTimestamp, fmt.Sprint(vecTimestamp))
	h.Set(HeaderSignature, "v1,bm9wZQ== "+vecSignature)
	if err := Verify(vecSecret, h, []byte(vecBody), time.Unix(vecTimestamp+10, 0), 5*time.Minute); err != nil {
		t.Fatalf("verify published vector: %v", err)
	}
	if Verify(vecSecret, h, []byte(vecBody+" "), time.Unix(vecTimestamp, 0), time.Minute) == nil {
		t.Fatal("a changed body verified")
	}
	if Verify(vecSecret, h, []byte(vecBody), time.Unix(vecTimestamp+3600, 0), time.Minute) == nil {
		t.Fatal("a stale timestamp verified")
	}
}

func TestSignRotationBothSecretsVerify(t *testing.T) {
	old, next := NewSecret(), NewSecret()
	s, err := newSigner([]Secret{next, old}, false)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	h := http.Header{}
	s.apply(h, "m:1:42:created", now, []byte(`{"event":"message.created"}`))
	if n := len(strings.Fields(h.Get(HeaderSignature))); n != 2 {
		t.Fatalf("%d signatures during a rotation, want 2", n)
	}
	for _, sec := range []Secret{old, next} {
		if err := Verify(sec, h, []byte(`{"event":"message.created"}`), now, time.Minute); err != nil {
			t.Fatalf("a rotation secret does not verify: %v", err)
		}
	}
	if Verify(NewSecret(), h, []byte(`{"event":"message.created"}`), now, time.Minute) == nil {
		t.Fatal("an unrelated secret verified")
	}
}

func TestSignChatwootScheme(t *testing.T) {
	sec := NewSecret()
	s, err := newSigner([]Secret{sec}, true)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	body := []byte(`{"event":"message.created"}`)
	s.apply(h, "m:1:42:created", time.Unix(1700000000, 0), body)
	want := "sha256=" + chatwootMAC([]byte(sec), "1700000000", body)
	if h.Get(HeaderChatwootSignature) != want || h.Get(HeaderChatwootTimestamp) != "1700000000" ||
		h.Get(HeaderChatwootDelivery) != "m:1:42:created" {
		t.Fatalf("chatwoot headers %v", h)
	}
	// Known answer: HMAC-SHA256("key", "1.{}") computed independently.
	if got := chatwootMAC([]byte("key"), "1", []byte("{}")); got != "1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224" {
		t.Fatalf("chatwoot mac %q", got)
	}
}

func TestSecretsRejectedAndRedacted(t *testing.T) {
	short := Secret(SecretPrefix + base64.StdEncoding.EncodeToString([]byte("short")))
	for _, bad := range [][]Secret{nil, {"plain"}, {short}, {"whsec_!!!"}, {NewSecret(), NewSecret(), NewSecret()}} {
		if _, err := newSigner(bad, false); err == nil {
			t.Errorf("secrets %d accepted", len(bad))
		}
	}
	sec := NewSecret()
	var b strings.Builder
	log := slog.New(slog.NewJSONHandler(&b, nil))
	ep := Endpoint{ID: "crm", URL: "https://crm.example/hook?key=qtoken", Secrets: []Secret{sec}, Subjects: []string{"chatwoot.>"}}
	log.Info("x", "endpoint", ep, "secret", sec)
	out := b.String() + fmt.Sprintf("%v %+v %#v", sec, ep, ep)
	if strings.Contains(out, string(sec)[6:]) || strings.Contains(b.String(), "qtoken") {
		t.Fatalf("secret or URL query printed: %s", out)
	}
}
