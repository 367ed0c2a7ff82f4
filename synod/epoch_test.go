package synod

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func b(c uint64, p string) Ballot { return Ballot{Counter: c, Proposer: p} }

// TestAcceptorEpochs: an acceptor refuses requests of older epochs with its
// configuration, serves its own and newer ones, and keeps its epoch across a
// restart on the same storage. Paper: §2.3 (a proposer must not use an old
// configuration once the new one is in force).
func TestAcceptorEpochs(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStorage()
	a := NewAcceptor("a1", store)
	c1 := cfg(1, 0, 0, "a1", "a2", "a3", "a4")
	if _, err := a.Prepare(ctx, PrepareRequest{Key: "k", Ballot: b(1, "p")}); err != nil {
		t.Fatalf("epoch 0 before any install: %v", err)
	}
	if got, err := a.Install(ctx, c1); err != nil || !reflect.DeepEqual(got, c1) {
		t.Fatalf("Install = %v, %v", got, err)
	}
	for i, acc := range []*Acceptor{a, NewAcceptor("a1", store)} { // and after a restart
		_, err := acc.Prepare(ctx, PrepareRequest{Key: "k", Ballot: b(2, "p"), Epoch: 0})
		var se *StaleEpochError
		if !errors.As(err, &se) || !errors.Is(err, ErrStaleEpoch) || !reflect.DeepEqual(se.Config, c1) {
			t.Fatalf("prepare at epoch 0: %v, want a StaleEpochError carrying %v", err, c1)
		}
		if _, err := acc.Accept(ctx, AcceptRequest{Key: "k", Ballot: b(2, "p"), Epoch: 0}); !errors.Is(err, ErrStaleEpoch) {
			t.Fatalf("accept at epoch 0: %v", err)
		}
		if _, err := acc.Read(ctx, ReadRequest{Key: "k", Epoch: 0}); !errors.Is(err, ErrStaleEpoch) {
			t.Fatalf("read at epoch 0: %v", err)
		}
		for _, e := range []uint64{1, 2} {
			if rep, err := acc.Prepare(ctx, PrepareRequest{Key: "k", Ballot: b(10*uint64(i)+3+e, "p"), Epoch: e}); err != nil || !rep.OK {
				t.Fatalf("prepare at epoch %d: %+v, %v", e, rep, err)
			}
		}
	}
}

func TestAcceptorInstall(t *testing.T) {
	ctx := context.Background()
	c2 := cfg(2, 0, 0, "a1", "a2", "a3")
	tests := []struct {
		name    string
		install Config
		want    error
	}{
		{"same again", c2, nil},
		{"older", cfg(1, 0, 0, "a1", "a2", "a3"), ErrStaleEpoch},
		{"other config, same epoch", cfg(2, 0, 0, "a1", "a2", "a4"), ErrInvalidConfig},
		{"epoch 0", cfg(0, 0, 0, "a1", "a2", "a3"), ErrInvalidConfig},
		{"invalid", cfg(3, 1, 1, "a1", "a2", "a3"), ErrInvalidConfig},
		{"newer", cfg(3, 0, 0, "a1", "a2", "a3", "a4"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAcceptor("a1", NewMemoryStorage())
			if _, err := a.Install(ctx, c2); err != nil {
				t.Fatal(err)
			}
			_, err := a.Install(ctx, tt.install)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Install(%v) = %v, want %v", tt.install, err, tt.want)
			}
		})
	}
	// A storage that cannot keep a configuration cannot take part.
	a := NewAcceptor("a1", plainStorage{NewMemoryStorage()})
	if _, err := a.Install(ctx, c2); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Install on a plain Storage: %v", err)
	}
}

type plainStorage struct{ Storage }

