package chatwoot

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/fixtures"
)

func TestDoPassesResponseThrough(t *testing.T) {
	c, rec, _ := newServerClient(t, Options{}, resp{404, fixtures.Read(t, "api/notfound.json"), http.Header{"X-Request-Id": {"r1"}}})
	h := http.Header{"X-Forwarded-For": {"10.0.0.1"}, "Host": {"evil.example"}, "Content-Type": {"application/json"}}
	resp, err := c.Do(bg, "POST", "/inboxes/"+testInboxEsc+"/contacts?subscribe=false", strings.NewReader(`{"name":"x"}`), h)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 404 || resp.Header.Get("X-Request-Id") != "r1" || !bytes.Equal(body, fixtures.Read(t, "api/notfound.json")) {
		t.Errorf("response = %d %v %s", resp.StatusCode, resp.Header, body)
	}
	r := rec.requests()[0]
	if r.Method != "POST" || r.URI != prefix+"/contacts?subscribe=false" || string(r.Body) != `{"name":"x"}` {
		t.Errorf("request = %s %s %s", r.Method, r.URI, r.Body)
	}
	if r.Header.Get("X-Forwarded-For") != "10.0.0.1" || r.Header.Get("User-Agent") != testUA {
		t.Errorf("headers = %v", r.Header)
	}
	if got := counter(t, c.m.requests.WithLabelValues(RouteContacts, "POST", "4xx")); got != 1 {
		t.Errorf("requests{route=%s} = %v", RouteContacts, got)
	}
	if got := counter(t, c.m.errors.WithLabelValues("not_found")); got != 1 {
		t.Errorf("errors{not_found} = %v", got)
	}
}

func TestDoKeepsCallerUserAgent(t *testing.T) {
	c, rec, _ := newServerClient(t, Options{}, ok(nil))
	resp, err := c.Do(bg, "GET", "/inboxes/i", nil, http.Header{"User-Agent": {"widget/1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ua := rec.requests()[0].Header.Get("User-Agent"); ua != "widget/1" {
		t.Errorf("User-Agent = %q", ua)
	}
}

func TestDoRejectsPathsOutsideTheAPI(t *testing.T) {
	c, rec, _ := newServerClient(t, Options{}, ok(nil))
	for _, p := range []string{
		"",
		"inboxes/x",
		"//evil.example/x",
		"http://evil.example/x",
		"/../../api/v1/accounts/1",
		"/inboxes/x/../../../api",
		"/inboxes/%2e%2e/%2E%2E/api",
		"/inboxes/./x",
		"/inboxes/x\n",
	} {
		body := &closeRecorder{Reader: strings.NewReader("{}")}
		_, err := c.Do(bg, "POST", p, body, nil)
		if !errors.Is(err, ErrArgument) {
			t.Errorf("Do(%q): err = %v, want ErrArgument", p, err)
		}
		if !body.closed {
			t.Errorf("Do(%q) did not close the body", p)
		}
	}
	if _, err := c.Do(bg, "BAD METHOD", "/inboxes/x", nil, nil); !errors.Is(err, ErrArgument) {
		t.Errorf("bad method: err = %v", err)
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestDoTransportErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, _ := newFakeClient(t, Options{}, hang)
		_, err := c.Do(bg, "GET", "/inboxes/"+testInboxEsc+"/contacts/"+testSourceIDEsc, nil, nil)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v", err)
		}
		mustNotLeak(t, "error", err.Error())
	})
}

func TestDoReplaysSeekableBodyOn429(t *testing.T) {
	for name, mk := range map[string]func() io.Reader{
		"bytes.Reader":   func() io.Reader { return bytes.NewReader([]byte(`{"content":"x"}`)) },
		"bytes.Buffer":   func() io.Reader { return bytes.NewBufferString(`{"content":"x"}`) },
		"strings.Reader": func() io.Reader { return strings.NewReader(`{"content":"x"}`) },
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, ft, _ := newFakeClient(t, Options{MaxAttempts: 3}, reply(429, ""), reply(200, messageJSON))
				resp, err := c.Do(bg, "POST", "/inboxes/i/contacts/s/conversations/1/messages", mk(), nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				calls := ft.attempts()
				if resp.StatusCode != 200 || len(calls) != 2 || string(calls[1].body) != `{"content":"x"}` {
					t.Fatalf("status %d after %d attempts, last body %q", resp.StatusCode, len(calls), calls[len(calls)-1].body)
				}
			})
		})
	}
}

func TestDoStreamBodyNotReplayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ft, _ := newFakeClient(t, Options{MaxAttempts: 3}, reply(429, "Retry later\n"), reply(200, messageJSON))
		body := &closeRecorder{Reader: io.MultiReader(strings.NewReader(`{"content":"x"}`))}
		resp, err := c.Do(bg, "POST", "/inboxes/i/contacts/s/conversations/1/messages", body, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 429 || len(ft.attempts()) != 1 {
			t.Fatalf("status %d after %d attempts", resp.StatusCode, len(ft.attempts()))
		}
		if !body.closed {
			t.Error("body not closed")
		}
	})
}

func TestMatchRoute(t *testing.T) {
	tests := map[string]string{
		"/inboxes/abc":                                             RouteInbox,
		"/inboxes/abc/contacts":                                    RouteContacts,
		"/inboxes/abc/contacts/s%2F1":                              RouteContact,
		"/inboxes/abc/contacts/s/conversations":                    RouteConversations,
		"/inboxes/abc/contacts/s/conversations/3":                  RouteConversation,
		"/inboxes/abc/contacts/s/conversations/3/toggle_status":    RouteToggleStatus,
		"/inboxes/abc/contacts/s/conversations/3/toggle_typing":    RouteToggleTyping,
		"/inboxes/abc/contacts/s/conversations/3/update_last_seen": RouteUpdateLastSeen,
		"/inboxes/abc/contacts/s/conversations/3/messages":         RouteMessages,
		"/inboxes/abc/contacts/s/conversations/3/messages/9":       RouteMessage,
		"/csat_survey/u-1":                                         RouteCSATSurvey,
		"/inboxes":                                                 RouteOther,
		"/inboxes//contacts":                                       RouteOther,
		"/inboxes/abc/secrets":                                     RouteOther,
		"/inboxes/abc/contacts/s/conversations/3/messages/9/x":     RouteOther,
		"/inboxes/abc/contacts.json":                               RouteContacts,
		"/inboxes/abc/contacts/s.json":                             RouteContact,
		"/inboxes/abc/contacts/s/conversations/3/messages.json":    RouteMessages,
	}
	for p, want := range tests {
		if got := matchRoute("GET", p).tmpl; got != want {
			t.Errorf("matchRoute(%q) = %s, want %s", p, got, want)
		}
	}
}

// The typed calls and Do must agree on route labels.
func TestTypedRoutesMatchProxyRoutes(t *testing.T) {
	values := map[string]string{"{inbox}": testInbox, "{source_id}": testSourceID, "{conversation}": "12", "{message}": "34", "{uuid}": "u/u"}
	for _, tmpl := range knownRoutes {
		var vals []string
		for seg := range strings.SplitSeq(tmpl, "/") {
			if v, ok := values[seg]; ok {
				vals = append(vals, v)
			}
		}
		rt, err := newRoute("GET", tmpl, vals...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := proxyRoute("GET", rt.path)
		if err != nil || got.tmpl != tmpl {
			t.Errorf("%s: built %s, matched %s (%v)", tmpl, rt.path, got.tmpl, err)
		}
	}
}

func TestMetricLabelsHoldNoSecrets(t *testing.T) {
	c, _, reg := newServerClient(t, Options{}, status(404, "{}"))
	c.GetContact(bg, testCI, Identity{})
	c.ListMessages(bg, testCI, 3, 0)
	if resp, err := c.Do(bg, "GET", "/inboxes/"+testInboxEsc+"/unknown/"+testSourceIDEsc, nil, nil); err == nil {
		resp.Body.Close()
	}
	if got := counter(t, c.m.requests.WithLabelValues(RouteOther, "GET", "4xx")); got != 1 {
		t.Errorf("unknown path not counted as %q: %v", RouteOther, got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "relay_chatwoot_") {
			t.Errorf("metric %s lacks the prefix", mf.GetName())
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				mustNotLeak(t, "label "+l.GetName(), l.GetValue())
			}
		}
	}
	if n := testutil.CollectAndCount(c.m.requests); n != 3 {
		t.Errorf("%d request series, want 3", n)
	}
}
