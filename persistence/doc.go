// Package persistence is a drop-in protoactor-go persistence.Provider that
// keeps every persistent actor's snapshot and events in one CASPaxos register
// (package synod), replicated by a quorum of acceptors. Import it under
// another name, since protoactor's package is also called persistence:
//
//	import (
//		"github.com/asynkron/protoactor-go/persistence"
//		synodpersistence "github.com/protosynod/protosynod/persistence"
//	)
//
//	client, _ := synod.NewClient(synod.RandomProposerID(node), cfg, transport,
//		synod.WithConfigSource(transport.DiscoverConfig)) // follows acceptor replacements
//	provider, _ := synodpersistence.NewProvider(client, synodpersistence.WithSnapshotInterval(50))
//	props := actor.PropsFromProducer(newMyActor,
//		actor.WithReceiverMiddleware(persistence.Using(provider)))
//
// The client follows membership changes by itself: acceptors that were
// reconfigured refuse its stale epoch with the new configuration, which it
// adopts, and WithConfigSource (natstransport's DiscoverConfig) covers the
// case where every acceptor it knew was replaced while it slept. Nodes are
// never restarted for a membership change.
//
// Actors use protoactor's persistence.Mixin exactly as with its
// InMemoryProvider; for every recovery scenario the two providers replay the
// same snapshot and events in the same order (the tests check this side by
// side in real actors).
//
// # The register
//
// The register of actor name is keyed WithKeyPrefix+name (default
// "persistence/"+name) and holds one protobuf record (see record.proto,
// hand-encoded with protowire): the latest snapshot and its event index, the
// events since that index, and the next event index, with snapshot and events
// as google.protobuf.Any. Snapshot and event types must therefore be
// protobuf messages registered in protoregistry.GlobalTypes, which importing
// their generated Go package does.
//
//   - PersistEvent(name, i, e) is one atomic change that appends e if i is the
//     register's next index, and otherwise fails with ErrFenced (below).
//   - PersistSnapshot(name, i, s) replaces the snapshot and discards the events
//     before i. The mixin asks for a snapshot every GetSnapshotInterval events,
//     so the register of an actor that answers RequestSnapshot with
//     PersistSnapshot stays bounded: one snapshot and at most interval+1
//     events. DeleteEvents and DeleteSnapshots do nothing:
//     what they could remove is already gone, and removing more would change
//     what recovery replays.
//   - Recovery costs one read round: GetSnapshot reads the register and keeps
//     the record, and the mixin's GetEvents right after it is served from that
//     record, so snapshot and events are a consistent pair. The kept record
//     lives only until that GetEvents, the next Restart or any write of the
//     actor; GetState returns a fresh State per actor incarnation.
//
// Event indices follow the mixin: the first event is 0, the mixin requests a
// snapshot after persisting an event whose index is a multiple of the
// interval and passes that same index with the snapshot, and recovery
// replays the events from the snapshot's index on. So an actor that persists
// an event before applying it (as protoactor's own tests do) snapshots the
// state before that event, which the replay then applies.
//
// The mixin names an actor by its PID's ID (ctx.Self().Id). That is stable
// for actors spawned with a fixed name, but not for cluster grains: with
// protoactor's disthash identity lookup a grain is spawned as
// "partition-activator/<identity>$<counter>", the counter local to the node.
// Two activations of one grain would then use two registers, so they would
// neither fence each other nor recover each other's events. For grains, give
// each kind its own Provider with WithKeyFunc mapping the name to a stable
// key, for example:
//
//	synodpersistence.WithKeyFunc(func(name string) string {
//		id := strings.TrimPrefix(name, "partition-activator/")
//		if i := strings.LastIndexByte(id, '$'); i >= 0 {
//			id = id[:i]
//		}
//		return "persistence/account/" + id
//	})
//
// A pitfall of protoactor's mixin, with any provider: when PersistReceive
// requests a snapshot, it delivers RequestSnapshot through the actor's
// context, which afterwards has forgotten the current message and sender, so
// ctx.Respond after PersistReceive goes to dead letters. Take ctx.Sender()
// before persisting and reply with ctx.Send (see Example).
//
// # Fencing
//
// Two activations of one actor can run at once, as protoactor clusters produce
// during topology changes. Both write to the same register, and its next index
// orders them: an activation that persists event i after another one already
// did fails with ErrFenced, does not write, and restarts; its recovery then
// sees every event the other activation persisted. No persisted event is lost
// or applied twice, and the activations' states cannot fork.
//
// # Failures panic
//
// protoactor's ProviderState methods return no errors. A State therefore
// reports every failure by panicking with an *OpError that names the
// operation and the actor and wraps the cause:
//
//   - ErrFenced: another activation wrote first. Expected during handovers.
//   - synod.ErrUnavailable or synod.ErrConflict: no quorum of acceptors
//     answered within WithTimeout; nothing was written.
//   - synod.ErrIndeterminate: a write timed out after it was sent; it may or
//     may not have been applied. The restart's recovery shows which.
//   - ErrTooLarge: the record would exceed WithMaxValueSize. The message says
//     how big the snapshot is and how many events the register holds: lower
//     the snapshot interval, or persist smaller events and snapshots.
//   - ErrCorrupt, ErrCodec, ErrCompacted: a stored value cannot be decoded (for
//     ErrCodec usually because the message type is not linked into the
//     program), or events older than the snapshot were asked for.
//
// The panic happens inside the actor's message handler (PersistReceive,
// PersistSnapshot) or its Started handler (recovery), so protoactor treats it
// as the actor's failure: it logs "[ACTOR] Recovering" with the *OpError as
// the reason, and the actor's supervisor decides. With the default strategy
// the actor restarts, recovers from its register and continues; the message
// being handled is dropped, and a sender waiting on a request future gets no
// reply, so it times out. An actor whose persistence fails more than 10 times
// in 10 seconds is stopped by that default strategy; for actors that must
// ride out an acceptor outage, spawn them with a supervisor such as
// actor.NewExponentialBackoffStrategy. A decider can tell the causes apart:
//
//	func decide(reason interface{}) actor.Directive {
//		if err, ok := reason.(error); ok && errors.Is(err, synodpersistence.ErrTooLarge) {
//			return actor.StopDirective // restarting cannot fix it
//		}
//		return actor.RestartDirective
//	}
//
// Called outside an actor, a failing State method panics in the caller.
package persistence
