package api

import (
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

type openAPIOperation struct {
	Security  *[]map[string][]string     `json:"security"`
	Scope     Scope                      `json:"x-relay-scope"`
	Responses map[string]json.RawMessage `json:"responses"`
}

func loadOpenAPI(t *testing.T) (version string, paths map[string]map[string]json.RawMessage) {
	t.Helper()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc.OpenAPI, doc.Paths
}

var httpMethods = map[string]bool{"get": true, "post": true, "put": true, "patch": true, "delete": true, "head": true, "options": true}

// TestOpenAPIMatchesRouter: every route is documented with the right
// security, and every documented operation reaches a route.
func TestOpenAPIMatchesRouter(t *testing.T) {
	s := newServer(t, Options{APITokens: []string{apiToken}})
	version, paths := loadOpenAPI(t)
	if !strings.HasPrefix(version, "3.") {
		t.Fatalf("openapi version %q", version)
	}
	for _, rt := range s.routes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		docPath := strings.ReplaceAll(path, "...}", "}")
		raw, ok := paths[docPath][strings.ToLower(method)]
		if !ok {
			t.Errorf("route %s is not documented (as %s %s)", rt.pattern, method, docPath)
			continue
		}
		var op openAPIOperation
		if err := json.Unmarshal(raw, &op); err != nil || op.Security == nil {
			t.Errorf("%s: operation without security (%v)", rt.pattern, err)
			continue
		}
		if open := len(*op.Security) == 0; open != rt.open {
			t.Errorf("%s: documented open=%v, router open=%v", rt.pattern, open, rt.open)
		}
		if _, has403 := op.Responses["403"]; !rt.open && (op.Scope != routeScope(rt.pattern) || !has403) {
			t.Errorf("%s: documented x-relay-scope %q (403 documented: %v), router needs %q", rt.pattern, op.Scope, has403, routeScope(rt.pattern))
		}
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	for path, ops := range paths {
		for method := range ops {
			if !httpMethods[method] {
				continue // "parameters" and other path-level keys
			}
			target := param.ReplaceAllString(path, "x1")
			req := httptest.NewRequest(strings.ToUpper(method), target, nil)
			if _, pattern := s.mux.Handler(req); pattern == "" {
				t.Errorf("documented %s %s reaches no route", strings.ToUpper(method), path)
			}
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	s := newServer(t, Options{APITokens: []string{apiToken}})
	req := request("GET", "/openapi.json", "")
	req.Header.Del("Authorization")
	rec := serve(s, req)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != string(OpenAPI()) {
		t.Errorf("/openapi.json: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}
