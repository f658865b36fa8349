package feeds

import (
	"context"
	"strconv"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/fanout"
)

var (
	_ fanout.Owner       = (*Sub)(nil)
	_ fanout.RouteFinder = (*Sub)(nil)
)

// State drives the feed subscription's catch-up and publishes its
// lifecycle events.
func (s *Sub) State(_ *fanout.Sub, c cable.StateChange[*fanout.Sub]) {
	m := s.m
	ev := fanout.LifecycleEvent{SubscriptionID: c.ID, At: c.At, Reason: c.Reason, AccountID: strconv.FormatInt(s.AccountID, 10)}
	switch c.Change {
	case cable.ChangeConfirmed:
		ev.Event = fanout.SubscriptionConfirmed
		m.Confirmed(c.ID)
	case cable.ChangeLost:
		ev.Event = fanout.SubscriptionLost
		m.Lost(c.ID)
	case cable.ChangeGap:
		m.Gap(c.ID)
		return
	case cable.ChangeInvalid:
		ev.Event = fanout.SubscriptionInvalid
	case cable.ChangeRemoved:
		ev.Event = fanout.SubscriptionRemoved
	default:
		return
	}
	if m.opts.Events == nil {
		return
	}
	if err := m.opts.Events.Lifecycle(ev); err != nil {
		m.log.Warn("lifecycle event not published", "subscription", c.ID, "event", ev.Event, "err", err)
	}
}

// Verify reads the user's profile again (see Manager.Verify).
func (s *Sub) Verify(ctx context.Context, _ *fanout.Sub) (cable.Verdict, error) {
	return s.m.Verify(ctx, s)
}

// Published moves the account's cursor past a live message NATS holds.
func (s *Sub) Published(_ *fanout.Sub, r fanout.Route) { s.m.Published(s.ID, r) }

// Lost: a live event was dropped; a catch-up fills it.
func (s *Sub) Lost(*fanout.Sub) { s.m.Gap(s.ID) }

// Learned: a feed keeps no ids of its own beyond the account.
func (s *Sub) Learned(*fanout.Sub) {}
