package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDefaults pins the documented defaults (README configuration table).
func TestDefaults(t *testing.T) {
	c, err := loadConfig(map[string]string{"RELAY_CHATWOOT_URL": "https://chat.example.com"}, false)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintln(c.HTTPAddr, c.NATSListen, c.NATSJetStream, c.NATSSubjectPrefix, c.NATSStream, c.DataDir,
		c.CablePerConn, c.CableSubscribeRate, c.CableStaleAfter, c.CableBackoffMin, c.CableBackoffMax,
		c.CableConfirmTimeout, c.CableVerifyAfter, c.CablePresenceInterval, c.ForwardTokens, c.LogLevel)
	want := "127.0.0.1:8080 127.0.0.1:4222 true chatwoot CHATWOOT ./data 200 50 6s 1s 30s 10s 3 0s false info\n"
	if got != want {
		t.Fatalf("defaults\n got %s\nwant %s", got, want)
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := loadConfig(map[string]string{
		"RELAY_CHATWOOT_URL":          "ftp://x",
		"RELAY_HTTP_ADDR":             "0.0.0.0:8080",
		"RELAY_NATS_SUBJECT_PREFIX":   "chat.woot",
		"RELAY_CABLE_PER_CONN":        "0",
		"RELAY_CABLE_BACKOFF_MIN":     "1m",
		"RELAY_LOG_LEVEL":             "loud",
		"RELAY_CABLE_CONFIRM_TIMEOUT": "-1s",
		"RELAY_PPROF_ADDR":            "0.0.0.0:6060",
	}, false)
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, name := range []string{"CHATWOOT_URL", "API_TOKENS", "NATS_SUBJECT_PREFIX", "CABLE_PER_CONN",
		"CABLE_BACKOFF_MIN", "LOG_LEVEL", "CABLE_CONFIRM_TIMEOUT", "PPROF_ADDR"} {
		if !strings.Contains(err.Error(), "RELAY_"+name) {
			t.Errorf("error does not mention RELAY_%s:\n%v", name, err)
		}
	}
	if _, err := loadConfig(map[string]string{}, false); err == nil || !strings.Contains(err.Error(), "CHATWOOT_URL") {
		t.Errorf("missing Chatwoot URL: %v", err)
	}
	if _, err := loadConfig(map[string]string{"RELAY_CABLE_PER_CONN": "many"}, true); err == nil {
		t.Error("unparsable number accepted")
	}
}

func TestConfigLogRedactsSecrets(t *testing.T) {
	c, err := loadConfig(map[string]string{
		"RELAY_CHATWOOT_URL":       "https://chat.example.com",
		"RELAY_API_TOKENS":         "api-secret-1,api-secret-2",
		"RELAY_INBOX_HMAC_TOKENS":  "inbox1=hmac-secret",
		"RELAY_NATS_PASSWORD":      "nats-secret",
		"RELAY_REDIS_URL":          "redis://:redis-secret@localhost:6379/0",
		"RELAY_NATS_URL":           "nats://user:natsurl-secret@nats:4222",
		"RELAY_SUBSCRIPTIONS_FILE": "/etc/relay/subs",
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	out := buf.String()
	for _, secret := range []string{"api-secret", "hmac-secret", "nats-secret", "redis-secret", "natsurl-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log shows %s: %s", secret, out)
		}
	}
	if !strings.Contains(out, "/etc/relay/subs") || !strings.Contains(out, "REDACTED") {
		t.Errorf("log lacks plain settings or the redaction mark: %s", out)
	}
}

func TestHelpListsVariables(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, nil, &out, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h = %v", err)
	}
	for _, v := range []string{"RELAY_CHATWOOT_URL", "RELAY_NATS_JETSTREAM", "true", "RELAY_CABLE_SUBSCRIBE_RATE", "-demo"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("help lacks %q", v)
		}
	}
}

