// Package jsonscan is the relay's one JSON scanner for what Chatwoot
// sends on the socket: strict (the grammar of RFC 8259, nesting bounded by
// MaxDepth, escapes checked; bytes are not checked for UTF-8, as
// encoding/json does not), allocation-free, and keeping raw slices of the
// input instead of decoding it.
//
// Besides moving past values, a Scanner captures, in the same pass, the
// values a Table names: the cable client decodes a broadcast frame with
// the fan-out's Table and hands the captured Fields on, so the message is
// read once from the socket's buffer to its NATS subject.
//
// The packages that use it: cable (frames, with the captures of a Table
// it is given) and fanout (its Table, and messages that did not come from
// the socket).
package jsonscan