// TestAcceptorRemoved: an acceptor that is not a member of the configuration
// it serves refuses every request, whatever its epoch.
func TestAcceptorRemoved(t *testing.T) {
	ctx := context.Background()
	a := NewAcceptor("a4", NewMemoryStorage())
	if _, err := a.Install(ctx, cfg(5, 0, 0, "a1", "a2", "a3")); err != nil {
		t.Fatal(err)
	}
	for _, e := range []uint64{4, 5, 6} {
		if _, err := a.Prepare(ctx, PrepareRequest{Key: "k", Ballot: b(9, "p"), Epoch: e}); !errors.Is(err, ErrStaleEpoch) {
			t.Errorf("epoch %d: %v, want ErrStaleEpoch", e, err)
		}
	}
}

// TestAcceptorFloor: ballots at or below the floor are refused, with a seen
// ballot a proposer fast-forwards past.
func TestAcceptorFloor(t *testing.T) {
	ctx := context.Background()
	a := NewAcceptor("a1", NewMemoryStorage())
	c := cfg(1, 0, 0, "a1", "a2", "a3")
	c.Floor = 10
	if _, err := a.Install(ctx, c); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Prepare(ctx, PrepareRequest{Key: "k", Ballot: b(10, "zz"), Epoch: 1})
	if err != nil || rep.OK || rep.Seen.Counter != 10 {
		t.Fatalf("prepare at the floor: %+v, %v", rep, err)
	}
	arep, err := a.Accept(ctx, AcceptRequest{Key: "k", Ballot: b(3, "p"), Epoch: 1})
	if err != nil || arep.OK {
		t.Fatalf("accept below the floor: %+v, %v", arep, err)
	}
	if rep, err := a.Prepare(ctx, PrepareRequest{Key: "k", Ballot: b(11, "p"), Epoch: 1}); err != nil || !rep.OK {
		t.Fatalf("prepare above the floor: %+v, %v", rep, err)
	}
}

// TestAcceptorForget: a key is removed only if its state is empty and inert
// below a floor the acceptor already enforces. Paper: §3.
func TestAcceptorForget(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		st      AcceptorState
		floor   uint64 // asked
		served  uint64 // the acceptor's floor
		removed bool
		err     error
	}{
		{"tombstone", AcceptorState{Promised: b(5, "p"), Accepted: b(4, "p")}, 5, 5, true, nil},
		{"promise only", AcceptorState{Promised: b(5, "p")}, 5, 7, true, nil},
		{"value", AcceptorState{Promised: b(5, "p"), Accepted: b(5, "p"), Value: []byte("v")}, 5, 5, false, nil},
		{"promise above", AcceptorState{Promised: b(6, "p"), Accepted: b(4, "p")}, 5, 5, false, nil},
		{"accept above", AcceptorState{Promised: b(6, "p"), Accepted: b(6, "p")}, 5, 5, false, nil},
		{"floor not enforced", AcceptorState{Promised: b(5, "p"), Accepted: b(4, "p")}, 5, 4, false, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := NewMemoryStorage()
			_ = store.Store(ctx, "k", tt.st)
			a := NewAcceptor("a1", store)
			c := cfg(1, 0, 0, "a1", "a2", "a3")
			c.Floor = tt.served
			if _, err := a.Install(ctx, c); err != nil {
				t.Fatal(err)
			}
			removed, err := a.Forget(ctx, "k", tt.floor)
			if removed != tt.removed || !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("Forget = %v, %v; want %v, %v", removed, err, tt.removed, tt.err)
			}
			if got := store.Len(); got != map[bool]int{true: 0, false: 1}[tt.removed] {
				t.Fatalf("%d keys stored after Forget", got)
			}
		})
	}
}

