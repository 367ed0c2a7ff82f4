package synod_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// limitTransport refuses, before sending anything, accepts whose value is
// over a limit, as natstransport does for values over its configured maximum.
type limitTransport struct {
	*synodtest.LocalTransport
	max int
}

func (t limitTransport) Accept(ctx context.Context, to []string, req synod.AcceptRequest, replies chan<- synod.AcceptReply) error {
	if len(req.Value) > t.max {
		return fmt.Errorf("value of %d bytes over %d: %w", len(req.Value), t.max, synod.ErrInvalidRequest)
	}
	return t.LocalTransport.Accept(ctx, to, req, replies)
}

func TestClientEndsChangeTheTransportCannotSend(t *testing.T) {
	local, cfg, _ := synodtest.NewLocalCluster(3)
	c, err := synod.NewClient(synod.ProposerID("p", 1), cfg, limitTransport{local, 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Change(ctx, "k", func([]byte) ([]byte, error) { return []byte("small"), nil }); err != nil {
		t.Fatalf("small change: %v", err)
	}
	start := time.Now()
	_, err = c.Change(ctx, "k", func([]byte) ([]byte, error) { return make([]byte, 100), nil })
	if !errors.Is(err, synod.ErrInvalidRequest) || errors.Is(err, synod.ErrIndeterminate) {
		t.Fatalf("oversize change: err = %v, want ErrInvalidRequest and not indeterminate", err)
	}
	// The deadline is WithDefaultTimeout's 10s; the error must not wait for it.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("oversize change took %v, as if it waited for its deadline", d)
	}
	v, err := c.Read(ctx, "k")
	if err != nil || string(v) != "small" {
		t.Fatalf("read after refused change = %q, %v; want the unchanged value", v, err)
	}
}
