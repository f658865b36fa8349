package api

import (
	"context"
	"fmt"
	"net/http"
)

// Cluster is the deployment's membership when replicas share Redis and
// split the subscriptions (package cluster).
type Cluster interface {
	// OwnerOf returns the member subscribing subscription id now, "" when
	// none holds its bucket.
	OwnerOf(ctx context.Context, id string) (string, error)
	// Status describes the members, the buckets each holds, this member's
	// lease ages and its last handover, as GET /v1/cluster shows it.
	Status(ctx context.Context) (any, error)
}

// getCluster serves GET /v1/cluster.
func (s *Server) getCluster(w http.ResponseWriter, r *http.Request) {
	if s.opts.Cluster == nil {
		s.fail(w, r, fmt.Errorf("%w: this relay runs as a single replica (no RELAY_REDIS_URL): there is no cluster", ErrNotFound))
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	st, err := s.opts.Cluster.Status(ctx)
	if err != nil {
		s.log.Warn("cluster status not read", "err", err)
		s.fail(w, r, fmt.Errorf("%w: the cluster store (Redis) did not answer", ErrUnavailable))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// withOwner adds the owning member to sub when replicas split the
// subscriptions. A store failure leaves it out rather than failing the read.
func (s *Server) withOwner(ctx context.Context, sub Subscription) Subscription {
	if s.opts.Cluster == nil {
		return sub
	}
	owner, err := s.opts.Cluster.OwnerOf(ctx, sub.ID)
	if err != nil {
		s.log.Warn("subscription owner not read", "subscription", sub.ID, "err", err)
		owner = ""
	}
	sub.Owner = owner
	return sub
}
