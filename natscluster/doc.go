// Package natscluster is a protoactor-go cluster provider that keeps
// cluster membership over NATS core, with no other service: no Consul,
// etcd, ZooKeeper or Kubernetes API.
//
// # Usage
//
// Create one [Provider] per cluster member (or client) on a NATS
// connection that you own, and hand it to cluster.Configure:
//
//	nc, err := nats.Connect(url)
//	// ...
//	provider := natscluster.New(nc, natscluster.WithLogger(logger))
//	system := actor.NewActorSystem()
//	cfg := cluster.Configure("shop", provider, disthash.New(),
//		remote.Configure("10.0.0.5", 0), cluster.WithKinds(kinds...))
//	c := cluster.New(system, cfg)
//	c.StartMember()
//	// ...
//	c.Shutdown(true) // calls provider.Shutdown, which announces the leave
//	nc.Close()       // the provider never closes the connection
//
// Members of one cluster must use the same subject prefix and cluster name
// and reach the same NATS system. A member announces its actor system's
// address (cluster.Cluster.ActorSystem.Address()): bind remoting to an
// address the other members can reach, or set remote.WithAdvertisedHost. The provider does not own the connection:
// it neither closes nor drains it, and it installs no connection handlers.
//
// # Subjects
//
// With prefix P (default [DefaultSubjectPrefix], "protoactor") and cluster
// name C (cluster.Config.Name), the provider subscribes to P.C.members.*
// and uses:
//
//   - P.C.members.heartbeat: a member's ID, its instance (its actor system
//     ID), a sequence number, host, port, sorted kinds and TTL, published
//     every heartbeat interval.
//   - P.C.members.leave: a member's ID, published once on Shutdown.
//   - P.C.members.hello: the sender's ID, published once on start; every
//     member answers at once with its heartbeat.
//   - P.C.members.expired: a member ID that the sender expired but then
//     heard from again (see Rejoining).
//
// Messages are JSON objects whose first field "v" is the wire version, 1,
// for example:
//
//	{"v":1,"id":"Xk3....1","inst":"Xk3...","seq":42,"host":"10.0.0.5","port":41233,"kinds":["cart"],"ttl_ms":3000}
//
// A member's ID in protoactor's topology is "<actor system ID>.<n>", n its
// incarnation, 1 at start (see Rejoining and [Provider.MemberID]). A
// heartbeat of a new incarnation replaces the older ones of the same
// instance at once. Receivers ignore fields they do not know, so members
// from before incarnations (no "inst", "seq") and after mix; such an
// older member, expired after a cut, still needs a restart.
//
// Receivers drop (and log at debug level) messages with another version, an
// empty ID, a bad port or more than 64 KiB. Watch the traffic with
//
//	nats sub 'protoactor.shop.members.*'
//
// With NATS authorization, members and clients need permission to publish
// and subscribe on P.C.members.* (clients never publish heartbeats or
// leaves, only hellos).
//
// # Timing
//
// A member heartbeats every [DefaultHeartbeatInterval] (500ms) and is
// dropped from the topology [DefaultTTL] (3s) after its last heartbeat, so a
// crashed member is gone within about 3s; change both with
// [WithHeartbeatInterval] and [WithTTL]. Each heartbeat carries the sender's
// TTL and receivers use it, so members with different settings agree.
// A member that leaves through Shutdown is dropped as soon as its leave
// arrives.
//
// On start the provider publishes a hello and collects heartbeats for the
// join window ([DefaultJoinWindow], 200ms, see [WithJoinWindow]) before it
// hands the first topology to cluster.MemberList, so StartMember usually
// returns with the full membership; members that answer later are added as
// their heartbeats arrive. Later changes are handed over as they happen:
// a new member, a changed address or kinds, a leave, or an expiry.
//
// A provider that could not run for a while (CPU starvation, a long GC
// pause) postpones its expiries by that time: heartbeats could not reach it
// meanwhile. Likewise a member expires no one while its own heartbeats do
// not come back to it (NATS echoes a connection's messages to its own
// subscriptions): if it cannot hear itself, it cannot hear the others
// either, and their silence proves nothing.
//
// # Rejoining
//
// protoactor-go blocks every member ID that leaves a topology, for good:
// its MemberList never admits that ID again, whatever the provider says. A
// member that the others expired (its NATS connection was cut, or it was
// paused, for longer than the TTL) therefore comes back under a new member
// ID, without a restart:
//
//  1. Each heartbeat carries a sequence number, and the member notes when
//     it sent it. When its own heartbeats stop coming back, so that the
//     newest one that did was sent almost a TTL ago (the TTL minus a
//     margin of a quarter TTL at most), the others may be about to expire
//     it. It fences itself: it hands protoactor a topology without itself
//     in which the other members have no kinds. protoactor's placement
//     (disthash) then stops every grain activated on the member and places
//     no grain anywhere, so the member neither hosts grains nor asks
//     another member to activate one while the others may be activating
//     its grains elsewhere. Its grain requests fail until it rejoins (a
//     member cut off from NATS cannot reach synod acceptors anyway).
//  2. While fenced it expires no one (it hears no one) and heartbeats under
//     its next incarnation's ID. Every heartbeat interval it hands the
//     fenced topology to protoactor's event stream again: a member that has
//     not expired it yet may still ask it to activate a grain (protoactor's
//     placement actor activates whatever it is asked), and that grain stops
//     again within an interval.
//  3. When one of the new incarnation's heartbeats comes back, the others
//     receive it too: the member unfences, publishes its full topology
//     with itself under the new ID, and says hello so that every member
//     answers at once. The others add the new ID (and drop the old one, if
//     they had not expired it yet) and route grains to it again.
//
// A fence costs the member its grain activations and one member ID; a
// member that fences without having been expired (its heartbeats came
// back late but did reach the others) rejoins at once under its new ID.
//
// A partition inside a NATS cluster can leave each member hearing itself
// but not the others: then both sides expire each other, and protoactor
// blocks both IDs. A member that hears a heartbeat from a member ID it
// expired (within the last ten minutes) publishes that ID on
// P.C.members.expired; the member still using that ID fences itself and
// rejoins under its next one, as above. After the partition heals both
// sides do so, and meet again under their new IDs. A member that fenced
// itself has already moved on, so a late heartbeat of its old ID changes
// nothing.
//
// Member IDs are never the actor system's ID, so protoactor's own gossip
// failure detector, which blocks actor system IDs whose gossip heartbeats
// stop for cluster.Config.HeartbeatExpiration (20s by default), no longer
// removes members from the topology: natscluster's TTL is the only failure
// detector. (Without that, a member fenced for longer than 20s would have
// blocked all the others: nobody gossips to a member no one lists.) Use the
// provider with an identity lookup that takes member IDs from the
// topology, such as disthash; IdentityStorageLookup keys activations by
// actor system ID. protoactor's gossip logs "Got gossip request from
// unknown member" while two members disagree on a member's ID, for example
// while one of them is fenced.
//
// # Caveats
//
// Fencing needs the member's own heartbeats to come back: a connection
// with nats.NoEcho cannot tell that it was cut off, logs a warning at
// start, and a member on it that others expired stays blocked until it
// restarts. Fencing is best effort in time: a process paused for longer
// than the TTL cannot stop its grains before the others expire it, and
// until the others' topologies change, two activations of a grain can
// exist (one of them no longer receives requests). With protosynod's
// actors and persistence this costs nothing but a retry: the state lives
// in CASPaxos registers, and every change applies to the latest value.
//
// During a partition inside NATS both sides host grains (each sees only
// its own side), as with any membership service that keeps no quorum; the
// CASPaxos registers keep their state safe, and each side's changes
// succeed only where it reaches a quorum of acceptors. Members from before
// incarnations ignore expiry notices and still need a restart.
//
// cluster.Cluster.Shutdown(false) stops the actor system without calling
// the provider's Shutdown. The provider notices at its next heartbeat tick
// and leaves on its own, so its goroutine does not outlive the actor system.
//
// A Provider serves one Cluster, once: after Shutdown it cannot be started
// again.
package natscluster
