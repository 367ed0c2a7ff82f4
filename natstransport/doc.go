// Package natstransport carries the CASPaxos messages of package synod over
// NATS: acceptors are NATS micro services (Serve), and proposers reach them
// through a synod.Transport (NewTransport).
//
// # Subjects
//
// Every acceptor answers on these subjects:
//
//	<prefix>.<cluster>.<acceptorID>.prepare
//	<prefix>.<cluster>.<acceptorID>.accept
//	<prefix>.<cluster>.<acceptorID>.inspect   read-only (see Inspect below)
//
// The prefix defaults to "synod" (WithPrefix). Cluster names and acceptor IDs
// are single subject tokens (see ValidateName). One subject per acceptor and
// operation keeps permissions, stats and membership changes simple. The
// service is registered with micro as "synod-acceptor" with the cluster,
// acceptor ID, prefix and wire version in its metadata. Its endpoints use no
// queue group: two instances of one acceptor would both answer, and the
// proposer counts one reply per acceptor.
//
// A proposer's Transport subscribes once to <inbox>.*.* and gives each
// request to each acceptor its own reply subject <inbox>.<request ID>.<index>,
// so replies are correlated without a goroutine or a subscription per request.
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
// # Wire format, version 1
//
// Frames are msgpack arrays (github.com/vmihailenco/msgpack/v5, pinned to
// v5.3.x) whose first element is the wire version, 1:
//
//	ballot          [counter uint, proposer str]
//	prepare request [1, key str, ballot]
//	accept request  [1, key str, ballot, value bin|nil, next ballot]
//	prepare reply   [1, from str, key str, ballot, ok bool, seen ballot, accepted ballot, value bin|nil]
//	accept reply    [1, from str, key str, ballot, ok bool, seen ballot]
//	error reply     [1, code str, message str]
//
// Decoders check the frame size first (Limits), then read field by field with
// exact field counts and types, check every length against its limit and the
// bytes left before reading, and reject trailing bytes, unknown versions,
// empty keys, keys over MaxKeySize, IDs over MaxIDSize, values over
// Limits.MaxValue (512 KiB by default) and zero or invalid ballots. A frame
// never makes a decoder allocate more than its own size.
//
// # Inspect
//
// The inspect subject answers read-only questions without side effects (no
// promise, no write): one key's promised and accepted ballots and value size,
// or a page of keys by prefix (Inspector; `synod inspect`, `synod keys`).
// Being its own subject, it can be granted alone: an operator user that may
// publish on <prefix>.<cluster>.*.inspect and subscribe to _INBOX.> can look
// inside every acceptor and cannot prepare or accept. Its frames have wire
// version InspectVersion (2):
//
//	request  [2, 1, key str]                                  one key's state
//	request  [2, 2, prefix str, after str, limit uint]       a page of keys
//	reply    [2, 1, from str, key str, promised ballot, accepted ballot, value size uint]
//	reply    [2, 2, from str, [key str, ...], more bool]
//
// A page holds the keys that start with prefix, in byte order, after the key
// after, at most limit (DefaultInspectPage if 0, at most MaxInspectPage) and
// about 500 KiB of them; more says that another page follows. Errors come
// back as error replies with the codes below.
//
// # Error replies
//
// An acceptor answers a request it cannot apply with a micro error reply: the
// Nats-Service-Error-Code and Nats-Service-Error headers, and an error reply
// frame with the same code and message as body. The codes are stable:
//
//	400 ErrMalformed              the frame does not decode
//	409 ErrAlreadyServing         answer to another instance's start-up probe
//	410 ErrStopping               the service is stopping
//	413 ErrTooLarge               frame, key, ID or value over its limit
//	422 synod.ErrInvalidRequest   empty key, zero or invalid ballot
//	500 ErrStorage                the acceptor failed to load or persist (I/O error,
//	                              corrupt record, failed store awaiting its restart)
//	503 ErrOverloaded             the acceptor's queue is full
//	505 ErrVersion                unknown wire version
//	507 ErrNoSpace                the acceptor's disk is full, or below its space
//	                              reserve for a key it does not hold
//
// None of them is a promise, an acceptance or a refusal. 500 and 507 match
// synod.ErrStorage (507 also synod.ErrNoSpace): a Transport delivers them to
// the proposal as replies with Err set, so a change whose quorum storage
// failures put out of reach ends at once with synod.ErrStorage instead of
// waiting out its deadline; a failed store may or may not have reached the
// disk, so an accept that met them may end with synod.ErrIndeterminate too. A
// Transport logs the other codes; its PrepareAt and AcceptAt return every
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
