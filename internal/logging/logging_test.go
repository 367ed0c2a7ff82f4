package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestDedup(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewTextHandler(&buf, nil)).With("acceptor", "a1", "cluster", "c")
	log.With("acceptor", "a1", "cluster", "c").Info("m", "cluster", "c", "acceptor", "a2", "k", 1, "k", 1)
	log.WithGroup("g").Info("n", "acceptor", "a1")
	got := buf.String()
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %q", got)
	}
	if want := "msg=m acceptor=a1 cluster=c acceptor=a2 k=1"; !strings.HasSuffix(lines[0], want) {
		t.Errorf("line 1 = %q, want it to end with %q", lines[0], want)
	}
	if want := "msg=n acceptor=a1 cluster=c g.acceptor=a1"; !strings.HasSuffix(lines[1], want) {
		t.Errorf("line 2 = %q, want it to end with %q", lines[1], want)
	}
}