// TestProposerAdoptsNewerConfig: stale-epoch refusals count as refusals; the
// retry runs under the carried configuration, with the fast path dropped and
// the counter above the floor.
func TestProposerAdoptsNewerConfig(t *testing.T) {
	c0 := cfg(0, 0, 0, "a1", "a2", "a3")
	c1 := cfg(1, 0, 0, "a1", "a2", "a3", "a4")
	c1.Floor = 100
	p, err := NewProposer("p", c0)
	if err != nil {
		t.Fatal(err)
	}
	p.fast["other"] = fastEntry{next: b(7, "p")}
	pr := p.Begin("k", nil)
	req := pr.Request().Prepare
	if req.Epoch != 0 {
		t.Fatalf("prepare epoch %d", req.Epoch)
	}
	pr.OnPrepareReply(PrepareReply{From: "a1", Key: "k", Ballot: req.Ballot, Err: &StaleEpochError{Acceptor: "a1", Config: c1}})
	if pr.Status() != StatusPreparing {
		t.Fatalf("status %v after one stale-epoch refusal of three", pr.Status())
	}
	pr.OnPrepareReply(PrepareReply{From: "a2", Key: "k", Ballot: req.Ballot, Err: &StaleEpochError{Acceptor: "a2", Config: c1}})
	if pr.Status() != StatusRefused {
		t.Fatalf("status %v after a stale-epoch refusal", pr.Status())
	}
	if got, ok := pr.NewerConfig(); !ok || got.Epoch != 1 {
		t.Fatalf("NewerConfig = %v, %v", got, ok)
	}
	pr.Retry(p)
	req = pr.Request().Prepare
	if p.Config().Epoch != 1 || pr.Config().Epoch != 1 || req.Epoch != 1 || len(p.fast) != 0 || req.Ballot.Counter <= 100 {
		t.Fatalf("after retry: proposer %v, proposal %v, request %+v, %d fast entries", p.Config(), pr.Config(), req, len(p.fast))
	}
	if p.Adopt(c0) {
		t.Fatal("adopted an older configuration")
	}
}

// TestClientFollowsReconfiguration: a client built with the old configuration
// reaches the acceptors of the new one after they were fenced, without a
// restart, and its changes build on the values written before.
func TestClientFollowsReconfiguration(t *testing.T) {
	ctx := context.Background()
	var accs []*Acceptor
	for _, id := range []string{"a1", "a2", "a3", "a4"} {
		accs = append(accs, NewAcceptor(id, NewMemoryStorage()))
	}
	tr := &directTransport{accs: map[string]*Acceptor{}}
	for _, a := range accs {
		tr.accs[a.ID()] = a
	}
	c0 := cfg(0, 0, 0, "a1", "a2", "a3")
	cl, err := NewClient("p/1", c0, tr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Change(ctx, "k", func([]byte) ([]byte, error) { return []byte("x"), nil }); err != nil {
		t.Fatal(err)
	}
	c1 := cfg(1, 0, 0, "a1", "a2", "a3", "a4")
	for _, a := range accs {
		if _, err := a.Install(ctx, c1); err != nil {
			t.Fatal(err)
		}
	}
	v, err := cl.Change(ctx, "k", func(cur []byte) ([]byte, error) { return append(cur, 'y'), nil })
	if err != nil || string(v) != "xy" {
		t.Fatalf("change after the fence: %q, %v", v, err)
	}
	if cl.Config().Epoch != 1 {
		t.Fatalf("client config %v", cl.Config())
	}
	if st, _ := accs[3].State(ctx, "k"); string(st.Value) != "xy" {
		t.Fatalf("the new acceptor holds %q", st.Value)
	}
}

// directTransport calls acceptors synchronously and turns their errors into
// reply errors.
type directTransport struct{ accs map[string]*Acceptor }

func (d *directTransport) Prepare(ctx context.Context, to []string, req PrepareRequest, replies chan<- PrepareReply) error {
	for _, id := range to {
		rep, err := d.accs[id].Prepare(ctx, req)
		if err != nil {
			rep = PrepareReply{From: id, Key: req.Key, Ballot: req.Ballot, Err: err}
		}
		replies <- rep
	}
	return nil
}

func (d *directTransport) Accept(ctx context.Context, to []string, req AcceptRequest, replies chan<- AcceptReply) error {
	for _, id := range to {
		rep, err := d.accs[id].Accept(ctx, req)
		if err != nil {
			rep = AcceptReply{From: id, Key: req.Key, Ballot: req.Ballot, Err: err}
		}
		replies <- rep
	}
	return nil
}
