package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/registry"
	"github.com/relayhq/relay/internal/store"
)

const originFile = store.OriginFile

// staticSubscriptions keeps the registry in step with RELAY_SUBSCRIPTIONS_FILE:
// one pubsub_token per line, or JSON lines
// {"pubsub_token":"...","inbox_identifier":"...","contact_identifier":"..."}.
// Blank lines and lines starting with # are skipped. Subscriptions that came
// from the file and are no longer in it are removed on reload.
type staticSubscriptions struct {
	path     string
	registry *registry.Registry
	log      *slog.Logger
}

// parseSubscriptionsFile reads the file's registrations. Errors name the
// line, never its content (it holds tokens).
func parseSubscriptionsFile(data []byte) ([]api.Registration, error) {
	var regs []api.Registration
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		reg, err := parseSubscriptionLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		regs = append(regs, reg)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return regs, errors.Join(errs...)
}

func parseSubscriptionLine(line string) (api.Registration, error) {
	reg := api.Registration{Origin: originFile}
	if !strings.HasPrefix(line, "{") {
		if strings.ContainsAny(line, " \t") {
			return reg, errors.New("a token line holds one token and nothing else")
		}
		reg.Token = line
		return reg, nil
	}
	var v struct {
		Token             string `json:"pubsub_token"`
		InboxIdentifier   string `json:"inbox_identifier"`
		ContactIdentifier string `json:"contact_identifier"`
	}
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return reg, errors.New("not a JSON object with pubsub_token, inbox_identifier, contact_identifier")
	}
	if v.Token == "" {
		return reg, errors.New("pubsub_token missing")
	}
	reg.Token, reg.InboxIdentifier, reg.SourceID = v.Token, v.InboxIdentifier, v.ContactIdentifier
	return reg, nil
}

// reload registers everything in the file and removes file subscriptions
// that left it. A file with syntax errors changes nothing; a registration
// failure (store down) stops the reload before anything is removed.
func (s *staticSubscriptions) reload(ctx context.Context) error {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("subscriptions file: %w", err)
	}
	regs, err := parseSubscriptionsFile(data)
	if err != nil {
		return fmt.Errorf("subscriptions file %s (nothing changed):\n%w", s.path, err)
	}
	keep := make(map[string]bool, len(regs))
	for _, reg := range regs {
		if _, _, err := s.registry.Register(ctx, reg); err != nil {
			// Lines before this one are registered; none is removed. The
			// next reload (or SIGHUP) completes the work.
			return fmt.Errorf("subscriptions file: registering %s stopped the reload: %w", cable.SubscriptionID(reg.Token), err)
		}
		keep[cable.SubscriptionID(reg.Token)] = true
	}
	removed, err := s.removeOthers(ctx, keep)
	s.log.Info("subscriptions file loaded", "subscriptions", len(keep), "removed", removed)
	return err
}

func (s *staticSubscriptions) removeOthers(ctx context.Context, keep map[string]bool) (int, error) {
	var stale []string
	for cursor := ""; ; {
		page, next, err := s.registry.List(ctx, "", cursor, store.MaxListLimit)
		if err != nil {
			return 0, err
		}
		for _, sub := range page {
			if sub.Origin == originFile && !keep[sub.ID] {
				stale = append(stale, sub.ID)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	for _, id := range stale {
		if err := s.registry.Remove(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
	}
	return len(stale), nil
}
