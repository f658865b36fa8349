// Package chatwoottest provides an in-process fake Chatwoot: the ActionCable
// endpoint at /cable (RoomChannel) and the public client API of API-channel
// inboxes under /public/api/v1/inboxes, driven by an in-memory model of
// accounts, inboxes, contacts, conversations and messages.
//
// It behaves like Chatwoot rather than like an idealised server (see
// chatwoot-protocol.md): unknown tokens get silence instead of a rejection,
// duplicate subscribes are ignored, identifiers are matched as exact strings,
// pings arrive every 3 s, broadcasts to an unsubscribed token are lost, and
// contact conversation payloads carry the contact's pubsub_token and source_id.
//
// # How it works
//
//	client --ws--> reader --cmds--> processor --frames--> queue --> writer --ws--> client
//	                                   |                    ^
//	                                   +-- token streams ---+<-- Broadcast / model events
//
// Each websocket connection has three goroutines: a reader that parses
// commands, a processor that executes them (after sending welcome, and only
// while the server is not stalled), and a writer that owns every write to the
// socket. Frames reach the writer through a bounded queue; a full queue makes
// Broadcast block (backpressure) instead of dropping, so benchmarks measure the
// client. Pings and close requests bypass the queue through a wake-up signal.
// A broadcast to a token goes to every confirmed subscription of that token on
// every connection, framed with the subscription's precomputed
// {"identifier":"...","message": prefix.
//
// The REST side keeps all state in one mutex-guarded model. Every mutation
// (contact message, agent reply, resolve, ...) collects the events Chatwoot
// would broadcast to contact tokens (protocol §3.2), releases the lock, and
// then broadcasts them, so a message.created echo may reach the socket before
// the HTTP response is written, as it does with Chatwoot.
//
// Users (AddUser: an administrator, or an agent of some inboxes) have an
// access token for the Application API routes the relay calls (profile,
// conversations by last activity, messages after an id) and a pubsub token
// for a RoomChannel identifier with account_id and user_id; such a
// subscription also streams account_<id> (contact.*). Conversation and
// message events go to the contact's tokens and to every administrator
// and member of the inbox, private notes, activity messages, assignments
// and conversation.read to the users only.
//
// Controls for tests: DropAll, DropConn, Disconnect, Stall, RejectToken,
// AddToken, DeleteContact, agent actions (AgentReply, AgentEditMessage,
// AgentTyping, ResolveConversation), REST fault injection (SetFault) and a
// per-client rate limit like Rack::Attack. Stats, Conns and Messages expose
// what the fake did.
//
// All goroutines are started by New's methods or by handler calls and stopped
// by Close, and all timers are created from those calls, so the fake runs
// inside a testing/synctest bubble over a MemListener.
package chatwoottest
