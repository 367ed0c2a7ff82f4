package natstransport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/pebblestore"
)

const testCluster = "c1"

// harness runs n acceptor services of cluster testCluster, each on its own
// connection, over storages that survive a stop and start (memory, or Pebble
// in a directory that is reopened).
type harness struct {
	t       testing.TB
	connect func(testing.TB) *nats.Conn
	ids     []string
	opts    []Option

	mu     sync.Mutex
	open   func(i int) (synod.Storage, func() error)
	stores []synod.Storage
	closes []func() error
	svcs   []*Service
	accs   []*synod.Acceptor
}

// storageKind selects the harness's storage.
type storageKind int

const (
	memoryStorage storageKind = iota
	pebbleStorage
)

func newHarness(t testing.TB, connect func(testing.TB) *nats.Conn, n int, kind storageKind, opts ...Option) *harness {
	t.Helper()
	h := &harness{t: t, connect: connect, opts: opts}
	mems := make([]*synod.MemoryStorage, n)
	dirs := make([]string, n)
	for i := range n {
		h.ids = append(h.ids, fmt.Sprintf("a%d", i))
		mems[i] = synod.NewMemoryStorage()
		if kind == pebbleStorage {
			dirs[i] = t.TempDir()
		}
	}
	h.open = func(i int) (synod.Storage, func() error) {
		if kind == memoryStorage {
			return mems[i], func() error { return nil }
		}
		s, err := pebblestore.Open(dirs[i], pebblestore.WithIdentity(testCluster, h.ids[i]))
		if err != nil {
			t.Fatalf("open pebble store %s: %v", dirs[i], err)
		}
		return s, s.Close
	}
	h.stores = make([]synod.Storage, n)
	h.closes = make([]func() error, n)
	h.svcs = make([]*Service, n)
	h.accs = make([]*synod.Acceptor, n)
	for i := range n {
		h.start(i)
	}
	t.Cleanup(func() {
		for i := range n {
			h.stop(i)
		}
	})
	return h
}

func (h *harness) config() synod.Config { return synod.Config{Acceptors: h.ids} }

// start serves acceptor i on a new connection.
func (h *harness) start(i int) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.svcs[i] != nil {
		return
	}
	store, closeStore := h.open(i)
	acc := synod.NewAcceptor(h.ids[i], store)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	svc, err := Serve(ctx, h.connect(h.t), testCluster, acc, h.opts...)
	if err != nil {
		_ = closeStore()
		h.t.Fatalf("serve %s: %v", h.ids[i], err)
	}
	h.stores[i], h.closes[i], h.svcs[i], h.accs[i] = store, closeStore, svc, acc
}

// stop stops acceptor i and closes its storage.
func (h *harness) stop(i int) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.svcs[i] == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.svcs[i].Stop(ctx); err != nil {
		h.t.Errorf("stop %s: %v", h.ids[i], err)
	}
	if err := h.closes[i](); err != nil {
		h.t.Errorf("close storage of %s: %v", h.ids[i], err)
	}
	h.svcs[i], h.accs[i] = nil, nil
}

// acceptor returns the running acceptor i (nil if stopped).
func (h *harness) acceptor(i int) *synod.Acceptor {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.accs[i]
}

// client returns a synod.Client with its own connection and Transport.
func (h *harness) client(name string, seed uint64, opts ...synod.Option) (*synod.Client, *Transport) {
	h.t.Helper()
	tr, err := NewTransport(h.connect(h.t), testCluster, h.opts...)
	if err != nil {
		h.t.Fatalf("new transport: %v", err)
	}
	h.t.Cleanup(func() { _ = tr.Close() })
	opts = append([]synod.Option{synod.WithRand(rand.New(rand.NewPCG(seed, seed)))}, opts...)
	c, err := synod.NewClient(synod.ProposerID(name, seed), h.config(), tr, opts...)
	if err != nil {
		h.t.Fatalf("new client: %v", err)
	}
	return c, tr
}

// inProcess connects clients to s without a socket.
func inProcess(s *server.Server) func(testing.TB) *nats.Conn {
	return func(t testing.TB) *nats.Conn { return natstest.Connect(t, s) }
}

// increment is a change that adds one to a decimal counter.
func increment(cur []byte) ([]byte, error) {
	n := 0
	if len(cur) > 0 {
		var err error
		if n, err = strconv.Atoi(string(cur)); err != nil {
			return nil, err
		}
	}
	return strconv.AppendInt(nil, int64(n+1), 10), nil
}

func counter(t testing.TB, v []byte) int {
	t.Helper()
	if len(v) == 0 {
		return 0
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		t.Fatalf("counter %q: %v", v, err)
	}
	return n
}

// testSeed returns a seed for the test's randomness and logs it.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return seed
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// logBuffer is a goroutine-safe log sink for slog.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// blockingStorage is a MemoryStorage whose Store can be held for chosen keys:
// it reports each held Store on entered and waits for release.
type blockingStorage struct {
	*synod.MemoryStorage
	hold    func(key string) bool
	entered chan string
	release chan struct{}
}

func newBlockingStorage(hold func(string) bool) *blockingStorage {
	return &blockingStorage{
		MemoryStorage: synod.NewMemoryStorage(),
		hold:          hold,
		entered:       make(chan string, 100),
		release:       make(chan struct{}),
	}
}

func (s *blockingStorage) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	if s.hold(key) {
		s.entered <- key
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.MemoryStorage.Store(ctx, key, st)
}

// failingStorage fails every Store.
type failingStorage struct{ *synod.MemoryStorage }

func (failingStorage) Store(context.Context, string, synod.AcceptorState) error {
	return fmt.Errorf("disk on fire")
}
