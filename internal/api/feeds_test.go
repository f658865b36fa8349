package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/feeds"
)

// fakeFeeds answers like the feed manager: a token starting with "ok" is
// accepted, "refused" is refused by Chatwoot, "down" finds Chatwoot down.
type fakeFeeds struct{ added []string }

func (f *fakeFeeds) Add(_ context.Context, token string) (feeds.Feed, bool, error) {
	switch {
	case strings.HasPrefix(token, "ok"):
		f.added = append(f.added, token)
		return feeds.Feed{ID: feeds.ID(token), UserID: 3, Accounts: []feeds.Account{{ID: 1}}}, len(f.added) == 1, nil
	case strings.HasPrefix(token, "refused"):
		return feeds.Feed{}, false, feeds.ErrRefused
	}
	return feeds.Feed{}, false, &chatwoot.APIError{Kind: chatwoot.KindUpstream, Route: "GET /api/v1/profile", Status: 502}
}

func (f *fakeFeeds) Get(_ context.Context, id string) (feeds.Feed, error) {
	if id == feeds.ID("ok-secret") {
		return feeds.Feed{ID: id}, nil
	}
	return feeds.Feed{}, feeds.ErrNotFound
}

func (f *fakeFeeds) List(context.Context) ([]feeds.Feed, error) {
	return []feeds.Feed{{ID: feeds.ID("ok-secret")}}, nil
}

func (f *fakeFeeds) Remove(_ context.Context, id string) error {
	if id == feeds.ID("ok-secret") {
		return nil
	}
	return feeds.ErrNotFound
}

func TestFeedRoutes(t *testing.T) {
	ff := &fakeFeeds{}
	s := newServer(t, Options{Feeds: ff, APITokens: []string{apiToken}})
	rec := serve(s, request("POST", "/v1/feeds", `{"access_token":"ok-secret"}`))
	if rec.Code != http.StatusCreated || strings.Contains(rec.Body.String(), "ok-secret") ||
		rec.Header().Get("Location") != "/v1/feeds/"+feeds.ID("ok-secret") {
		t.Fatalf("create: %d %s %v", rec.Code, rec.Body, rec.Header())
	}
	if rec = serve(s, request("POST", "/v1/feeds", `{"access_token":"ok-secret"}`)); rec.Code != http.StatusOK {
		t.Errorf("create again: %d", rec.Code)
	}
	if rec = serve(s, request("GET", "/v1/feeds", "")); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"feeds":[`) {
		t.Errorf("list: %d %s", rec.Code, rec.Body)
	}
	if rec = serve(s, request("GET", "/v1/feeds/"+feeds.ID("ok-secret"), "")); rec.Code != 200 {
		t.Errorf("get: %d %s", rec.Code, rec.Body)
	}
	wantError(t, serve(s, request("GET", "/v1/feeds/nope", "")), 404, CodeNotFound)
	if rec = serve(s, request("DELETE", "/v1/feeds/"+feeds.ID("ok-secret"), "")); rec.Code != http.StatusNoContent {
		t.Errorf("delete: %d", rec.Code)
	}
	wantError(t, serve(s, request("DELETE", "/v1/feeds/nope", "")), 404, CodeNotFound)
	wantError(t, serve(s, httptestNoAuth("GET", "/v1/feeds")), 401, CodeUnauthorized)
}

// TestFeedHostileInput: every bad access_token gets a clear error that
// never quotes it, and nothing reaches the feed manager.
func TestFeedHostileInput(t *testing.T) {
	ff := &fakeFeeds{}
	s := newServer(t, Options{Feeds: ff, APITokens: []string{apiToken}})
	long := "ok" + strings.Repeat("x", 300)
	for _, tt := range []struct {
		body   string
		status int
		code   string
		secret string
	}{
		{`{}`, 400, CodeInvalid, ""},
		{`{"access_token":""}`, 400, CodeInvalid, ""},
		{`{"access_token":"ok secret"}`, 400, CodeInvalid, "ok secret"},
		{`{"access_token":"ok\u0000nul"}`, 400, CodeInvalid, "nul"},
		{fmt.Sprintf(`{"access_token":%q}`, long), 400, CodeInvalid, long},
		{`{"access_token":"ok-1","extra":1}`, 400, CodeInvalid, "ok-1"},
		{`{"access_token":["ok-2"]}`, 400, CodeInvalid, "ok-2"},
		{`not json`, 400, CodeInvalid, ""},
		{`{"access_token":"refused-secret"}`, 400, CodeInvalid, "refused-secret"},
		{`{"access_token":"down-secret"}`, 503, CodeUnavailable, "down-secret"},
	} {
		wantError(t, serve(s, request("POST", "/v1/feeds", tt.body)), tt.status, tt.code, tt.secret)
	}
	rec := serve(s, request("POST", "/v1/feeds", `{"access_token":"ok-3"}`, "Content-Type", "text/plain"))
	wantError(t, rec, http.StatusUnsupportedMediaType, CodeInvalid, "ok-3")
	if len(ff.added) != 0 {
		t.Errorf("bad input reached the manager: %d adds", len(ff.added))
	}
}

func TestFeedsDisabled(t *testing.T) {
	s := newServer(t, Options{APITokens: []string{apiToken}})
	wantError(t, serve(s, request("GET", "/v1/feeds", "")), 404, CodeNotFound)
	rec := serve(s, request("POST", "/v1/feeds", `{"access_token":"ok"}`))
	wantError(t, rec, 404, CodeNotFound, "ok")
	if !errors.Is(errNoFeeds, ErrNotFound) {
		t.Error("errNoFeeds is not a not-found")
	}
}

func httptestNoAuth(method, target string) *http.Request {
	req := request(method, target, "")
	req.Header.Del("Authorization")
	return req
}
