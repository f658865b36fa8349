package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/relayhq/relay/internal/chatwoot"
)

// Resolving a send whose outcome is unknown.
//
// Chatwoot does not persist echo_id: it is only on the live message.created
// of the request that created the message, never in REST listings (see
// chatwoot-protocol.md §4.5). So the relay cannot ask Chatwoot "does the
// message with this echo_id exist?". It decides from two sources:
//
//  1. the echo memory (EchoTracker.Seen): the relay saw a message.created
//     carrying the attempt's echo_id on a subscription of this process.
//     Its REST form is fetched by id (?before=id+1) from this conversation's
//     list, and it counts only when it is there and matches the attempt
//     (below): an echo_id is the client's to choose, so the echo may be that
//     of an earlier message the client sent with the same echo_id, or of a
//     message in another conversation. Such an echo is ignored.
//  2. the conversation's messages (GET .../messages, 20 a page, newest
//     first, back to the first attempt's time, at most maxLookupPages
//     pages): an incoming message created at or after the first attempt
//     (minus clockSlack), with the same content (compared by SHA-256) and
//     the same number of attachments, is taken as the attempt's message.
//
// A message list answering 404 (the conversation or the contact is gone) is
// an empty conversation: the message is absent, and posting again gets
// Chatwoot's 404.
//
// The message is certainly absent only when all of these hold: no echo
// without a message id was seen, the pages read reach back before the first attempt (or hold the
// whole conversation), and the attempt cannot still be running at Chatwoot
// (Rails answered its last send with a 500, or RequestTimeout +
// OutcomeGrace have passed since the last send began; a gateway's 5xx does
// not count). Otherwise the lookup cannot decide: the client
// gets 503 with Retry-After and the key stays unsettled.
//
// Known limits: an identical message (same content and attachments) sent
// in the same window under another key is taken for this one (chosen over
// posting twice); a message whose content Chatwoot rewrites is not found,
// neither by content nor by its echo (an echo is trusted only when its
// message matches, see 1.), so it is posted again once the running window
// has passed.

// clockSlack widens the time window of the lookup by the clock difference
// tolerated between the relay and Chatwoot (created_at is Chatwoot's clock).
const clockSlack = 60 // seconds

// messagePageSize is how many messages Chatwoot lists per page.
const messagePageSize = 20

// undecidedError is a lookup that could not decide; retry after retryAfter
// seconds.
type undecidedError struct {
	retryAfter int
	msg        string
}

func (e *undecidedError) Error() string {
	return "the outcome of an earlier send with this Idempotency-Key is not known yet (" + e.msg + "); retry with the same key later"
}

func (e *undecidedError) Unwrap() error { return ErrUnavailable }

// maxLookupPages bounds how many pages of messages a lookup reads, going
// back from the newest, to reach the first attempt's time.
const maxLookupPages = 5

// lookup returns the REST JSON of the message the attempt created, nil
// when the message certainly does not exist, or an *undecidedError.
func (s *Server) lookup(ctx context.Context, pc proxyCall, a attempt) ([]byte, error) {
	msgID, seen := s.opts.Echoes.Seen(a.EchoID)
	found, covered, err := s.findAttempt(ctx, pc, a, msgID)
	switch {
	case err != nil:
		s.log.WarnContext(ctx, "message lookup failed", "route", pc.tmpl, "error", err)
		return nil, &undecidedError{retryAfter: 1, msg: "chatwoot's message list could not be read"}
	case found != nil:
		return found, nil
	case msgID != "":
		seen = false // the echo was another message's
	}
	return nil, s.undecided(a, seen, covered)
}

// findAttempt looks for the attempt's message by the echo's message id,
// else by content.
func (s *Server) findAttempt(ctx context.Context, pc proxyCall, a attempt, msgID string) (found []byte, covered bool, err error) {
	found, err = s.echoedMessage(ctx, pc, a, msgID)
	if err != nil || found != nil {
		return found, true, err
	}
	return s.searchMessages(ctx, pc, a)
}

