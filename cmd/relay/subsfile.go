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

// parseSubscriptionsFile reads the file's registrations and the line number
// of each. Errors name the line, never its content (it holds tokens).
func parseSubscriptionsFile(data []byte) (regs []api.Registration, lines []int, err error) {
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
		regs, lines = append(regs, reg), append(lines, n)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return regs, lines, errors.Join(errs...)
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

// maxLineErrors caps the rejected lines a reload error lists.
const maxLineErrors = 20

// reload registers everything in the file and removes file subscriptions
// that left it. A file with syntax errors changes nothing; a registration
// failure (store down, or a line whose token the relay rejects) stops the
// reload before anything is removed, after the other lines are registered.
// Registrations are written in batches, and records the file does not
// change are not written at all, so reloading an unchanged file (every
// restart) costs reads only. One summary line is logged, not one per
// subscription.
func (s *staticSubscriptions) reload(ctx context.Context) error {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("subscriptions file: %w", err)
	}
	regs, lines, err := parseSubscriptionsFile(data)
	if err != nil {
		return fmt.Errorf("subscriptions file %s (nothing changed):\n%w", s.path, err)
	}
	results, err := s.registry.RegisterBatch(ctx, regs)
	sum := registry.Summarize(results)
	if err != nil {
		// Batches before the failure are registered; none is removed. The
		// next reload (or SIGHUP) completes the work.
		return fmt.Errorf("subscriptions file: registration stopped the reload (%d new, %d updated, %d unchanged before it; nothing removed): %w",
			sum.Created, sum.Updated, sum.Unchanged, err)
	}
	keep := make(map[string]bool, len(regs))
	var errs []error
	failed := 0
	for i, res := range results {
		if res.Err == nil {
			keep[res.ID] = true
			continue
		}
		if failed++; failed > maxLineErrors {
			continue
		}
		cause := errors.Unwrap(res.Err) // the registry names the index; the line says more
		if cause == nil {
			cause = res.Err
		}
		errs = append(errs, fmt.Errorf("line %d: %w", lines[i], cause))
	}
	if failed > 0 {
		if failed > maxLineErrors {
			errs = append(errs, fmt.Errorf("and %d more", failed-maxLineErrors))
		}
		return fmt.Errorf("subscriptions file %s: %d line(s) not registered (%d new, %d updated, %d unchanged; nothing removed):\n%w",
			s.path, failed, sum.Created, sum.Updated, sum.Unchanged, errors.Join(errs...))
	}
	removed, err := s.registry.Prune(ctx, originFile, keep)
	s.log.Info("subscriptions file loaded", "subscriptions", len(keep), "new", sum.Created, "updated", sum.Updated,
		"unchanged", sum.Unchanged, "removed", removed)
	return err
}
