package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// setup is what a relay (and a person trying it) needs to use the fake:
// GET /fake/setup serves it.
type setup struct {
	ChatwootURL string            `json:"chatwoot_url"`
	RelayEnv    map[string]string `json:"relay_env"`
	Inboxes     []inboxInfo       `json:"inboxes"`
	Contacts    []contactInfo     `json:"contacts"`
	// Users holds the administrator of account 1, whose access token makes
	// an account feed (RELAY_ACCOUNT_FEEDS or POST /v1/feeds).
	Users []userInfo `json:"users"`
}

type userInfo struct {
	ID          int64  `json:"id"`
	AccountID   int64  `json:"account_id"`
	Role        string `json:"role"`
	AccessToken string `json:"access_token"`
}

type inboxInfo struct {
	ID            int64  `json:"id"`
	AccountID     int64  `json:"account_id"`
	Identifier    string `json:"identifier"`
	Name          string `json:"name"`
	HMACToken     string `json:"hmac_token"`
	HMACMandatory bool   `json:"hmac_mandatory"`
}

// contactInfo is a contact session with its open conversation.
type contactInfo struct {
	InboxIdentifier string `json:"inbox_identifier"`
	AccountID       int64  `json:"account_id"`
	ContactID       int64  `json:"contact_id"`
	Identifier      string `json:"identifier,omitempty"`
	IdentifierHash  string `json:"identifier_hash,omitempty"`
	SourceID        string `json:"source_id"`
	PubsubToken     string `json:"pubsub_token"`
	ConversationID  int64  `json:"conversation_id"`
}

// seed creates the inboxes and contacts the options ask for.
func seed(fake *chatwoottest.Server, o options, chatwootURL string) (*setup, error) {
	s := &setup{ChatwootURL: chatwootURL, RelayEnv: map[string]string{"RELAY_CHATWOOT_URL": chatwootURL}}
	var hmacTokens []string
	for i := 1; i <= o.inboxes; i++ {
		in, err := fake.AddInbox(chatwoottest.InboxConfig{
			Name: fmt.Sprintf("Fake API inbox %d", i), HMACToken: o.hmacToken, HMACMandatory: o.hmac,
		})
		if err != nil {
			return nil, err
		}
		s.Inboxes = append(s.Inboxes, inboxInfo{in.ID, in.AccountID, in.Identifier, in.Name, in.HMACToken, in.HMACMandatory})
		hmacTokens = append(hmacTokens, in.Identifier+"="+in.HMACToken)
		for n := 1; n <= o.contacts; n++ {
			c, err := addContact(fake, s.Inboxes[i-1], fmt.Sprintf("Customer %d.%d", i, n))
			if err != nil {
				return nil, err
			}
			s.Contacts = append(s.Contacts, c)
		}
	}
	if o.hmac {
		s.RelayEnv["RELAY_INBOX_HMAC_TOKENS"] = strings.Join(hmacTokens, ",")
	}
	admin, err := fake.AddUser(chatwoottest.UserConfig{Name: "Fake Admin", Role: chatwoottest.RoleAdministrator})
	if err != nil {
		return nil, err
	}
	s.Users = append(s.Users, userInfo{admin.ID, admin.AccountID, admin.Role, admin.AccessToken})
	return s, nil
}

// addContact creates a contact in an inbox (identified, with its hash, when
// the inbox enforces HMAC), an open conversation and its first message.
func addContact(fake *chatwoottest.Server, in inboxInfo, name string) (contactInfo, error) {
	p := chatwoottest.ContactParams{Name: name}
	if in.HMACMandatory {
		p.Identifier = strings.ToLower(strings.NewReplacer(" ", "-", ".", "-").Replace(name))
		p.IdentifierHash = chatwoottest.IdentifierHash(in.HMACToken, p.Identifier)
	}
	ci, err := fake.CreateContact(in.Identifier, p)
	if err != nil {
		return contactInfo{}, fmt.Errorf("contact %q: %w", name, err)
	}
	conv, err := fake.CreateConversation(in.Identifier, ci.SourceID)
	if err != nil {
		return contactInfo{}, err
	}
	if _, err := fake.ContactSend(in.Identifier, ci.SourceID, conv.DisplayID, "Hello, this is "+name+".", ""); err != nil {
		return contactInfo{}, err
	}
	return contactInfo{
		InboxIdentifier: in.Identifier, AccountID: ci.AccountID, ContactID: ci.ContactID,
		Identifier: p.Identifier, IdentifierHash: p.IdentifierHash,
		SourceID: ci.SourceID, PubsubToken: ci.PubsubToken, ConversationID: conv.DisplayID,
	}, nil
}

// printSetup prints the relay's variables and the inboxes. HMAC and contact
// tokens stay in GET /fake/setup, out of terminals and container logs.
func printSetup(w io.Writer, s *setup, withControl bool) {
	fmt.Fprintf(w, "chatwoot-fake: serving %s", s.ChatwootURL)
	if withControl {
		fmt.Fprintf(w, " (control API and setup at %s/fake/setup)", s.ChatwootURL)
	}
	fmt.Fprintf(w, "\n\npoint a relay at it with:\n")
	keys := make([]string, 0, len(s.RelayEnv))
	for k := range s.RelayEnv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case k == "RELAY_INBOX_HMAC_TOKENS" && withControl:
			fmt.Fprintf(w, "  %s=$(curl -s %s/fake/setup | jq -r .relay_env.%s)\n", k, s.ChatwootURL, k)
			continue
		case k == "RELAY_INBOX_HMAC_TOKENS":
			fmt.Fprintf(w, "  %s=<inbox identifier>=<your -hmac-token>,...\n", k)
			continue
		}
		fmt.Fprintf(w, "  %s=%s\n", k, s.RelayEnv[k])
	}
	fmt.Fprintf(w, "\ninboxes (account 1):\n")
	for _, in := range s.Inboxes {
		fmt.Fprintf(w, "  %s  %s  hmac_mandatory=%t\n", in.Identifier, in.Name, in.HMACMandatory)
	}
	fmt.Fprintf(w, "%d seeded contacts\n", len(s.Contacts))
	if withControl {
		fmt.Fprintf(w, "account feed of the administrator (every event of account 1):\n  RELAY_ACCOUNT_FEEDS=$(curl -s %s/fake/setup | jq -r '.users[0].access_token')\n", s.ChatwootURL)
	}
}
