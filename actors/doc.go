// Package actors is protosynod's native API for protoactor-go: an actor
// whose message handler is the change function of its own CASPaxos register
// (DESIGN.md §5). The actor's state lives in the register, replicated by the
// acceptors; an activation of the actor is a place to run rounds, not a
// copy of the state, so any node may host it at any time and two activations
// of one actor cannot lose or fork its state.
//
// # Usage
//
//  1. Write a pure Handler[S]: func(state S, msg proto.Message) (S,
//     proto.Message, error). It may run more than once per message; only
//     the run whose value a quorum accepted produces the reply. Refuse a
//     message by returning an error, preferably a *HandlerError sentinel
//     so that callers can match it with errors.Is.
//  2. Build the Props with Props(reg, h, opts...), where reg is a
//     *synod.Client (or any Registers; give the Client
//     synod.WithConfigSource(transport.DiscoverConfig) so that it follows
//     acceptor replacements without a restart). Spawn them with SpawnNamed (the
//     actor's name is its register key) or register them as a cluster Kind
//     (the grain's "kind/identity" is its key).
//  3. Talk to the actor with Request(ctx, Local(sys, pid) or Grain(c, id,
//     kind), msg), which gives replies back and turns ErrorReply messages
//     back into Go errors, and read its state with Read[S] (a Query).
//  4. After an error matching synod.ErrIndeterminate, send the message again
//     with the same request ID (RequestError.ID, WithRequestID), or let
//     WithRetry do it: the register remembers, for each of up to
//     WithDedupWindow senders, its last request ID and reply (package
//     dedup), so a message is applied at most once and the retry gets the
//     original reply.
//
// # How a message is applied
//
// Every message goes through a round of reg.Change; the activation keeps no
// state of its own that a read could see stale (it only memoizes the
// decoding of the exact register bytes it last saw). While a round is in
// flight the actor keeps receiving and queues messages; when the round ends,
// the next one applies all queued messages' handlers in order and commits
// once, then each sender gets its own reply (mailbox batching, DESIGN.md
// §8). With synod's one-round-trip path, a steady stream of messages to one
// actor costs one scatter/gather per batch.
//
// The register holds an envelope, msgpack-encoded with its version first:
// the codec's name, a commit counter, the encoded state (msgpack by default,
// protobuf for states that are protobuf messages, see Codec), the ID of the
// run that wrote it, and per sender of requests with IDs its last request
// and reply (a dedup.Table). Request gives each call the next sequence
// number of a sender it holds alone, so a change costs one small entry per
// active sender, not a window of every recent request; and it takes the
// sender last used for the same actor when that one is free, so a process
// that sends to many actors, one request at a time each, adds about one
// entry per actor, not one per Request it has in flight. Registers written by
// the first envelope version (a window of request IDs) still decode; their
// IDs become one-shot entries. The reply
// a sender gets is the one computed by the run that a quorum accepted, even
// when synod re-commits an earlier run's value on a retry.
//
// A handler's error or panic leaves the state as it was and is sent back as
// an ErrorReply (code HANDLER or PANIC); so are the round's errors
// (INDETERMINATE, UNAVAILABLE, CONFLICT, and STORAGE or NO_SPACE when the
// acceptors' storage failed: synod.ErrStorage and synod.ErrNoSpace on the
// caller's side), so a caller can always tell a refusal from a protocol
// outcome. A caller reads a code it does not know as INDETERMINATE. A batch that changes nothing (queries,
// refusals, duplicates) writes the register's value back unchanged, which
// is never indeterminate; a batch of queries alone uses reg.Read.
//
// # What it does not do
//
// Replies and messages cross protoactor's remote as protobuf messages, so
// they must be registered generated types. Replies of requests with IDs are
// stored in the register: keep them small. Deduplication covers the last
// WithDedupWindow senders: a retry after more senders than that reached the
// actor may apply again. Messages without a sender (Send) are applied but
// not answered.
package actors

//go:generate go run ./internal/protogen