func TestSubscriptionsFileParse(t *testing.T) {
	regs, lines, err := parseSubscriptionsFile([]byte("# static\n\ntokenA\n" +
		`{"pubsub_token":"tokenB","inbox_identifier":"inbox1","contact_identifier":"src-1"}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(regs) != 2 || regs[0].Token != "tokenA" || regs[1].Token != "tokenB" || regs[1].InboxIdentifier != "inbox1" ||
		regs[1].SourceID != "src-1" || regs[0].Origin != originFile {
		t.Fatalf("regs = %+v", regs)
	}
	if !slices.Equal(lines, []int{3, 4}) {
		t.Fatalf("lines = %v, want [3 4]", lines)
	}
	_, _, err = parseSubscriptionsFile([]byte("good\nsecret-token extra\n{\"pubsub_token\":\"\"}\n{\"token\":\"x\"}\n"))
	if err == nil {
		t.Fatal("bad lines accepted")
	}
	for _, want := range []string{"line 2", "line 3", "line 4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "secret-token") {
		t.Errorf("error shows a token: %v", err)
	}
}

// TestDeps keeps test-only code out of the binary, and the fake Chatwoot
// of the demo out of production builds (-tags nodemo, as the container
// image is built).
func TestDeps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tags := range []string{"", "nodemo"} {
		out, err := exec.CommandContext(ctx, "go", "list", "-tags", tags, "-deps", ".").Output()
		if err != nil {
			t.Skipf("go list unavailable: %v", err)
		}
		deps := strings.Fields(string(out))
		for _, dep := range deps {
			switch dep {
			case "testing", "net/http/httptest", "github.com/alicebob/miniredis/v2":
				t.Errorf("cmd/relay (tags %q) links %s", tags, dep)
			}
		}
		if fake := slices.Contains(deps, "github.com/relayhq/relay/internal/chatwoottest"); fake != (tags == "") {
			t.Errorf("cmd/relay (tags %q) links the fake Chatwoot: %v", tags, fake)
		}
	}
	// TestDockerfileBuildsStatically checks the image builds with -tags nodemo.
}

// TestReadmeDocumentsEveryVariable keeps the README's configuration table
// in step with Config.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	forEachField(func(f reflect.StructField, _ reflect.Value) {
		if name := envPrefix + f.Tag.Get("env"); !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("README does not document %s", name)
		}
	}, Config{})
}

// TestConfigParseErrorHidesSecrets: a malformed secret variable is named,
// its value is not shown.
func TestConfigParseErrorHidesSecrets(t *testing.T) {
	_, err := loadConfig(map[string]string{
		"RELAY_CHATWOOT_URL":      "https://chat.example.com",
		"RELAY_INBOX_HMAC_TOKENS": "inboxA:hmacsecret123",
	}, false)
	if err == nil {
		t.Fatal("malformed map accepted")
	}
	if strings.Contains(err.Error(), "hmacsecret123") || !strings.Contains(err.Error(), "InboxHMACTokens") {
		t.Fatalf("error = %v", err)
	}
	_, err = loadConfig(map[string]string{"RELAY_CHATWOOT_URL": "ftp://user:urlsecret99@x"}, false)
	if err == nil || strings.Contains(err.Error(), "urlsecret99") {
		t.Fatalf("error = %v", err)
	}
}

// TestConfigAPITokensWithoutToken: a RELAY_API_TOKENS of separators and
// spaces configures no token; it must not pass for "tokens configured".
func TestConfigAPITokensWithoutToken(t *testing.T) {
	for _, v := range []string{",", " ", " , ,"} {
		for _, addr := range []string{"0.0.0.0:8080", "127.0.0.1:8080"} {
			_, err := loadConfig(map[string]string{
				"RELAY_CHATWOOT_URL": "https://chat.example.com", "RELAY_HTTP_ADDR": addr, "RELAY_API_TOKENS": v,
			}, false)
			if err == nil || !strings.Contains(err.Error(), "RELAY_API_TOKENS") {
				t.Errorf("RELAY_API_TOKENS=%q on %s: %v", v, addr, err)
			}
		}
	}
	c, err := loadConfig(map[string]string{
		"RELAY_CHATWOOT_URL": "https://chat.example.com", "RELAY_HTTP_ADDR": "0.0.0.0:8080", "RELAY_API_TOKENS": " tok-a ,, tok-b,",
	}, false)
	if err != nil || !slices.Equal(c.APITokens, []string{"tok-a", "tok-b"}) {
		t.Errorf("tokens = %q, %v; want [tok-a tok-b]", c.APITokens, err)
	}
	c, err = loadConfig(map[string]string{"RELAY_CHATWOOT_URL": "https://chat.example.com", "RELAY_API_TOKENS": ""}, false)
	if err != nil || len(c.APITokens) != 0 {
		t.Errorf("empty RELAY_API_TOKENS (local requests only) = %q, %v", c.APITokens, err)
	}
}

// TestChatwootURLSecretsNeverShown: a Chatwoot URL carrying credentials, a
// query or a fragment is refused with an error naming the variable, and
// the secret reaches neither the error nor the log.
func TestChatwootURLSecretsNeverShown(t *testing.T) {
	tests := []struct{ url, want string }{
		{"https://admin:pw-secret-1@chat.example.com", "user info"},
		{"https://tok-secret-2@chat.example.com", "user info"},
		{"https://chat.example.com/?api_key=q-secret-3", "query"},
		{"https://chat.example.com/#f-secret-4", "fragment"},
		{"ftp://u:pw-secret-5@chat.example.com/?k=q-secret-6#f-secret-7", "http(s) URL"},
		{"https://u:pw-secret-8@chat example.com/?k=q-secret-9", "http(s) URL"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := run(context.Background(), nil, []string{"RELAY_CHATWOOT_URL=" + tt.url, "RELAY_DATA_DIR=" + t.TempDir()}, &out, &out)
		if err == nil {
			t.Fatalf("%s accepted", tt.url)
		}
		if !strings.Contains(err.Error(), "RELAY_CHATWOOT_URL") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error for %s does not explain (%s): %v", tt.url, tt.want, err)
		}
		if s := regexp.MustCompile(`[a-z]-secret-[0-9]`).FindString(err.Error() + out.String()); s != "" {
			t.Errorf("%s shown for %s: error %v, output %s", s, tt.url, err, out.String())
		}
	}
	// The log redacts the URL as well, should a checked one ever carry a secret.
	var buf bytes.Buffer
	c := Config{ChatwootURL: "https://u:pw-secret-1@chat.example.com/?k=q-secret-2#f-secret-3"}
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	if s := regexp.MustCompile(`[a-z]-secret-[0-9]`).FindString(buf.String()); s != "" || !strings.Contains(buf.String(), "chat.example.com") {
		t.Errorf("log shows %q or lacks the host: %s", s, buf.String())
	}
}

// TestConfigAccountFeeds: tokens are trimmed, a list of separators or a
// malformed token is refused without being shown, and the log redacts them.
func TestConfigAccountFeeds(t *testing.T) {
	base := map[string]string{"RELAY_CHATWOOT_URL": "https://chat.example.com"}
	with := func(v string) (Config, error) {
		env := maps.Clone(base)
		env["RELAY_ACCOUNT_FEEDS"] = v
		return loadConfig(env, false)
	}
	c, err := with(" feed-secret-1 ,,feed-secret-2,")
	if err != nil || !slices.Equal(c.AccountFeeds, []string{"feed-secret-1", "feed-secret-2"}) {
		t.Fatalf("feeds %q, %v", c.AccountFeeds, err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	if strings.Contains(buf.String(), "feed-secret") {
		t.Errorf("log shows an access token: %s", buf.String())
	}
	for _, bad := range []string{" , ", "feed-secret\x01x", strings.Repeat("feed-secret", 30)} {
		_, err := with(bad)
		if err == nil || !strings.Contains(err.Error(), "RELAY_ACCOUNT_FEEDS") || strings.Contains(err.Error(), "feed-secret") {
			t.Errorf("RELAY_ACCOUNT_FEEDS=%q: %v", bad, err)
		}
	}
}
