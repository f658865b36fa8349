package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"

	"github.com/relayhq/relay/internal/chatwoot"
)

// Values of the Relay-Subscription-Error header.
const (
	subErrInvalidResponse = "invalid_response" // no pubsub_token in Chatwoot's answer
)

// proxyContact forwards contact create, show and update, filling in
// identifier_hash, and registers the token a create or show returns.
func (s *Server) proxyContact(w http.ResponseWriter, r *http.Request, pc proxyCall) {
	body, ct, err := s.contactBody(w, r, &pc)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Not cancelled with the client: a created contact is still registered.
	ctx, cancel := s.withSendTimeout(context.WithoutCancel(r.Context()), isStreamed(body))
	defer cancel()
	if pc.kind == proxyContactUpdate || !pc.subscribe {
		s.forward(ctx, w, r, pc, body, ct)
		return
	}
	resp, err := s.send(ctx, r, pc, body, ct)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer resp.Body.Close()
	b, complete, err := readResponse(resp, s.opts.MaxResponseBytes)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		s.registerContact(ctx, w, pc, b, complete)
	}
	writeResponse(w, resp, b, complete)
}

// contactBody fills in identifier_hash when the request has an identifier
// but no hash and the relay holds the inbox's hmac_token: in a JSON, form
// or multipart body (a contact create with an avatar), or in the query of a
// show.
func (s *Server) contactBody(w http.ResponseWriter, r *http.Request, pc *proxyCall) (io.Reader, string, error) {
	hmacToken := s.opts.InboxHMACTokens[pc.inbox]
	kind, boundary := bodyKind(r)
	switch {
	case hmacToken != "" && kind == kindMultipart:
		return s.multipartContact(w, r, boundary, hmacToken)
	case hmacToken == "" || (kind != kindJSON && kind != kindForm):
		if hmacToken != "" && pc.kind == proxyContactShow {
			pc.query = fillQueryHash(pc.query, hmacToken)
		}
		return s.forwardBody(w, r)
	}
	b, err := readBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		return nil, "", err
	}
	if kind == kindJSON {
		b, err = fillJSONHash(b, hmacToken)
	} else {
		b, err = fillFormHash(b, hmacToken)
	}
	if err != nil {
		return nil, "", err
	}
	return bytesBody(b), r.Header.Get("Content-Type"), nil
}

// multipartContact streams a multipart contact body, appending
// identifier_hash after the client's last part when it has an identifier
// and no hash.
func (s *Server) multipartContact(w http.ResponseWriter, r *http.Request, boundary, hmacToken string) (io.Reader, string, error) {
	if r.ContentLength > s.opts.MaxMultipartBytes {
		return nil, "", &http.MaxBytesError{Limit: s.opts.MaxMultipartBytes}
	}
	mp := startMultipart(http.MaxBytesReader(w, r.Body, s.opts.MaxMultipartBytes), boundary, multipartEdit{
		read: []string{"identifier", "identifier_hash"},
		end: func(p multipartParts) ([]formField, error) {
			id := p.fields["identifier"]
			if id == "" || p.fields["identifier_hash"] != "" {
				return nil, nil
			}
			return []formField{{"identifier_hash", chatwoot.IdentifierHash(hmacToken, id)}}, nil
		},
	})
	return mp, mp.contentType, nil
}

func fillJSONHash(b []byte, hmacToken string) ([]byte, error) {
	o, err := parseObject(b)
	if err != nil {
		return nil, err
	}
	id := identifierText(o)
	if id == "" || o.text("identifier_hash") != "" {
		return b, nil // sent unchanged, byte for byte
	}
	return o.set("identifier_hash", chatwoot.IdentifierHash(hmacToken, id)).encode(), nil
}

// identifierText is the identifier as Chatwoot hashes it (identifier.to_s):
// a string, or an integer's digits. Other types are left to Chatwoot.
func identifierText(o object) string {
	raw, _ := o.get("identifier")
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == '"' {
		return scalarText(raw)
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return ""
	}
	if _, err := n.Int64(); err != nil {
		return ""
	}
	return n.String()
}

func fillFormHash(b []byte, hmacToken string) ([]byte, error) {
	f, err := parseForm(b)
	if err != nil {
		return nil, err
	}
	id := f.text("identifier")
	if id == "" || f.text("identifier_hash") != "" {
		return b, nil
	}
	return []byte(f.add("identifier_hash", chatwoot.IdentifierHash(hmacToken, id)).raw), nil
}

// fillQueryHash adds identifier_hash to a raw query that has an identifier
// and no hash. A malformed query is forwarded unchanged.
func fillQueryHash(raw, hmacToken string) string {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return raw
	}
	id := lastValue(vals, "identifier")
	if id == "" || lastValue(vals, "identifier_hash") != "" {
		return raw
	}
	return appendPair(raw, "identifier_hash", chatwoot.IdentifierHash(hmacToken, id))
}

// contactResponse is what the relay reads from a contact create/show answer.
type contactResponse struct {
	PubsubToken string          `json:"pubsub_token"`
	SourceID    string          `json:"source_id"`
	ID          json.RawMessage `json:"id"`
}

// registerContact registers the token of a contact answer and reports the
// result in response headers. Failures never change Chatwoot's answer.
func (s *Server) registerContact(ctx context.Context, w http.ResponseWriter, pc proxyCall, b []byte, complete bool) {
	var c contactResponse
	if !complete || json.Unmarshal(b, &c) != nil || c.PubsubToken == "" {
		s.m.registrations.WithLabelValues(regInvalidResponse).Inc()
		s.log.WarnContext(ctx, "contact response has no pubsub_token; not registered", "route", pc.tmpl)
		w.Header().Set(headerSubscriptionError, subErrInvalidResponse)
		return
	}
	if c.SourceID == "" {
		c.SourceID = pc.sourceID
	}
	sub, created, err := s.opts.Registry.Register(ctx, Registration{
		Token: c.PubsubToken, InboxIdentifier: pc.inbox, SourceID: c.SourceID,
		ContactID: scalarText(c.ID), Origin: OriginProxy,
	})
	if err != nil {
		_, code, _ := classify(err)
		s.m.registrations.WithLabelValues(regFailed).Inc()
		s.log.WarnContext(ctx, "contact registration failed", "route", pc.tmpl,
			"error", scrubError(err, c.PubsubToken, c.SourceID, pc.inbox))
		w.Header().Set(headerSubscriptionError, code)
		return
	}
	outcome := regExisting
	if created {
		outcome = regCreated
	}
	s.m.registrations.WithLabelValues(outcome).Inc()
	w.Header().Set(headerSubscription, sub.ID)
}
