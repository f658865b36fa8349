package registry

import (
	"context"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/chatwoot"
)

// SessionVerifier is the Chatwoot call behind Verifier; *chatwoot.Client
// implements it.
type SessionVerifier interface {
	VerifySession(ctx context.Context, ci chatwoot.ContactInbox, token string) (chatwoot.Session, error)
}

// Verifier returns the pool's Verifier: a subscription that keeps going
// unconfirmed is invalid when its contact inbox is gone or holds another
// pubsub_token. Subscriptions registered by token only cannot be checked.
func (r *Registry) Verifier(c SessionVerifier) cable.Verifier {
	return cable.VerifierFunc(func(ctx context.Context, id string, meta any) (cable.Verdict, error) {
		m := MetaOf(meta)
		if m == nil || !m.CatchUp() {
			return cable.VerdictUnknown, nil
		}
		rec, err := r.store.GetSubscription(ctx, id)
		if err != nil {
			return cable.VerdictUnknown, err
		}
		s, err := c.VerifySession(ctx, chatwoot.ContactInbox{Inbox: m.InboxIdentifier, SourceID: m.SourceID}, rec.Token)
		switch s {
		case chatwoot.SessionValid:
			return cable.VerdictValid, nil
		case chatwoot.SessionGone, chatwoot.SessionMismatch:
			r.log.Info("subscription checked with Chatwoot", "subscription", id, "session", s.String())
			return cable.VerdictInvalid, nil
		}
		return cable.VerdictUnknown, err
	})
}
