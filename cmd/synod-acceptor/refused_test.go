package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// syncBuffer is a goroutine-safe log sink that signals every write.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{wrote: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the log contains s.
func (b *syncBuffer) waitFor(t *testing.T, s string, done <-chan error) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for !strings.Contains(b.String(), s) {
		select {
		case <-b.wrote:
		case err := <-done:
			t.Fatalf("run returned %v before logging %q:\n%s", err, s, b.String())
		case <-timeout:
			t.Fatalf("no %q in the log after 30s:\n%s", s, b.String())
		}
	}
}

// startRun runs the command in this process. stop cancels it and returns
// run's result; done yields that result too, once.
func startRun(t *testing.T, out io.Writer, args ...string) (stop func() error, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- run(ctx, args, func(string) string { return "" }, out) }()
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-ch:
			case <-time.After(30 * time.Second):
				result = errors.New("run did not return")
			}
		})
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop, ch
}

// TestRefusedStartWritesNothing: a start refused because a1 is served
// elsewhere leaves its fresh data directory empty, so the same directory
// serves as a4 once the typo is fixed.
func TestRefusedStartWritesNothing(t *testing.T) {
	s := natstest.RunServer(t)
	svc, err := natstransport.Serve(context.Background(), natstest.Connect(t, s), "c1", synod.NewAcceptor("a1", synod.NewMemoryStorage()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop(context.Background()) })

	dir := filepath.Join(t.TempDir(), "data")
	var out bytes.Buffer
	err = run(context.Background(), []string{"-id", "a1", "-cluster", "c1", "-data", dir, "-nats", s.ClientURL()},
		func(string) string { return "" }, &out)
	if !errors.Is(err, natstransport.ErrAlreadyServing) {
		t.Fatalf("second a1: got %v, want ErrAlreadyServing\n%s", err, out.String())
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		t.Errorf("the refused start wrote %d entries into %s", len(entries), dir)
	}

	logs := newSyncBuffer()
	stop, done := startRun(t, logs, "-id", "a4", "-cluster", "c1", "-data", dir, "-nats", s.ClientURL())
	logs.waitFor(t, "acceptor serving", done)
	if err := stop(); err != nil {
		t.Fatalf("a4 on the directory of the refused start: %v\n%s", err, logs.String())
	}
}

// TestShutdownLogsClean: a deliberate stop logs no disconnection warning, and
// no line repeats an attribute.
func TestShutdownLogsClean(t *testing.T) {
	s := natstest.RunServer(t)
	logs := newSyncBuffer()
	stop, done := startRun(t, logs, "-id", "a1", "-cluster", "c1", "-data", t.TempDir(), "-nats", s.ClientURL())
	logs.waitFor(t, "acceptor serving", done)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Contains(out, "disconnected") || strings.Contains(out, "level=WARN") {
		t.Errorf("a deliberate shutdown warns:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		for _, attr := range []string{"acceptor=a1", "cluster=c1"} {
			if n := strings.Count(line, attr); n != 1 {
				t.Errorf("%s appears %d times in %q", attr, n, line)
			}
		}
	}
	if !strings.Contains(out, "stopped cleanly") {
		t.Errorf("no clean stop logged:\n%s", out)
	}
}
