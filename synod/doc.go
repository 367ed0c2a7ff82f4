// Package synod is the CASPaxos protocol (Rystsov, "CASPaxos: Replicated State
// Machines without logs", arXiv:1802.07000): single-decree Paxos used as a
// rewritable register, one register per key. A caller never writes a value; it
// submits a change function f(current) -> next, and a proposer runs f inside a
// Paxos round, so every change applies atomically to the latest value. A read is
// the identity change. There is no log, so nothing grows but the values.
//
// # Pieces
//
// The protocol is pure and does no I/O:
//   - Ballot orders attempts: counter first, then proposer ID; the zero Ballot
//     loses to every other.
//   - AcceptorState.Prepare and AcceptorState.Accept are the acceptor rules, pure
//     functions from (state, request) to (state, reply, changed).
//   - Proposer and Proposal are the proposer, a step machine: the caller sends
//     Proposal.Request to the acceptors, feeds back their replies
//     (OnPrepareReply, OnAcceptReply), calls Apply when asked, and calls Retry or
//     Abandon when an attempt is refused or times out. They read no clock, start
//     no goroutines and never block.
//   - Config is the acceptor set and quorum sizes (majorities by default).
//
// Around them sit thin drivers: Acceptor serves requests over a Storage
// (MemoryStorage here, pebblestore on disk), persisting before it replies; Client
// runs changes over a Transport with contexts, phase timeouts and jittered
// backoff. Package synodtest has an in-process Transport and a deterministic
// simulation that checks all of this with porcupine.
//
// # Invariants
//
//   - An acceptor refuses a ballot only if it has seen a strictly greater one,
//     and says which (Seen = max(Promised, Accepted)); a request with the ballot
//     it already promised or accepted is a duplicate and is answered again,
//     unchanged. Promised and Accepted never decrease.
//   - A value is committed once an accept quorum accepted it; every later
//     prepare quorum then reports it or a value built on it, because every
//     prepare quorum meets every accept quorum (Q1 + Q2 > N).
//   - A proposer builds on the value with the highest accepted ballot among a
//     prepare quorum's promises, and a change function's result is committed at
//     most once: a retry that finds its own earlier result commits that result
//     again instead of running the function; one that finds a higher value that
//     may contain it ends with ErrIndeterminate.
//   - If f returns an error the unchanged value is written back through a
//     quorum before the error is returned, so a caller never acts on a value
//     that could still be lost.
//   - After a commit whose accept quorum also promised the next ballot (the
//     Next field of AcceptRequest, §2.2.1 of the paper), the proposer's next
//     change of that key skips the prepare phase. Any refusal ends that and
//     the change retries with both phases.
//
// Errors: ErrConflict (a *ConflictError) and ErrUnavailable mean the change was
// not applied; ErrIndeterminate means it may or may not have been, now or later.
// A timed-out change is indeterminate, never reported as failed.
//
// # Usage
//
// The caller's duties, which the package cannot check:
//
//  1. Persist before replying. An acceptor's reply is a promise that must
//     survive a crash: Storage.Store returns only once the state is durable
//     (fsync), and whoever applies the AcceptorState rules directly stores the
//     new state whenever changed is true before it sends the reply. Acceptor
//     does this; it returns no reply with a storage error.
//  2. Keep proposer IDs unique. Ballots are unique only if no two live
//     proposers share an ID, including a process and its restarted self: build
//     IDs with ProposerID and a fresh nonce per process start, as
//     RandomProposerID does.
//  3. Keep quorums overlapping. Config.Validate enforces Q1 + Q2 > N for one
//     configuration. When the acceptor set changes, follow §2.3 of the paper so
//     that every prepare quorum meets every accept quorum of both the old and
//     the new configuration while proposers may use either, then rescan every
//     key. Serve each acceptor ID from exactly one state: two processes with
//     one ID and different data break quorum intersection silently.
//  4. Write change functions pure: they may run more than once for one change
//     and on values that are never committed, and must not modify or retain
//     their argument.
//  5. Treat ErrIndeterminate as "maybe": retry such a change only if it is
//     idempotent or deduplicated (the actors layer keeps request IDs in the
//     value for this).
//  6. Serialize calls to a Proposer, and to the Begin, Retry and Complete of its
//     Proposals; a Proposer is not safe for concurrent use. A Client is.
//  7. Give the Client a Transport that delivers each request to an acceptor at
//     most once; it may drop, delay and reorder requests, and drop, delay,
//     duplicate and reorder replies. An acceptor answers a duplicate request
//     idempotently, but one that arrives after the acceptor accepted a higher
//     ballot is refused, and a proposal that hears only refusals for its accept
//     takes its value to be nowhere (see Proposal.Unsettled), which would be
//     wrong if an earlier delivery had been accepted.
//
// # What it does not do
//
// The protocol types do no I/O, read no clock, log nothing and start no
// goroutines; Acceptor and Client add storage, timers and goroutine safety but
// no network. Transports live elsewhere (natstransport; synodtest for tests).
// There is no leader, no log and no snapshot; membership change and register
// deletion (§2.3 and §3 of the paper) are the caller's.
package synod
