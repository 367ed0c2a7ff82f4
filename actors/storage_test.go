package actors_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/actors"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// fullStorage refuses every Store with ErrNoSpace while full is set.
type fullStorage struct {
	*synod.MemoryStorage
	full    atomic.Bool
	refused atomic.Int64
}

func (s *fullStorage) Store(ctx context.Context, key string, st synod.AcceptorState) error {
	if s.full.Load() {
		s.refused.Add(1)
		return fmt.Errorf("disk: %w", synod.ErrNoSpace)
	}
	return s.MemoryStorage.Store(ctx, key, st)
}

// TestRequestSeesStorageErrors: when two of three acceptors are out of
// space, a request fails with an ErrorReply that the caller reads as
// synod.ErrStorage and synod.ErrNoSpace: a one-round-trip accept that may
// have landed at the third acceptor is indeterminate as well; a round that
// failed at its prepare is not (nothing was applied). WithRetry retries such
// a request until the space is back.
func TestRequestSeesStorageErrors(t *testing.T) {
	var (
		acs    []*synod.Acceptor
		stores []*fullStorage
		cfg    synod.Config
	)
	for i := range 3 {
		s := &fullStorage{MemoryStorage: synod.NewMemoryStorage()}
		stores = append(stores, s)
		acs = append(acs, synod.NewAcceptor(fmt.Sprintf("a%d", i), s))
		cfg.Acceptors = append(cfg.Acceptors, acs[i].ID())
	}
	reg := newClients(t, synodtest.NewLocalTransport(acs...), cfg, testSeed(t), 1)[0]
	sys := quiet(t)
	to := actors.Local(sys, spawn(t, sys, reg, "bank"))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := add(ctx, to, 10); err != nil {
		t.Fatal(err)
	}
	stores[0].full.Store(true)
	stores[1].full.Store(true)
	_, err := actors.Request(ctx, to, wrapperspb.Int64(5)) // one round trip
	if !errors.Is(err, synod.ErrStorage) || !errors.Is(err, synod.ErrNoSpace) || !errors.Is(err, synod.ErrIndeterminate) || errors.Is(err, actors.ErrHandler) {
		t.Fatalf("fast-path request with two acceptors full: %v, want an error matching synod.ErrStorage, synod.ErrNoSpace and synod.ErrIndeterminate", err)
	}
	t.Log(err)
	_, err = actors.Request(ctx, to, wrapperspb.Int64(5)) // two phases
	if !errors.Is(err, synod.ErrStorage) || !errors.Is(err, synod.ErrNoSpace) || errors.Is(err, synod.ErrIndeterminate) || errors.Is(err, actors.ErrHandler) {
		t.Fatalf("request with two acceptors full: %v, want an error matching synod.ErrStorage and synod.ErrNoSpace only", err)
	}
	t.Log(err)

	done := make(chan error, 1)
	go func() {
		_, err := actors.Request(ctx, to, wrapperspb.Int64(7), actors.WithRetry(time.Second))
		done <- err
	}()
	// Free the space once the retried request was refused a few times.
	for before := stores[1].refused.Load(); stores[1].refused.Load() < before+3; {
		if ctx.Err() != nil {
			t.Fatal("the request was not retried")
		}
		time.Sleep(time.Millisecond)
	}
	stores[0].full.Store(false)
	stores[1].full.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("request retried until the space came back: %v", err)
	}
	// 10, 7, and 5 if the indeterminate request landed; the refused one
	// was not applied.
	if got := balance(t, to); got != 17 && got != 22 {
		t.Errorf("balance = %d, want 17 or 22", got)
	}
}

// TestErrorReplyCodes pins how each error code reads on the caller's side,
// after a protobuf round trip: STORAGE and NO_SPACE match synod.ErrStorage
// (NO_SPACE synod.ErrNoSpace too); an INDETERMINATE reply names a storage
// cause in its Reason; a code this version does not know reads as
// indeterminate, never as "not applied".
func TestErrorReplyCodes(t *testing.T) {
	tests := []struct {
		name  string
		reply *actors.ErrorReply
		want  []error
		not   []error
	}{
		{"storage", &actors.ErrorReply{Code: actors.ErrorCode_ERROR_CODE_STORAGE},
			[]error{synod.ErrStorage}, []error{synod.ErrNoSpace, synod.ErrIndeterminate, actors.ErrInvalid}},
		{"no space", &actors.ErrorReply{Code: actors.ErrorCode_ERROR_CODE_NO_SPACE},
			[]error{synod.ErrStorage, synod.ErrNoSpace}, []error{synod.ErrIndeterminate, actors.ErrInvalid}},
		{"indeterminate, no space", &actors.ErrorReply{Code: actors.ErrorCode_ERROR_CODE_INDETERMINATE, Reason: "no_space"},
			[]error{synod.ErrIndeterminate, synod.ErrStorage, synod.ErrNoSpace}, nil},
		{"indeterminate", &actors.ErrorReply{Code: actors.ErrorCode_ERROR_CODE_INDETERMINATE},
			[]error{synod.ErrIndeterminate}, []error{synod.ErrStorage}},
		{"unknown code", &actors.ErrorReply{Code: 42},
			[]error{synod.ErrIndeterminate}, []error{actors.ErrInvalid, synod.ErrStorage, synod.ErrUnavailable}},
		{"unspecified", &actors.ErrorReply{},
			[]error{actors.ErrInvalid}, []error{synod.ErrIndeterminate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := proto.Marshal(tt.reply)
			if err != nil {
				t.Fatal(err)
			}
			var got actors.ErrorReply
			if err := proto.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			rerr := got.Err()
			for _, w := range tt.want {
				if !errors.Is(rerr, w) {
					t.Errorf("%v (code %d, reason %q) does not match %v", rerr, got.Code, got.Reason, w)
				}
			}
			for _, n := range tt.not {
				if errors.Is(rerr, n) {
					t.Errorf("%v (code %d, reason %q) matches %v", rerr, got.Code, got.Reason, n)
				}
			}
		})
	}
}
