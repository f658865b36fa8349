// Package catchup provides gap-free delivery on top of ActionCable: after
// every (re)confirm of a subscription it reads the contact's conversations
// through Chatwoot's public API and replays, through fanout, what the
// websocket did not deliver.
//
// ActionCable is at-most-once: whatever Chatwoot broadcasts while a
// subscription is down (a deploy, a network blip, the seconds before
// confirm_subscription) is gone. Catch-up turns that into at-least-once;
// fanout's dedup key (the same for a live message.created and its replay)
// turns it into effectively once.
//
// # Cursors
//
// Per subscription and conversation (display_id) a cursor holds the last
// message id and the last known conversation status. A cursor never moves
// past an event that is not in NATS yet, so a relay that dies with events
// buffered replays them on its next start: live events move cursors in
// memory once NATS acknowledged them (ObserveLive, hooked to fanout's
// Published), and dirty cursors are written to the store every
// FlushInterval and on Close; catch-up writes a conversation's cursor when
// every event it replayed for it is in NATS (fanout.Event.Done), and
// retries the attempt when one was dropped.
//
// # Where the state lives
//
// What catch-up knows of a subscription (cursors, freeze, epoch, what was
// seen while frozen) is a State owned by the subscription's record
// (registry.Entry embeds one; its zero value is ready and allocates
// nothing until used), and every Target of the record points to it. A
// live event reaches it through the record, without a lookup by id, and
// takes only its small lock: ObserveLive never takes the Catchup's lock.
// The Catchup keeps only what scheduling and flushing need: the job queue,
// the jobs in backoff, and the States with a cursor to write (a State is
// added once per flush, under a lock of its own). Forget resets a State;
// a State whose record is gone goes with it, and a late event for it is
// never written.
//
// # Why cursors freeze
//
// A live event after a reconnect must not move a cursor past messages lost
// during the outage: if messages 8 and 9 were broadcast while the socket
// was down and 10 arrives live after the reconnect, a cursor at 10 would
// hide 8 and 9 from the catch-up for good. So a subscription's cursors are
// frozen from Lost (or Gap) until a catch-up that started after the next
// confirm completes; every subscription also starts frozen in a new
// process. While frozen, live events are only remembered. Catch-up starts
// from the frozen cursors, and when it completes, what was seen live is
// merged in: the catch-up covered everything up to its REST reads, live
// delivery everything after the confirm that preceded them, so the union
// has no gap. Each Lost bumps an epoch; a catch-up whose trigger predates
// the latest Lost does not end the freeze.
//
// # How a catch-up runs
//
//	Trigger(meta, lastActivity)  one pending job per subscription; a backlog
//	    │                        runs most recently active first, at most
//	    v                        Concurrency at once
//	ListConversations            (every call through the client's shared limiter;
//	    │                         each conversation embeds all its chat messages)
//	    for each conversation:
//	      cursor known       -> replay the embedded messages with ids > cursor
//	                            (pages are read, ListMessages(before=oldest id
//	                            of the previous page) up to MaxPages, only when
//	                            a conversation comes without its messages or
//	                            with a page or more of them all past the cursor)
//	      never synced       -> (first sync) replay messages created at or after
//	                            the subscription's CreatedAt - 1 s; older ones
//	                            are history: only the baseline is recorded; a
//	                            conversation with nothing dated before that
//	                            (messages, last-seen times) gets its
//	                            conversation.created replayed first
//	      new since the sync -> replay conversation.created, then every message
//	      status differs     -> replay conversation.status_changed
//	      replay in batches of ReplayBatch messages, each event only once
//	      the fan-out buffer is at most half full (Sink.WaitRoom), so a
//	      replay never overflows it or crowds live events out; wait until
//	      NATS holds the batch, then store the cursor past it, so an
//	      attempt cut short resumes after the last complete batch
//	    │
//	catchup.done lifecycle event (subscription id, conversations, replayed)
//
// Replayed events use the live envelope with the REST object and a flag,
// {"event":"message.created","data":<exact REST message bytes>,"replayed":true},
// with Event.Replayed set and Hints taken from the REST conversation
// (contact.account_id, inbox_id, contact.id), so the dedup key of a replayed
// message.created equals the live one. conversation.created and
// conversation.status_changed replays carry the raw REST conversation
// with "messages" cut to its newest message, as in a live conversation
// event (the list embeds the whole history); conversation.created's dedup key has no timestamp (a conversation is
// created once), so a replay and the live event share it too.
// Messages and conversation events already published live during the
// freeze are not replayed (REST conversations carry no timestamp that a
// dedup key could use); everything else relies on fanout's dedup.
//
// A subscription counts as synced once a catch-up completed: that writes a
// cursor for conversation SyncMarker ("0"). Until then every conversation
// is treated as first sync, so an interrupted first catch-up never replays
// old history as "new".
//
// Failures: a 404 for the contact gives up (OnGone, result "gone"); other
// errors retry with exponential backoff up to MaxAttempts, then give up
// until the next trigger (result "error"; the cursors stay frozen, so the
// next catch-up still covers the gap). Both end with a catchup.done whose
// reason says so.
//
// Metrics (prefix relay_catchup_): queued, running, backoff (gauges);
// runs_total{result}, replayed_total{event}, pages_total, truncated_total,
// retries_total, cursor_flushes_total, store_errors_total{op};
// duration_seconds (one attempt) and latency_seconds (trigger to done).
package catchup
