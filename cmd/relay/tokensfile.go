package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/relayhq/relay/internal/api"
)

// RELAY_API_TOKENS_FILE holds tokens with limited scopes, one JSON object a
// line:
//
//	{"token":"...","scopes":["proxy"],"inboxes":["<inbox identifier>"]}
//
// JSON rather than a prefix syntax in RELAY_API_TOKENS: a token may hold any
// character (a ':' or '@' of a prefix form would be ambiguous with the plain
// tokens that variable already accepts), and a file mounted from a secret
// store keeps the tokens out of the process environment. Blank lines and
// lines starting with # are skipped.

// tokenLine is one line of the tokens file. Inboxes is a pointer so that an
// explicit empty list, which would silently mean "every inbox", is refused.
type tokenLine struct {
	Token   string      `json:"token"`
	Scopes  []api.Scope `json:"scopes"`
	Inboxes *[]string   `json:"inboxes"`
}

// readTokensFile reads and checks RELAY_API_TOKENS_FILE. Errors name the
// file and the line, never a token or an inbox identifier.
func readTokensFile(path string) ([]api.Token, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%sAPI_TOKENS_FILE: %w", envPrefix, err)
	}
	tokens, err := parseTokensFile(data)
	if err != nil {
		return nil, fmt.Errorf("%sAPI_TOKENS_FILE %s:\n%w", envPrefix, path, err)
	}
	return tokens, nil
}

// parseTokensFile reads the tokens of the file, reporting every bad line.
func parseTokensFile(data []byte) ([]api.Token, error) {
	var tokens []api.Token
	var errs []error
	lineOf := map[string]int{} // token -> line, to find a token given twice
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		t, err := parseTokenLine(line)
		if err == nil && lineOf[t.Value] > 0 {
			err = fmt.Errorf("the same token as line %d", lineOf[t.Value])
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		lineOf[t.Value] = n
		tokens = append(tokens, t)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if len(tokens) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("holds no token; unset the variable to go without it"))
	}
	return tokens, errors.Join(errs...)
}

func parseTokenLine(line string) (api.Token, error) {
	var v tokenLine
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || dec.More() {
		return api.Token{}, errors.New(`not a JSON object {"token":"...","scopes":[...],"inboxes":[...]}`)
	}
	t := api.Token{Value: v.Token, Scopes: v.Scopes}
	if v.Inboxes != nil {
		if len(*v.Inboxes) == 0 {
			return t, errors.New(`"inboxes" is empty: leave it out to allow every inbox`)
		}
		t.Inboxes = *v.Inboxes
	}
	return t, t.Validate()
}