// undecided returns nil when a message that was not found is certainly
// absent, else why the lookup cannot tell.
func (s *Server) undecided(a attempt, seen, covered bool) error {
	switch wait := s.stillRunning(a); {
	case seen:
		return &undecidedError{retryAfter: 1, msg: "its echo was seen but the message is not listed"}
	case !covered:
		return &undecidedError{retryAfter: 1, msg: "too many newer messages to tell"}
	case wait > 0:
		return &undecidedError{retryAfter: int(wait), msg: "it may still be running at chatwoot"}
	}
	return nil
}

// echoedMessage returns the message with id msgID (from the echo memory)
// when this conversation lists it and it matches the attempt; nil when
// there is no such id or it is another message.
func (s *Server) echoedMessage(ctx context.Context, pc proxyCall, a attempt, msgID string) ([]byte, error) {
	id, err := strconv.ParseInt(msgID, 10, 64)
	if err != nil || id <= 0 {
		return nil, nil
	}
	page, err := s.listMessages(ctx, pc, id+1) // the page ending with that message
	if err != nil {
		return nil, err
	}
	for _, m := range page {
		if m.ID == id && matchesAttempt(m, a) {
			return m.Raw, nil
		}
	}
	return nil, nil
}

// searchMessages looks for the attempt's message by content, page by page
// back to the first attempt's time (covered), at most maxLookupPages pages.
func (s *Server) searchMessages(ctx context.Context, pc proxyCall, a attempt) (found []byte, covered bool, err error) {
	before := int64(0)
	for range maxLookupPages {
		page, err := s.listMessages(ctx, pc, before)
		if err != nil {
			return nil, false, err
		}
		if m := findMessage(page, a); m != nil {
			return m, true, nil
		}
		if coversAttempt(page, a) {
			return nil, true, nil
		}
		before = page[0].ID
	}
	return nil, false, nil
}

// stillRunning returns how many seconds the attempt may still be running at
// Chatwoot; 0 when it cannot be.
func (s *Server) stillRunning(a attempt) int64 {
	if a.Answered {
		return 0
	}
	end := a.lastStarted() + int64((s.opts.RequestTimeout + s.opts.OutcomeGrace).Seconds())
	return max(end-unixNow(), 0)
}

// listMessages reads a page of the conversation's messages: the latest,
// or those with ids below before (when not zero). A 404 (the conversation
// or the contact is gone) is an empty page.
func (s *Server) listMessages(ctx context.Context, pc proxyCall, before int64) ([]chatwoot.Message, error) {
	target := pc.path
	if before > 0 {
		target += "?before=" + strconv.FormatInt(before, 10)
	}
	resp, err := s.opts.Chatwoot.Do(ctx, http.MethodGet, target, nil, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, complete, err := readResponse(resp, s.opts.MaxResponseBytes)
	switch {
	case err != nil:
		return nil, err
	case resp.StatusCode == http.StatusNotFound:
		return nil, nil
	case resp.StatusCode != http.StatusOK || !complete:
		return nil, fmt.Errorf("api: message list answered %d (%d bytes read)", resp.StatusCode, len(b))
	}
	var page []chatwoot.Message
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, fmt.Errorf("api: message list is not a JSON array of messages: %w", err)
	}
	return page, nil
}

// findMessage returns the REST JSON of the first message in page matching
// the attempt.
func findMessage(page []chatwoot.Message, a attempt) []byte {
	for _, m := range page {
		if matchesAttempt(m, a) {
			return m.Raw
		}
	}
	return nil
}

// matchesAttempt reports whether m can be the attempt's message: incoming,
// created since the first send began, with its content and number of
// attachments.
func matchesAttempt(m chatwoot.Message, a attempt) bool {
	content := ""
	if m.Content != nil {
		content = *m.Content
	}
	return m.MessageType == chatwoot.MessageIncoming && m.CreatedAt >= a.Started-clockSlack &&
		digest(content) == a.Content && attachmentCount(m) == a.Files
}

func attachmentCount(m chatwoot.Message) int {
	var list []json.RawMessage
	if json.Unmarshal(m.Attachments, &list) != nil {
		return 0
	}
	return len(list)
}

// coversAttempt reports whether page holds every message created since the
// attempt began: the whole conversation, or a page reaching back before it.
func coversAttempt(page []chatwoot.Message, a attempt) bool {
	if len(page) < messagePageSize {
		return true
	}
	return page[0].CreatedAt < a.Started-clockSlack // ascending order
}
