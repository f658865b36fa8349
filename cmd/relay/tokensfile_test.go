package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/api"
)

func TestTokensFileParse(t *testing.T) {
	tokens, err := parseTokensFile([]byte("# scoped tokens\n\n" +
		`{"token":"tok,with:odd@chars\"","scopes":["admin"]}` + "\n" +
		`{"token":"tok-2","scopes":["proxy"],"inboxes":["inboxA","inboxB"]}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 2 || tokens[0].Value != `tok,with:odd@chars"` || !slices.Equal(tokens[0].Scopes, []api.Scope{api.ScopeAdmin}) ||
		tokens[0].Inboxes != nil || !slices.Equal(tokens[1].Inboxes, []string{"inboxA", "inboxB"}) {
		t.Fatalf("tokens = %+v", tokens)
	}
	_, err = parseTokensFile([]byte("secret-plain-1\n" + // 1: not JSON
		`{"token":"secret-2","scopes":["admin"],"extra":1}` + "\n" + // 2: unknown field
		`{"token":"secret-3","scopes":["proxy"],"inboxes":[]}` + "\n" + // 3: empty inboxes
		`{"token":"secret-4","scopes":["root"]}` + "\n" + // 4: unknown scope
		`{"token":"secret-5","scopes":["proxy"],"inboxes":["secret.inbox"]}` + "\n" + // 5: bad inbox
		`{"token":"secret-6","scopes":["admin"]}` + "\n" +
		`{"token":"secret-6","scopes":["proxy"]}` + "\n" + // 7: same token
		`{"token":"secret-8","scopes":[]} {}` + "\n")) // 8: two objects
	if err == nil {
		t.Fatal("bad lines accepted")
	}
	for _, want := range []string{"line 1:", "line 2:", "line 3:", "line 4:", "line 5:", "line 7: the same token as line 6", "line 8:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "line 6:") {
		t.Errorf("error shows a secret or refuses a good line: %v", err)
	}
	if _, err := parseTokensFile([]byte("# nothing\n\n")); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("file without tokens: %v", err)
	}
}

// TestTokensFileStopsTheStart: a bad or missing file fails the start, and
// the variable counts as configured tokens for a non-loopback HTTP_ADDR.
func TestTokensFileStopsTheStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(file, []byte(`{"token":"secret-1","scopes":["everything"]}`+"\n"), 0o600)
	cfg, err := loadConfig(map[string]string{
		"RELAY_CHATWOOT_URL": "http://127.0.0.1:1", "RELAY_HTTP_ADDR": "0.0.0.0:0", "RELAY_API_TOKENS_FILE": file,
		"RELAY_DATA_DIR": t.TempDir(),
	}, false)
	if err != nil {
		t.Fatalf("configuration with a tokens file: %v", err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	for _, path := range []string{file, file + ".missing"} {
		cfg.APITokensFile = path
		a, err := start(context.Background(), cfg, log)
		if err == nil {
			a.shutdown()
			t.Fatalf("%s: the relay started", path)
		}
		if !strings.Contains(err.Error(), "RELAY_API_TOKENS_FILE") || strings.Contains(err.Error(), "secret") || a.store != nil {
			t.Errorf("%s: start = %v (store opened: %v)", path, err, a.store != nil)
		}
	}
}

// TestScopedTokensEndToEnd: the relay serves each token of the file what
// its scopes allow, next to the full-access tokens of RELAY_API_TOKENS.
func TestScopedTokensEndToEnd(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(file, []byte(`{"token":"tok-admin","scopes":["admin"]}`+"\n"+
		`{"token":"tok-inbox","scopes":["proxy"],"inboxes":["other-inbox"]}`+"\n"), 0o600)
	e := newE2E(t, map[string]string{"RELAY_API_TOKENS": "tok-full", "RELAY_API_TOKENS_FILE": file})
	contacts := "/public/api/v1/inboxes/" + e.inbox.Identifier + "/contacts"
	for _, tt := range []struct {
		token, method, path string
		want                int
	}{
		{"", "GET", "/v1/subscriptions", 401},
		{"tok-full", "GET", "/v1/subscriptions", 200},
		{"tok-full", "POST", contacts, 200},
		{"tok-admin", "GET", "/v1/subscriptions", 200},
		{"tok-admin", "POST", contacts, 403},
		{"tok-inbox", "GET", "/v1/subscriptions", 403},
		{"tok-inbox", "POST", contacts, 403},
	} {
		h := http.Header{}
		if tt.token != "" {
			h.Set("Authorization", "Bearer "+tt.token)
		}
		var body any
		if tt.method == "POST" {
			body = map[string]any{"name": "Jane"}
		}
		if resp, data := e.do(tt.method, tt.path, body, h); resp.StatusCode != tt.want {
			t.Errorf("%s %s %s = %d, want %d: %s", tt.token, tt.method, tt.path, resp.StatusCode, tt.want, data)
		}
	}
}
