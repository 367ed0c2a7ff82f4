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
//   - P.C.members.heartbeat: a member's ID (its actor system ID), host, port,
//     sorted kinds and TTL, published every heartbeat interval.
//   - P.C.members.leave: a member's ID, published once on Shutdown.
//   - P.C.members.hello: the sender's ID, published once on start; every
//     member answers at once with its heartbeat.
//
// Messages are JSON objects whose first field "v" is the wire version, 1,
// for example:
//
//	{"v":1,"id":"Xk3...","host":"10.0.0.5","port":41233,"kinds":["cart"],"ttl_ms":3000}
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
// meanwhile, and a wrongly expired member stays blocked (see below).
//
// # Caveats
//
// protoactor-go blocks every member that leaves the topology, for good. A
// member that others expire because its heartbeats stalled (a long pause, a
// partition longer than the TTL) stays blocked even when its heartbeats
// return, and must restart, which gives it a new ID.
//
// cluster.Cluster.Shutdown(false) stops the actor system without calling
// the provider's Shutdown. The provider notices at its next heartbeat tick
// and leaves on its own, so its goroutine does not outlive the actor system.
//
// A Provider serves one Cluster, once: after Shutdown it cannot be started
// again.
package natscluster
