// Package synod is the CASPaxos protocol (Rystsov, "CASPaxos: Replicated State
// Machines without logs", arXiv:1802.07000): single-decree Paxos used as a
// rewritable register, one register per key. A caller never writes a value; it
// submits a change function f(current) -> next, and a proposer runs f inside a
// Paxos round, so every change applies atomically to the latest value. A read is
// the identity change, or, when the acceptors agree, one round trip that writes
// nothing (see "Reads with no disk write"). There is no log, so nothing grows
// but the values.
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
//   - LeanRead is a read with no disk write, a step machine like Proposal.
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
// # Change batching
//
// A Client runs the rounds of one key one at a time. Changes of the key that
// arrive while its round runs queue, and the next round applies all of them
// (Proposer.BeginBatch): the functions run in call order, each on the value
// the one before returned, and the last value is committed with one accept
// (one fsync per acceptor) instead of one round per change. Each caller gets
// the value its own function returned (Proposal.Outcome); a function that
// errs is skipped and its caller gets its error with the value it was given,
// committed like a write-back. Why this is linearizable: every change of the
// batch was called before the round began and returns after its commit, so
// each can take effect at the commit, in batch order, and the value each
// caller sees is the register's value right after its change. A retry runs
// the batch again only when Begin would run its one function again, so no
// function's result is committed twice; a round that ends indeterminate (or
// with a conflict, ErrUnavailable, ErrStorage) ends so for every change in it.
// There is no timer: a lone change runs at once. Reads batch only with reads,
// so a read never becomes indeterminate. WithBatching(false) turns it off.
//
// # Thrifty phases
//
// By default (WithThrifty), a Client sends each one-round-trip accept first
// to as few acceptors as can win it, Q2 of them: the client's own subset
// (ThriftySplit of its proposer ID, so that its requests to one acceptor
// share large frames); with three acceptors that is two requests, fsyncs and
// replies per change instead of three. Prepares and the accepts that follow
// them, where proposers contend, go to every acceptor. The others get the
// accept too (a hedge) once the subset alone can no longer win (a reply that
// is not a yes) or a delay adapted to recent latencies passes; acceptors that stay
// silent or fail are avoided for a second. Safety does not depend on who
// gets a request: a Proposal counts the replies it gets, and acceptors that
// never got a request never answer. One rule keeps retries determinate: an
// accept carrying the change's result that the whole subset refused is not
// hedged but withheld from the others (Proposal.Withhold), so its result is
// known to be nowhere; a driver must withhold only acceptors that never got
// the request, not even through a hedge. Lean reads still ask every acceptor.
//
// A phase or lean read that a quorum answered without a decision (a split
// vote, disagreeing reads: Proposal.QuorumHeard, LeanRead.QuorumHeard) can
// only be decided by the acceptors still silent, which are paused or cut off
// as often as slow. The Client waits for them for two hedge delays (thrifty)
// or a quarter of the phase timeout, then gives the phase up as if it timed
// out and retries with every acceptor (a lean read falls back to a round).
//
// # Reads with no disk write
//
// A read through a round writes: its prepare is a promise that each acceptor
// persists. Client.Read first tries a lean read instead (LeanRead): it asks
// every acceptor for its accepted ballot and value (ReadRequest, which
// changes nothing), and returns the value as soon as R = max(Q1, Q2)
// acceptors report the same accepted ballot b. Otherwise (the replies
// disagree, acceptors fail, too few answer within a phase timeout) it reads
// through a full round. Why the answer is linearizable, with W the set of R
// acceptors that reported b, whose replies all left after the read began:
//
//  1. The value v of b is chosen by the time the read returns: |W| >= Q2
//     acceptors accepted b, an accept quorum. (A ballot carries one value:
//     ballots are unique per attempt, and a one-round-trip entry is claimed
//     by one change.)
//  2. Nothing newer than v was chosen before the read began. Suppose b' > b
//     was chosen then: an accept quorum Q2' had accepted b'. |W| >= Q1 and
//     Q1 + Q2 > N, so some acceptor of W is in Q2'; it accepted b' before
//     the read began and answered the read later, and an acceptor's
//     accepted ballot never decreases, so it would have reported a ballot
//     of at least b', not b.
//  3. Nothing that began after the read ended is in v, or older than v. A
//     change is chosen at a ballot some Q1 acceptors promised before any of
//     them accepted it (by a prepare, or by the Next of an earlier accept).
//     Once b is accepted anywhere, a prepare quorum has promised b, and those
//     acceptors refuse every smaller ballot; a change that begins after the
//     read ended sends its accepts later still, so a ballot below b reaches
//     at most N - Q1 < Q2 acceptors and is never chosen.
//
// Chosen values form a chain in ballot order, each built on the one before
// (every prepare quorum meets every accept quorum), and a change or round
// read takes effect at its chosen ballot. By 2 the read's value is at least
// as new as everything that completed before it began, by 1 and 3 it is a
// value of the chain that no later-starting operation precedes: the read
// takes effect right after b, somewhere inside its own interval. A higher
// promise in the replies does not matter: it is an attempt in flight whose
// value is not chosen yet, or 2 would have shown it. Fewer than R matching
// replies are not enough: Q2 - 1 of them may hold a value that is never
// chosen, and Q1 - 1 of them may all miss a newer chosen value. The
// simulation in synodtest checks lean reads with porcupine, and catches both
// of those mistakes.
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
//     configuration. Change the acceptor set only in the steps described under
//     "Membership change" (ValidateStep, PlanSteps): fence, then rescan, then
//     the next step. Serve each acceptor ID from exactly one state: two
//     processes with one ID and different data break quorum intersection
//     silently, and an acceptor whose data was lost must never return under
//     its old ID.
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
//  8. Let an Acceptor be the only writer of its Storage while it runs: it
//     caches the durable state of the registers it used last
//     (WithStateCache) and would not see a change made behind its back. A
//     new Acceptor over the Storage starts with an empty cache.
//
// # Membership change
//
// Paper: §2.3. A configuration (Config) is an acceptor set, quorum sizes, an
// epoch and a ballot floor. Proposers send their epoch with every request; an
// acceptor that serves a newer epoch refuses the request with a
// *StaleEpochError carrying its configuration, which the proposer adopts
// (Proposer.Adopt) before it retries. An acceptor persists a configuration
// before it acknowledges it, so a restart never un-fences a stale proposer.
// Requests with an epoch at or above the acceptor's own are served. A proposer
// none of whose acceptors answers any more (all replaced while it slept)
// learns the current configuration from its ConfigSource (WithConfigSource;
// natstransport's Transport.DiscoverConfig), so proposers never restart.
//
// A Reconfigurer drives the steps below over an Admin (synodtest's
// LocalTransport in process; natstransport's Transport over the acceptors'
// admin subjects, which `synod reconfigure` and `synod gc` use).
//
// A reconfiguration is a sequence of steps C(e) -> C(e+1), each passing
// ValidateStep: every prepare quorum of either configuration meets every
// accept quorum of the other. Each step runs in this order:
//
//  1. Claim epoch e+1 with C(e+1) (a compare-and-set on a register, so two
//     operators cannot install different configurations under one epoch).
//  2. Fence: install C(e+1) on every acceptor of C(e) and C(e+1) except
//     those declared dead, and wait until each has acknowledged it. From then
//     on no acceptor serves a request of epoch e or older.
//  3. Rescan: run a full round (prepare and accept, the identity change) on
//     every key any living acceptor of C(e) holds, under C(e+1).
//  4. Only then may the next step begin.
//
// Why this is safe. While both C(e) and C(e+1) are in use, Paxos's argument
// goes through unchanged: it needs only that the prepare quorum of every
// ballot meets the accept quorum of every lower ballot that was chosen, and
// ValidateStep makes this hold whichever of the two configurations each of
// the ballots used, in whatever order in time. A step may not rely on C(e-1)
// any more: after the fence of step e-1 no acceptor serves C(e-1), so every
// promise and acceptance of C(e-1) happened before the rescan under C(e)
// began, and for each key the rescan's prepare quorum (which meets every
// accept quorum of C(e-1)) found any value chosen under C(e-1) and rewrote
// it, at a higher ballot, to an accept quorum of C(e). So when C(e+1)
// appears, every chosen value is held by an accept quorum of C(e) or later,
// and only C(e) and C(e+1) matter. Dead acceptors never answer again and so
// need no fence; PlanSteps checks that enough living ones remain.
//
// What is unsafe, and why the order is fixed: rescanning before the fence
// completes lets a stale proposer choose a value under C(e) after its key
// was rescanned; fencing only "enough" acceptors (fewer than a quorum of
// C(e) left unfenced) still lets a stale proposer, whose prepare reached the
// fenced ones before the fence, complete its prepare at the unfenced ones
// later and leave a value at a high ballot that a later configuration's
// prepare quorum picks over a chosen one. The simulation in synodtest runs
// the first of these broken orders, and a plan that skips the rescan, and its
// checker catches both; the second is argued here only.
//
// Replacing a dead acceptor is two steps (add the new ID, then remove the
// dead one) because no single step can trade one acceptor for another and
// keep the quorums intersecting. A proposer drops its one-round-trip cache
// when it adopts a configuration: an entry is a prepare quorum of the old one.
//
// # Deletion
//
// Paper: §3. Deleting a register writes its tombstone through an ordinary
// round: the empty value (Client.Delete). A deleted register reads as empty
// and can be written again like a fresh one. Garbage collection then removes
// the key from every acceptor's storage, ballots included, without letting
// anything older come back:
//
//  1. Pick the keys that every living member of the configuration holds with
//     no value, and a floor F at or above every ballot counter they hold.
//  2. Take a membership step to the same acceptors with the next epoch and
//     floor F, and fence it as above. From then on no acceptor serves a
//     request of an older epoch (a late accept, a stale one-round-trip entry,
//     a partitioned proposer all carry one) or with a ballot counter at or
//     below F; proposers that adopt the configuration start above F and drop
//     their one-round-trip entries.
//  3. Confirm, by reading every living member again, that none holds a value
//     for the key at a ballot counter at or below F. Such states can no
//     longer change, so the check stays true.
//  4. Ask every living member to forget the key (Acceptor.Forget), which
//     removes it only if its state is still empty with ballots at or below F.
//
// Why nothing comes back: every later round runs with ballots above F. Its
// prepare quorum sees, for the key, forgotten (empty) states, empty states
// at or below F, or states above F, which were written by rounds after the
// deletion. It builds on the highest of these: a value written after the
// deletion, or the empty value. No acceptor that can still answer holds an
// older value at or below F (step 3), so none can be picked.
//
// # What it does not do
//
// The protocol types do no I/O, read no clock, log nothing and start no
// goroutines; Acceptor and Client add storage, timers and goroutine safety but
// no network. Transports live elsewhere (natstransport; synodtest for tests).
// There is no leader, no log and no snapshot.
package synod
