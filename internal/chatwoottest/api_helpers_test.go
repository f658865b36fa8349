package chatwoottest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
)

// restEnv is a fake inside a bubble with an HTTP client over a MemListener.
type restEnv struct {
	t      *testing.T
	fake   *Server
	ln     *MemListener
	client *http.Client
}

func restBubble(t *testing.T, opts Options, f func(t *testing.T, e *restEnv)) {
	synctest.Test(t, func(t *testing.T) {
		fake := New(opts)
		ln := fake.ServeMem()
		e := &restEnv{t: t, fake: fake, ln: ln, client: ln.HTTPClient()}
		defer fake.Close()
		defer e.client.CloseIdleConnections()
		f(t, e)
	})
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return v
}

func (e *restEnv) do(method, path, contentType string, body []byte) response {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://chatwoot.test"+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *restEnv) get(path string) response { return e.do(http.MethodGet, path, "", nil) }

func (e *restEnv) postJSON(path string, v any) response {
	b, _ := json.Marshal(v)
	return e.do(http.MethodPost, path, "application/json", b)
}

func (e *restEnv) postForm(path string, v url.Values) response {
	return e.do(http.MethodPost, path, "application/x-www-form-urlencoded", []byte(v.Encode()))
}

func (e *restEnv) patchJSON(path string, v any) response {
	b, _ := json.Marshal(v)
	return e.do(http.MethodPatch, path, "application/json", b)
}

func (e *restEnv) cable() *testClient { return memClient(e.t, e.ln) }

// subscribe opens a connection subscribed to token and drains the welcome,
// confirm and presence frames.
func (e *restEnv) subscribe(token string) *testClient {
	c := e.cable()
	c.send(subscribeFrame(identifier(token)))
	synctest.Wait()
	if got := c.drain(); len(got) != 3 {
		e.t.Fatalf("subscribe %s: frames %q", token, got)
	}
	return c
}

// events returns the event names of the broadcast frames received so far.
func eventNames(t *testing.T, c *testClient) []string {
	t.Helper()
	synctest.Wait()
	var out []string
	for _, f := range c.drain() {
		out = append(out, eventOf(t, f))
	}
	return out
}

func eventOf(t *testing.T, frame string) string {
	var v struct {
		Message struct {
			Event string `json:"event"`
		} `json:"message"`
	}
	if err := json.Unmarshal([]byte(frame), &v); err != nil {
		t.Fatalf("frame %q: %v", frame, err)
	}
	return v.Message.Event
}

// shape renders a JSON document's structure: keys in document order and
// value kinds, recursively.
func shape(t *testing.T, doc []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var sb strings.Builder
	if err := shapeValue(dec, &sb); err != nil {
		t.Fatalf("shape of %q: %v", doc, err)
	}
	return sb.String()
}

func shapeValue(dec *json.Decoder, sb *strings.Builder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		return shapeComposite(dec, sb, v)
	case string:
		sb.WriteString("s")
	case json.Number:
		if strings.Contains(v.String(), ".") {
			sb.WriteString("f")
		} else {
			sb.WriteString("i")
		}
	case bool:
		sb.WriteString("b")
	case nil:
		sb.WriteString("null")
	}
	return nil
}

func shapeComposite(dec *json.Decoder, sb *strings.Builder, open json.Delim) error {
	sb.WriteString(open.String())
	for i := 0; dec.More(); i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		if open == '{' {
			key, err := dec.Token()
			if err != nil {
				return err
			}
			fmt.Fprintf(sb, "%s:", key)
		}
		if err := shapeValue(dec, sb); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	if open == '{' {
		sb.WriteString("}")
	} else {
		sb.WriteString("]")
	}
	return err
}

func sortedKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
