package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// MaxBatchRegistrations bounds the subscriptions of one POST
// /v1/subscriptions/batch: one store transaction of the registry. At the
// longest values (255 bytes each) they fit the default body limit.
const MaxBatchRegistrations = 1000

// batchRequest is the body of POST /v1/subscriptions/batch. Each item is
// decoded alone, so that a bad one fails alone.
type batchRequest struct {
	Subscriptions []json.RawMessage `json:"subscriptions"`
}

// batchResponse is the answer: one result per item, in order, and counts.
type batchResponse struct {
	Results []batchItem `json:"results"`
	batchCounts
}

type batchCounts struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Failed    int `json:"failed"`
}

// batchItem is the outcome of one item: its subscription id and outcome,
// or the error that kept it out.
type batchItem struct {
	ID      string       `json:"id,omitempty"`
	Outcome string       `json:"outcome"` // created, updated, unchanged or failed
	Error   *ErrorDetail `json:"error,omitempty"`
}

// outcomeFailed is the outcome of an item that was not registered.
const outcomeFailed = "failed"

func (s *Server) createSubscriptions(w http.ResponseWriter, r *http.Request) {
	var q batchRequest
	if err := s.decodeJSON(w, r, &q); err != nil {
		s.fail(w, r, err)
		return
	}
	if n := len(q.Subscriptions); n == 0 || n > MaxBatchRegistrations {
		s.fail(w, r, fmt.Errorf("%w: subscriptions must be an array of 1 to %d objects, got %d", ErrInvalid, MaxBatchRegistrations, n))
		return
	}
	items := make([]batchItem, len(q.Subscriptions))
	regs, secrets, idx := s.batchRegistrations(q.Subscriptions, items)
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	results, err := s.opts.Registry.RegisterBatch(ctx, regs)
	if err != nil {
		s.fail(w, r, scrubError(err, secrets...))
		return
	}
	for k, res := range results {
		items[idx[k]] = resultItem(res, secrets[2*k], secrets[2*k+1])
	}
	writeJSON(w, http.StatusOK, batchResponse{Results: items, batchCounts: countItems(items)})
}

// batchRegistrations decodes and checks every item: a bad one gets its
// error in items, the others become registrations. idx[k] is the item of
// regs[k]; secrets[2k] and secrets[2k+1] are its token and source_id.
func (s *Server) batchRegistrations(raw []json.RawMessage, items []batchItem) (regs []Registration, secrets []string, idx []int) {
	regs = make([]Registration, 0, len(raw))
	for i, b := range raw {
		q, err := decodeItem(b)
		if err == nil {
			err = q.validate()
		}
		if err != nil {
			items[i] = failedItem(err)
			continue
		}
		regs = append(regs, Registration{Token: q.PubsubToken, InboxIdentifier: q.InboxIdentifier,
			SourceID: q.ContactIdentifier, Origin: OriginAPI})
		secrets = append(secrets, q.PubsubToken, q.ContactIdentifier)
		idx = append(idx, i)
	}
	return regs, secrets, idx
}

// decodeItem decodes one item as strictly as POST /v1/subscriptions does
// its body. Errors do not name the item: its place in the results does.
func decodeItem(b json.RawMessage) (registerRequest, error) {
	var q registerRequest
	if !bytes.HasPrefix(b, []byte("{")) {
		return q, fmt.Errorf("%w: each subscription must be a JSON object", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		return q, decodeError(err, dec)
	}
	return q, nil
}

// resultItem turns the registry's outcome into the item answered; an
// error's text loses the registry's index (the item's position says it).
func resultItem(res BatchResult, secrets ...string) batchItem {
	if res.Err != nil {
		cause := errors.Unwrap(res.Err)
		if cause == nil {
			cause = res.Err
		}
		return failedItem(scrubError(cause, secrets...))
	}
	return batchItem{ID: res.ID, Outcome: res.Outcome.String()}
}

func failedItem(err error) batchItem {
	_, code, msg := classify(err)
	return batchItem{Outcome: outcomeFailed, Error: &ErrorDetail{Code: code, Message: msg}}
}

func countItems(items []batchItem) batchCounts {
	var c batchCounts
	for _, it := range items {
		switch it.Outcome {
		case "created":
			c.Created++
		case "updated":
			c.Updated++
		case "unchanged":
			c.Unchanged++
		default:
			c.Failed++
		}
	}
	return c
}
