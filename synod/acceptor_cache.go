package synod

import (
	"context"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// DefaultStateCache is the default size in bytes of an Acceptor's state
// cache (see WithStateCache): 32 MiB holds about 27,000 registers of 1 KiB,
// or 110,000 of 100 bytes, and keeps an acceptor of a million 1 KiB registers
// well under 256 MiB of memory.
const DefaultStateCache = 32 << 20

// stateCacheOverhead is what one cached register costs beyond the bytes of
// its key, value and ballots' proposer IDs: the entry, its list links, its
// map slot and the allocators' rounding, counted generously so that the
// bound holds for the memory the process really uses.
const stateCacheOverhead = 192

// AcceptorOption is an optional setting of NewAcceptor.
type AcceptorOption func(*acceptorOptions)

type acceptorOptions struct {
	cacheBytes    int64
	meterProvider metric.MeterProvider
}

func defaultAcceptorOptions() acceptorOptions {
	return acceptorOptions{cacheBytes: DefaultStateCache}
}

// WithStateCache sets the size in bytes of the Acceptor's state cache
// (default DefaultStateCache; 0 or less disables it). The cache keeps the
// state of the registers the acceptor used last, as it loaded or stored it,
// so that requests on them skip the Storage's Load. It holds only states that
// are durable: a state enters it after its Store succeeded (or as Load
// returned it), and a key whose Load or Store failed leaves it. It is sound
// only while the Acceptor is the only writer of its Storage, which
// synod-acceptor guarantees (one process per data directory); whoever
// changes the Storage behind the Acceptor's back must not use it. A cached
// register costs its key, value and proposer IDs plus about 200 bytes; the
// least recently used registers leave first.
func WithStateCache(bytes int64) AcceptorOption {
	return func(o *acceptorOptions) { o.cacheBytes = max(bytes, 0) }
}

// WithAcceptorMeterProvider makes the Acceptor record its metrics through mp
// (default: none; nothing global is ever used). The instruments, prefixed
// "synod.acceptor.state_cache." and carrying the attribute acceptor (the ID):
//
//   - lookups (counter): state lookups of requests, by result: "hit" (served
//     from the cache, no storage read) or "miss" (read from the Storage);
//   - bytes and registers (gauges): the cache's size by its own count (see
//     WithStateCache) and the registers it holds.
//
// Instruments that mp fails to create are left out.
func WithAcceptorMeterProvider(mp metric.MeterProvider) AcceptorOption {
	return func(o *acceptorOptions) { o.meterProvider = mp }
}

// stateCache is a bounded, least-recently-used cache of register states. A
// nil *stateCache is a disabled cache: it never hits and holds nothing. Its
// callers hold the key's lock (Acceptor.lock) around each get and the put or
// drop that follows, so a key's entry changes in the order of its requests.
type stateCache struct {
	mu     sync.Mutex
	max    int64
	used   int64
	m      map[string]*cacheEntry
	lru    cacheEntry // sentinel: lru.next is the most recently used
	hits   int64
	misses int64
}

type cacheEntry struct {
	key        string
	st         AcceptorState
	size       int64
	prev, next *cacheEntry
}

func newStateCache(maxBytes int64) *stateCache {
	if maxBytes <= 0 {
		return nil
	}
	c := &stateCache{max: maxBytes, m: make(map[string]*cacheEntry)}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	return c
}

// entrySize is what caching st under key costs.
func entrySize(key string, st AcceptorState) int64 {
	return int64(len(key)+len(st.Value)+len(st.Promised.Proposer)+len(st.Accepted.Proposer)) + stateCacheOverhead
}

func (c *stateCache) unlink(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (c *stateCache) pushFront(e *cacheEntry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

// get returns key's cached state. The state's Value is shared with the
// cache: the caller must not modify it, nor hand it to code that may.
func (c *stateCache) get(key string) (AcceptorState, bool) {
	if c == nil {
		return AcceptorState{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[key]
	if e == nil {
		c.misses++
		return AcceptorState{}, false
	}
	c.hits++
	if c.lru.next != e {
		c.unlink(e)
		c.pushFront(e)
	}
	return e.st, true
}

// put caches st, a durable state of key, evicting the least recently used
// entries beyond the cache's size. It copies what st shares with its caller
// (a request's value may live in a buffer the transport reuses), except what
// it already holds.
func (c *stateCache) put(key string, st AcceptorState) {
	if c == nil {
		return
	}
	size := entrySize(key, st)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[key]
	if size > c.max {
		if e != nil {
			c.remove(e)
		}
		return
	}
	if e == nil {
		e = &cacheEntry{key: strings.Clone(key)}
		c.m[e.key] = e
		c.pushFront(e)
	} else {
		c.used -= e.size
		if c.lru.next != e {
			c.unlink(e)
			c.pushFront(e)
		}
	}
	st.Promised.Proposer = reuse(st.Promised.Proposer, e.st.Promised.Proposer, e.st.Accepted.Proposer)
	st.Accepted.Proposer = reuse(st.Accepted.Proposer, st.Promised.Proposer, e.st.Accepted.Proposer)
	switch old := e.st.Value; {
	case sameBytes(st.Value, old):
		st.Value = old
	case st.Value != nil && old != nil && len(st.Value) == len(old):
		// Nothing outside the cache holds its copy (replies and State get
		// their own), so a value of the same size overwrites it.
		copy(old, st.Value)
		st.Value = old
	default:
		// Cap equal to length: an append to a value handed out never
		// writes into the cache's copy.
		st.Value = slices.Clip(slices.Clone(st.Value))
	}
	e.st, e.size = st, size
	c.used += size
	for c.used > c.max {
		c.remove(c.lru.prev)
	}
}

// reuse returns s as one of the strings the cache already holds when it
// equals one, and otherwise a copy of s (a request's strings may alias its
// frame's buffer).
func reuse(s string, held ...string) string {
	for _, h := range held {
		if s == h {
			return h
		}
	}
	return strings.Clone(s)
}

// sameBytes reports whether a and b are the same slice (same array, length
// and nil-ness), as when a state's value came from the cache unchanged.
func sameBytes(a, b []byte) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	return len(a) == 0 || &a[0] == &b[0]
}

// drop removes key: its state may not be what the Storage holds.
func (c *stateCache) drop(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[key]; e != nil {
		c.remove(e)
	}
}

func (c *stateCache) remove(e *cacheEntry) {
	c.unlink(e)
	delete(c.m, e.key)
	c.used -= e.size
}

// CacheStats are an Acceptor's state cache counts (see WithStateCache).
type CacheStats struct {
	Hits, Misses int64 // state lookups served from the cache, and from the Storage
	Bytes        int64 // the cache's size by its own count
	Registers    int   // registers cached
}

func (c *stateCache) stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Hits: c.hits, Misses: c.misses, Bytes: c.used, Registers: len(c.m)}
}

// CacheStats returns the counts of the Acceptor's state cache; all zero when
// it has none.
func (a *Acceptor) CacheStats() CacheStats { return a.cache.stats() }

// observe registers the cache's instruments with mp under the acceptor's ID.
// Lookups are counted in the cache and read when mp collects, so that a
// request pays no metric call.
func (c *stateCache) observe(mp metric.MeterProvider, id string) {
	if c == nil || mp == nil {
		return
	}
	m := mp.Meter(MeterName)
	lookups, err1 := m.Int64ObservableCounter("synod.acceptor.state_cache.lookups", metric.WithUnit("{lookup}"),
		metric.WithDescription("Register state lookups, by result: hit (no storage read) or miss."))
	size, err2 := m.Int64ObservableGauge("synod.acceptor.state_cache.bytes", metric.WithUnit("By"),
		metric.WithDescription("Size of the acceptor's register state cache."))
	regs, err3 := m.Int64ObservableGauge("synod.acceptor.state_cache.registers", metric.WithUnit("{register}"),
		metric.WithDescription("Registers in the acceptor's state cache."))
	if err1 != nil || err2 != nil || err3 != nil {
		return
	}
	acc := attribute.String("acceptor", id)
	hit := metric.WithAttributes(acc, attribute.String("result", "hit"))
	miss := metric.WithAttributes(acc, attribute.String("result", "miss"))
	attrs := metric.WithAttributes(acc)
	// The callback lives as long as mp: an Acceptor has no Close.
	_, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := c.stats()
		o.ObserveInt64(lookups, s.Hits, hit)
		o.ObserveInt64(lookups, s.Misses, miss)
		o.ObserveInt64(size, s.Bytes, attrs)
		o.ObserveInt64(regs, int64(s.Registers), attrs)
		return nil
	}, lookups, size, regs)
}
