package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// subscriptionLine is one line of the relay's RELAY_SUBSCRIPTIONS_FILE: the
// contact's pubsub_token, with its inbox and source_id so that catch-up
// works.
type subscriptionLine struct {
	PubsubToken       string `json:"pubsub_token"`
	InboxIdentifier   string `json:"inbox_identifier"`
	ContactIdentifier string `json:"contact_identifier"`
}

// writeSubscriptions writes the seeded contacts to path in the relay's
// subscriptions file format, so a relay started with RELAY_SUBSCRIPTIONS_FILE
// subscribes them without a call to its API (Docker Compose shares the file
// through a volume). The file holds tokens: it is created with mode 0600,
// and errors name the path only. It is replaced in one rename, so a relay
// reading it never sees half of it.
func writeSubscriptions(path string, contacts []contactInfo) error {
	var buf bytes.Buffer
	buf.WriteString("# The contacts chatwoot-fake seeded, for the relay's RELAY_SUBSCRIPTIONS_FILE.\n")
	enc := json.NewEncoder(&buf)
	for _, c := range contacts {
		if err := enc.Encode(subscriptionLine{c.PubsubToken, c.InboxIdentifier, c.SourceID}); err != nil {
			return fmt.Errorf("-subscriptions-file: %w", err)
		}
	}
	if err := replaceFile(path, buf.Bytes()); err != nil {
		return fmt.Errorf("-subscriptions-file %s: %w", path, err)
	}
	return nil
}

// replaceFile writes data to a new file (mode 0600) next to path and renames
// it over path.
func replaceFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
