package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/feeds"
)

// Feeds holds the account feeds (a *feeds.Manager).
type Feeds interface {
	Add(ctx context.Context, accessToken string) (feeds.Feed, bool, error)
	Get(ctx context.Context, id string) (feeds.Feed, error)
	List(ctx context.Context) ([]feeds.Feed, error)
	Remove(ctx context.Context, id string) error
}

// feedRequest is the body of POST /v1/feeds.
type feedRequest struct {
	AccessToken string `json:"access_token"`
}

// feedList is the body of GET /v1/feeds.
type feedList struct {
	Feeds []feeds.Feed `json:"feeds"`
}

func (s *Server) createFeed(w http.ResponseWriter, r *http.Request) {
	var q feedRequest
	if err := s.decodeJSON(w, r, &q); err != nil {
		s.fail(w, r, err)
		return
	}
	if q.AccessToken == "" {
		s.fail(w, r, fmt.Errorf("%w: access_token is required", ErrInvalid))
		return
	}
	if err := checkCredential("access_token", q.AccessToken); err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	f, created, err := s.opts.Feeds.Add(ctx, q.AccessToken)
	if err != nil {
		s.fail(w, r, feedError(err))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", "/v1/feeds/"+f.ID)
	writeJSON(w, status, f)
}

// feedError gives the feed manager's errors their status; none of them
// carries a token.
func feedError(err error) error {
	var ae *chatwoot.APIError
	switch {
	case errors.Is(err, feeds.ErrRefused), errors.Is(err, feeds.ErrNoAccount), errors.Is(err, feeds.ErrProfile):
		return fmt.Errorf("%w: %s", ErrInvalid, err.Error())
	case errors.Is(err, feeds.ErrNotFound):
		return fmt.Errorf("%w: no such feed", ErrNotFound)
	case errors.As(err, &ae) && !errors.Is(err, chatwoot.ErrTimeout) && !errors.Is(err, chatwoot.ErrUnreachable):
		return fmt.Errorf("%w: Chatwoot did not give the user's profile (%s)", ErrUnavailable, ae.Kind)
	}
	return err
}

func (s *Server) listFeeds(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	list, err := s.opts.Feeds.List(ctx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, feedList{Feeds: list})
}

func (s *Server) getFeed(w http.ResponseWriter, r *http.Request) {
	id, err := feedID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	f, err := s.opts.Feeds.Get(ctx, id)
	if err != nil {
		s.fail(w, r, feedError(err))
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (s *Server) deleteFeed(w http.ResponseWriter, r *http.Request) {
	id, err := feedID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	if err := s.opts.Feeds.Remove(ctx, id); err != nil {
		s.fail(w, r, feedError(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// feedID returns the {id} path value; anything that cannot be an id is
// not found.
func feedID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxIDLen || checkCredential("id", id) != nil {
		return "", fmt.Errorf("%w: no such feed", ErrNotFound)
	}
	return id, nil
}

// noFeeds answers the feed routes when the relay runs without them.
type noFeeds struct{}

var errNoFeeds = fmt.Errorf("%w: account feeds are not enabled", ErrNotFound)

func (noFeeds) Add(context.Context, string) (feeds.Feed, bool, error) {
	return feeds.Feed{}, false, errNoFeeds
}
func (noFeeds) Get(context.Context, string) (feeds.Feed, error) { return feeds.Feed{}, errNoFeeds }
func (noFeeds) List(context.Context) ([]feeds.Feed, error)      { return nil, errNoFeeds }
func (noFeeds) Remove(context.Context, string) error            { return errNoFeeds }
