// Package natstransport carries the CASPaxos messages of package synod over
// NATS: acceptors are NATS micro services (Serve), and proposers reach them
// through a synod.Transport (NewTransport).
//
// # Subjects
//
// Every acceptor answers on these subjects:
//
//	<prefix>.<cluster>.<acceptorID>.frame     version-2 batches (what proposers send)
//	<prefix>.<cluster>.<acceptorID>.prepare   version-1 single prepare
//	<prefix>.<cluster>.<acceptorID>.accept    version-1 single accept
//	<prefix>.<cluster>.<acceptorID>.inspect   read-only (see Inspect below)
//	<prefix>.<cluster>.<acceptorID>.admin     membership and garbage collection (see Admin below)
//
// The prefix defaults to "synod" (WithPrefix). Cluster names and acceptor IDs
// are single subject tokens (see ValidateName). One subject per acceptor and
// operation keeps permissions, stats and membership changes simple. The
// service is registered with micro as "synod-acceptor" with the cluster,
// acceptor ID, prefix and wire version in its metadata. Its endpoints use no
// queue group: two instances of one acceptor would both answer, and the
// proposer counts one reply per acceptor.
//
// A proposer's Transport sends only version-2 frames. It subscribes once to
// <inbox>.* and gives each frame its own reply subject <inbox>.<frame ID>, so
// replies are correlated without a goroutine or a subscription per request.
// Frame IDs start at 1: <inbox>.0 carries an acceptor's announcement, a reply
// frame from it with no items, sent after its NATS connection was lost and
// came back, to the inboxes it had frames from in the last ten minutes. The
// Transport then ends its frames in flight to that acceptor, whose requests
// or replies may have been lost with the connection, instead of waiting for
// replies that will not come.
// A request frame with no items is answered at once with a reply frame with
// no items, outside the acceptor's queue and storage: a Transport sends a
// few from time to time to measure how far each acceptor is (Transport.Near,
// WithNearness), and a thrifty synod.Client fills its subset from the
// nearest. An acceptor of the previous release answers them too, after its
// queue.
// The version-1 subjects stay so that proposers of the previous release keep
// working during a rolling upgrade; PrepareAt and AcceptAt still use them.
//
// # Seeing the acceptors with the nats CLI
//
// `nats micro ls synod-acceptor` lists every acceptor instance, with its
// instance ID. `nats micro info` and `nats micro stats` without an instance
// show only the first instance to answer; name the instance to see a given
// acceptor:
//
//	nats micro ls synod-acceptor
//	nats micro info synod-acceptor <instance ID>
//	nats micro stats synod-acceptor <instance ID>
//
// (`synod acceptors` lists every acceptor with its cluster, ID and instance
// ID.) In stats, each endpoint's request, error and latency counters are its
// own, but the "data" block of every endpoint is the same service-wide
// StatsData: requests handled, bad, overloaded and failed across all the
// acceptor's endpoints, and the bytes queued now. Do not add them up across
// endpoints.
//
// # Batching
//
// A Transport keeps one queue per acceptor. While a frame to an acceptor is in
// flight (see WithFramesInFlight; one by default), the requests for it, of
// any keys and phases, queue; when the frame's replies are in (or every
// request in it was abandoned because its context ended) the queue leaves as
// the next frame. A lone request leaves at once: there is no linger timer.
// The acceptor applies a frame's items with one synod.Acceptor.ApplyBatch:
// one storage batch, one sync (pebblestore's StoreBatch), then one reply
// frame. Few messages and few commits: without frames every request and reply
// was its own NATS message and its own Pebble commit, and requests waited on
// nats.go's connection lock and Pebble's commit pipeline. Each request is
// still delivered at most once: a frame is never resent.
//
// # Wire format
//
// Messages are msgpack arrays (github.com/vmihailenco/msgpack/v5, pinned to
// v5.3.x, decodes every layout) whose first element is the wire version.
// Integers are unsigned and compact, strings are msgpack str, values are bin,
// or nil for an empty register.
//
//	ballot          [counter uint, proposer str]
//
// Version 2 (WireVersion), on the .frame subject:
//
//	request frame   [2, [item, ...]]
//	  prepare item  [1, seq uint, epoch uint, key str, ballot]
//	  accept item   [2, seq uint, epoch uint, key str, ballot, value bin|nil, next ballot]
//	  read item     [3, seq uint, epoch uint, key str]
//	reply frame     [2, from str, [ritem, ...]]
//	  prepare reply [1, seq uint, key str, ballot, ok bool, seen ballot, accepted ballot, value bin|nil]
//	  accept reply  [2, seq uint, key str, ballot, ok bool, seen ballot]
//	  read reply    [3, seq uint, key str, promised ballot, accepted ballot, value bin|nil]
//	  error item    [0, seq uint, code str, message str, detail bin|nil]
//
// The first field of an item is its kind (synod.Op; 0 is an error). seq
// correlates an item with its reply item; the acceptor echoes it. epoch is the
// proposer's configuration epoch (synod.Config.Epoch, 0 when never
// reconfigured). A read item changes nothing and costs no disk write. The
// acceptor answers every item of a frame, in order, in one reply frame, or in
// several to the same reply subject when the replies exceed the message limit
// (the smaller of Limits.MaxMessage and the server's max_payload). An item it
// cannot serve gets an error item with one of the codes below; the other
// items are served. detail is code-specific: for 412, the acceptor's current
// configuration.
//
// Version 1, on the .prepare and .accept subjects, unchanged:
//
//	prepare request [1, key str, ballot]
//	accept request  [1, key str, ballot, value bin|nil, next ballot]
//	prepare reply   [1, from str, key str, ballot, ok bool, seen ballot, accepted ballot, value bin|nil]
//	accept reply    [1, from str, key str, ballot, ok bool, seen ballot]
//	error reply     [1, code str, message str]
//
// Decoders check the message size first (Limits), then read field by field
// with exact field counts and types, check every length against its limit and
// the bytes left before reading, and reject trailing bytes, unknown versions
// and kinds, keys over MaxKeySize, IDs over MaxIDSize, values over
// Limits.MaxValue (512 KiB by default), frames over MaxFrameItems items (1024)
// and, in replies and version-1 requests, empty keys and zero or invalid
// ballots. A version-1 message never makes a decoder allocate more than its
// own size; a frame, no more than the items it really holds (an announced
// count or length is never allocated). A request frame that does not decode
// fails as a whole; the semantic checks of its items (empty key, zero ballot,
// next not above ballot) fail only that item, with 422.
//
// # Inspect
//
// The inspect subject answers read-only questions without side effects (no
// promise, no write): one key's promised and accepted ballots and value size,
// a page of keys by prefix, or the configuration the acceptor serves
// (Inspector; `synod inspect`, `synod keys`).
// Being its own subject, it can be granted alone: an operator user that may
// publish on <prefix>.<cluster>.*.inspect and subscribe to _INBOX.> can look
// inside every acceptor and cannot prepare or accept. Its frames have wire
// version InspectVersion (2):
//
//	request  [2, 1, key str]                                  one key's state
//	request  [2, 2, prefix str, after str, limit uint]       a page of keys
//	request  [2, 3]                                           the configuration served
//	reply    [2, 1, from str, key str, promised ballot, accepted ballot, value size uint]
//	reply    [2, 2, from str, [key str, ...], more bool]
//	reply    [2, 3, from str, config bin|nil]
//
// The configuration is synod.Config's binary encoding as on the admin
// subject (nil: never given one, epoch 0); reading it needs only the inspect
// permission. Kind 3 is newer than kinds 1 and 2, which did not change: an
// older acceptor answers it with 400 (unknown kind).
//
// A page holds the keys that start with prefix, in byte order, after the key
// after, at most limit (DefaultInspectPage if 0, at most MaxInspectPage) and
// about 500 KiB of them; more says that another page follows. Errors come
// back as error replies with the codes below.
//
// # Admin
//
// The admin subject serves what a synod.Reconfigurer needs of one acceptor
// (synod.Admin, implemented by Transport): install a configuration (the
// acceptor persists it before it answers and from then on refuses requests
// of older epochs with 412), read the configuration served, list keys, read a
// key's full state, and forget a deleted key below a ballot floor. It is its
// own subject so that NATS permissions grant it to operators only (publish on
// <prefix>.<cluster>.*.admin): proposers never need it. Messages have wire
// version AdminVersion (2); a configuration is synod.Config's binary
// encoding, nil for none:
//
//	request  [2, 1, config bin]              install
//	request  [2, 2]                          read the configuration
//	request  [2, 3, after str, limit uint]   a page of keys after after (limit 1..1000)
//	request  [2, 4, key str]                 a key's state
//	request  [2, 5, key str, floor uint]     forget key if inert below floor
//	request  [2, 6]                          compact: reclaim the space of forgotten keys now
//	reply    [2, kind, from str, config bin|nil]                                  install, config
//	reply    [2, 3, from str, [key str, ...], more bool]
//	reply    [2, 4, from str, key str, promised ballot, accepted ballot, value bin|nil]
//	reply    [2, 5, from str, key str, removed bool]
//	reply    [2, 6, from str, bytes before uint, bytes after uint]                 compact
//	reply    [2, 0, from str, code str, message str, detail bin|nil]              an error
//
// An error reply also sets the micro error headers. A stale install gets 412
// with the acceptor's configuration as detail (a *synod.StaleEpochError on
// the client side), a different configuration under the same epoch 406
// (synod.ErrInvalidConfig), forgetting above the acceptor's floor 422.
//
// # Error replies
//
// An acceptor answers a message it cannot take as a whole (undecodable,
// stopping, overloaded, a probe) with a micro error reply: the
// Nats-Service-Error-Code and Nats-Service-Error headers, and the version-1
// error reply with the same code and message as body, on every subject. An
// item of a frame that it cannot serve gets an error item with the same codes.
// The codes are stable:
//
//	400 ErrMalformed              the message does not decode
//	406 (CodeInvalidConfig)       synod.ErrInvalidConfig: an admin request the acceptor refuses
//	409 ErrAlreadyServing         answer to another instance's start-up probe
//	410 ErrStopping               the service is stopping
//	412 (CodeStaleEpoch)          the request's epoch is older than the acceptor's; detail is its configuration
//	413 ErrTooLarge               message, key, ID or value over its limit
//	422 synod.ErrInvalidRequest   empty key, zero or invalid ballot
//	500 ErrStorage                the acceptor failed to load or persist (I/O error,
//	                              corrupt record, failed store awaiting its restart)
//	503 ErrOverloaded             the acceptor's queue is full
//	505 ErrVersion                unknown wire version
//	507 ErrNoSpace                the acceptor's disk is full, or below its space
//	                              reserve for a key it does not hold
//
// None of them is a promise, an acceptance or a refusal. 500 and 507 match
// synod.ErrStorage (507 also synod.ErrNoSpace): a Transport delivers them, and
// every other error the acceptor sends for a request or for the frame that
// carried it, to the proposal as replies with Err set (a *RemoteError); the
// proposal counts storage failures, so a change whose quorum storage failures
// put out of reach ends at once with synod.ErrStorage instead of waiting out
// its deadline, and ignores the others. A failed store may or may not have
// reached the disk, so an accept that met them may end with
// synod.ErrIndeterminate too. PrepareAt, AcceptAt and ReadAt return every
// error reply as *RemoteError, which errors.Is matches against the sentinel of
// its code. An acceptor logs failed requests at most once per second per
// operation and code, with the count of those it did not log.
//
// It needs NATS server 2.2 or later: micro error replies use message headers,
// and Serve's probe relies on the server's "no responders" answer.
//
// # Safety
//
// The acceptor persists (synod.Storage.Store returns only once durable)
// before it publishes a reply. Serve refuses to start when another instance
// already answers on its subjects. Stop finishes and answers every request it
// has taken before it returns.
package natstransport
