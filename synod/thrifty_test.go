package synod_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/metrictest"
	"github.com/protosynod/protosynod/synod"
)

func TestThriftySplit(t *testing.T) {
	ids := func(n int) []string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprintf("a%d", i))
		}
		return s
	}
	tests := []struct {
		name          string
		cfg           synod.Config
		prepare, acc  int // subset sizes
		suspect       []string
		wantNotInHead []string // suspects that must go to rest
	}{
		{name: "3 majority", cfg: synod.Config{Acceptors: ids(3)}, prepare: 2, acc: 2},
		{name: "5 majority", cfg: synod.Config{Acceptors: ids(5)}, prepare: 3, acc: 3},
		{name: "5 flexible 4/2", cfg: synod.Config{Acceptors: ids(5), PrepareQuorum: 4, AcceptQuorum: 2}, prepare: 4, acc: 2},
		{name: "3 flexible 3/1", cfg: synod.Config{Acceptors: ids(3), PrepareQuorum: 3, AcceptQuorum: 1}, prepare: 3, acc: 1},
		{name: "5 flexible 2/4", cfg: synod.Config{Acceptors: ids(5), PrepareQuorum: 2, AcceptQuorum: 4}, prepare: 2, acc: 4},
		{name: "1 acceptor", cfg: synod.Config{Acceptors: ids(1)}, prepare: 1, acc: 1},
		{name: "suspect avoided", cfg: synod.Config{Acceptors: ids(5)}, prepare: 3, acc: 3,
			suspect: []string{"a0", "a3"}, wantNotInHead: []string{"a0", "a3"}},
		{name: "too many suspects fill the subset", cfg: synod.Config{Acceptors: ids(3)}, prepare: 2, acc: 2,
			suspect: []string{"a0", "a1", "a2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			suspect := func(id string) bool { return slices.Contains(tt.suspect, id) }
			for _, accept := range []bool{false, true} {
				want := tt.prepare
				if accept {
					want = tt.acc
				}
				if got := synod.ThriftySize(tt.cfg, accept); got != want {
					t.Errorf("ThriftySize(accept=%v) = %d, want %d", accept, got, want)
				}
				for k := range 50 {
					key := fmt.Sprintf("key%d", k)
					first, rest := synod.ThriftySplit(tt.cfg, key, accept, suspect)
					if len(first) != want {
						t.Fatalf("%s accept=%v: first %v, want %d acceptors", key, accept, first, want)
					}
					all := append(slices.Clone(first), rest...)
					slices.Sort(all)
					if !slices.Equal(all, tt.cfg.Acceptors) {
						t.Fatalf("%s: first %v + rest %v is not the configuration %v", key, first, rest, tt.cfg.Acceptors)
					}
					for _, id := range tt.wantNotInHead {
						if slices.Contains(first, id) {
							t.Fatalf("%s: suspect %s in first %v", key, id, first)
						}
					}
					again, _ := synod.ThriftySplit(tt.cfg, key, accept, suspect)
					if !slices.Equal(first, again) {
						t.Fatalf("%s: split %v, then %v", key, first, again)
					}
				}
			}
		})
	}
}

// Subsets spread proposers evenly over the acceptors.
func TestThriftySplitSpreads(t *testing.T) {
	for _, n := range []int{3, 5} {
		cfg := synod.Config{}
		for i := range n {
			cfg.Acceptors = append(cfg.Acceptors, fmt.Sprintf("acceptor-%d", i))
		}
		count := map[string]int{}
		const keys = 6000 // proposer IDs
		for k := range keys {
			first, _ := synod.ThriftySplit(cfg, synod.ProposerID(fmt.Sprintf("node-%d", k), uint64(k)*7919), true, nil)
			for _, id := range first {
				count[id]++
			}
		}
		want := keys * cfg.Q2() / n
		for _, id := range cfg.Acceptors {
			if got := count[id]; got < want*9/10 || got > want*11/10 {
				t.Errorf("n=%d: %s in %d subsets of %d keys, want %d ± 10%%", n, id, got, keys, want)
			}
		}
	}
}

// ThriftySplitNear fills the subset nearest tier first and, within a tier,
// as the spread picks; tiers that say nothing (none, one with every
// acceptor, none of cfg's) leave ThriftySplit's choice, and suspects still
// go to rest.
func TestThriftySplitNear(t *testing.T) {
	cfg5 := synod.Config{Acceptors: []string{"a0", "a1", "a2", "a3", "a4"}}
	cfg3 := synod.Config{Acceptors: []string{"a0", "a1", "a2"}}
	for _, tt := range []struct {
		name    string
		cfg     synod.Config
		near    [][]string
		suspect []string
		want    []string // must be in first (accept), in any order
		notIn   []string // must not be in first
		same    bool     // first must equal ThriftySplit's
	}{
		{name: "no tiers", cfg: cfg3, same: true},
		{name: "one tier of all", cfg: cfg3, near: [][]string{{"a2", "a0", "a1"}}, same: true},
		{name: "foreign tier", cfg: cfg3, near: [][]string{{"x9"}}, same: true},
		{name: "one near", cfg: cfg3, near: [][]string{{"a1"}}, want: []string{"a1"}},
		{name: "one near and a foreign one", cfg: cfg3, near: [][]string{{"x9", "a2"}}, want: []string{"a2"}},
		{name: "near, then a nearer zone than the last", cfg: cfg3, near: [][]string{{"a2"}, {"a0"}},
			want: []string{"a2", "a0"}, notIn: []string{"a1"}},
		{name: "a tier twice", cfg: cfg3, near: [][]string{{"a2"}, {"a2"}}, want: []string{"a2"}},
		{name: "two near of five", cfg: cfg5, near: [][]string{{"a4", "a1"}}, want: []string{"a1", "a4"}},
		{name: "tiers of five", cfg: cfg5, near: [][]string{{"a3"}, {"a0", "a4"}, {"a1"}},
			want: []string{"a3", "a0", "a4"}, notIn: []string{"a1", "a2"}},
		{name: "more near than room", cfg: synod.Config{Acceptors: cfg5.Acceptors, PrepareQuorum: 5, AcceptQuorum: 1},
			near: [][]string{{"a3"}}, want: []string{"a3"}},
		{name: "suspect near goes to rest", cfg: cfg3, near: [][]string{{"a1"}}, suspect: []string{"a1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			suspect := func(id string) bool { return slices.Contains(tt.suspect, id) }
			picked := map[string]int{}
			for k := range 300 {
				spread := synod.ProposerID(fmt.Sprintf("node-%d", k), uint64(k))
				first, rest := synod.ThriftySplitNear(tt.cfg, spread, tt.near, true, suspect)
				plain, _ := synod.ThriftySplit(tt.cfg, spread, true, suspect)
				if len(first) != tt.cfg.Q2() {
					t.Fatalf("%s: first %v, want %d acceptors", spread, first, tt.cfg.Q2())
				}
				all := append(slices.Clone(first), rest...)
				slices.Sort(all)
				if !slices.Equal(all, tt.cfg.Acceptors) {
					t.Fatalf("%s: first %v + rest %v is not the configuration", spread, first, rest)
				}
				if tt.same && !slices.Equal(first, plain) {
					t.Fatalf("%s: tiers %v changed the subset %v to %v", spread, tt.near, plain, first)
				}
				for _, id := range tt.want {
					if !slices.Contains(first, id) {
						t.Fatalf("%s: near %s not in first %v", spread, id, first)
					}
				}
				for _, id := range append(slices.Clone(tt.notIn), tt.suspect...) {
					if slices.Contains(first, id) {
						t.Fatalf("%s: %s in first %v", spread, id, first)
					}
				}
				for _, id := range first {
					picked[id]++
				}
			}
			// The rest of the subset still spreads over the others.
			if len(tt.want) > 0 && len(tt.want) < tt.cfg.Q2() {
				for _, id := range tt.cfg.Acceptors {
					if !slices.Contains(tt.want, id) && picked[id] == 0 {
						t.Errorf("%s never picked to fill a subset: %v", id, picked)
					}
				}
			}
		})
	}
}

// A thrifty Client asks its Transport which acceptors are near, on every
// phase, and its subset follows the answer.
func TestClientSubsetFollowsNearness(t *testing.T) {
	tr, cfg := newFakeTransport(3)
	nt := &nearTransport{fakeTransport: tr}
	name := nameWith(t, cfg, "a2", false)
	c := newTestClient(t, name, cfg, nt, synod.WithThrifty(true), synod.WithHedgeDelay(time.Hour))
	if got := synod.Subset(c, cfg); slices.Contains(got, "a2") {
		t.Fatalf("subset %v holds a2 before a2 is near", got)
	}
	warm(t, c, tr, "k")
	nt.near.Store(&[][]string{{"a2"}})
	if _, err := c.Change(context.Background(), "k", incr); err != nil {
		t.Fatal(err)
	}
	reqs := tr.requests()
	if len(reqs) != 1 || reqs[0].op != "accept" || len(reqs[0].to) != 2 || !slices.Contains(reqs[0].to, "a2") {
		t.Fatalf("sent %+v, want one accept to two acceptors, a2 one of them", reqs)
	}
	nt.near.Store(nil)
	if got := synod.Subset(c, cfg); slices.Contains(got, "a2") {
		t.Fatalf("subset %v still holds a2 when nothing is near", got)
	}
}

// nearTransport is a fakeTransport with a Nearness.
type nearTransport struct {
	*fakeTransport
	near atomic.Pointer[[][]string]
}

func (n *nearTransport) Near() [][]string {
	if p := n.near.Load(); p != nil {
		return *p
	}
	return nil
}

// fakeTransport serves requests with real acceptors, synchronously, and
// records where each went. An acceptor can be gone (every request to it is
// answered ErrNotDelivered at once) or silent (requests to it are lost).
// The next lost[id] requests to an acceptor take effect, but their replies
// are lost (ErrReplyLost).
type fakeTransport struct {
	mu     sync.Mutex
	accs   map[string]*synod.Acceptor
	gone   map[string]bool
	silent map[string]bool
	lost   map[string]int
	goneN  map[string]int // the next goneN[id] requests to id find it gone
	sent   []sentReq
}

type sentReq struct {
	op  string // "prepare" or "accept"
	key string
	b   synod.Ballot
	to  []string
}

func newFakeTransport(n int) (*fakeTransport, synod.Config) {
	f := &fakeTransport{accs: map[string]*synod.Acceptor{}, gone: map[string]bool{}, silent: map[string]bool{}}
	var cfg synod.Config
	for i := range n {
		id := fmt.Sprintf("a%d", i)
		f.accs[id] = synod.NewAcceptor(id, synod.NewMemoryStorage())
		cfg.Acceptors = append(cfg.Acceptors, id)
	}
	return f, cfg
}

func (f *fakeTransport) record(op, key string, b synod.Ballot, to []string) (gone, silent, lost map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, sentReq{op, key, b, slices.Clone(to)})
	lost, gone = map[string]bool{}, maps(f.gone)
	for _, id := range to {
		lost[id] = take(f.lost, id)
		gone[id] = gone[id] || take(f.goneN, id)
	}
	return gone, maps(f.silent), lost
}

// take counts one request to id down in counts and reports whether it had
// one left.
func take(counts map[string]int, id string) bool {
	if counts[id] <= 0 {
		return false
	}
	counts[id]--
	return true
}

// goneFor makes the next n requests to each of ids find nobody serving them.
func (f *fakeTransport) goneFor(n int, ids ...string) { f.countDown(&f.goneN, n, ids) }

// countDown sets the count of each of ids in *counts to n.
func (f *fakeTransport) countDown(counts *map[string]int, n int, ids []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *counts == nil {
		*counts = map[string]int{}
	}
	for _, id := range ids {
		(*counts)[id] = n
	}
}

// loseReplies makes the next n requests to each of ids lose their replies.
func (f *fakeTransport) loseReplies(n int, ids ...string) { f.countDown(&f.lost, n, ids) }

func maps(m map[string]bool) map[string]bool {
	c := make(map[string]bool, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (f *fakeTransport) set(id string, gone, silent bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gone[id], f.silent[id] = gone, silent
}

func (f *fakeTransport) requests() []sentReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

func (f *fakeTransport) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = nil
}

var (
	errGone = fmt.Errorf("fake: no responders: %w", synod.ErrNotDelivered)
	errLost = fmt.Errorf("fake: connection lost: %w", synod.ErrReplyLost)
)

func (f *fakeTransport) Prepare(ctx context.Context, to []string, req synod.PrepareRequest, replies chan<- synod.PrepareReply) error {
	fakeSend(f, "prepare", req.Key, req.Ballot, to, replies,
		func(id string) (synod.PrepareReply, error) { return f.accs[id].Prepare(ctx, req) },
		func(id string, err error) synod.PrepareReply {
			return synod.PrepareReply{From: id, Key: req.Key, Ballot: req.Ballot, Err: err}
		})
	return nil
}

func (f *fakeTransport) Accept(ctx context.Context, to []string, req synod.AcceptRequest, replies chan<- synod.AcceptReply) error {
	fakeSend(f, "accept", req.Key, req.Ballot, to, replies,
		func(id string) (synod.AcceptReply, error) { return f.accs[id].Accept(ctx, req) },
		func(id string, err error) synod.AcceptReply {
			return synod.AcceptReply{From: id, Key: req.Key, Ballot: req.Ballot, Err: err}
		})
	return nil
}

// fakeSend records a request of kind and answers it at once from every
// acceptor in to that is neither silent nor gone (gone ones answer
// errGone), through handle; failed builds the reply of an acceptor that
// errs.
func fakeSend[R any](f *fakeTransport, kind, key string, b synod.Ballot, to []string, replies chan<- R,
	handle func(id string) (R, error), failed func(id string, err error) R) {
	gone, silent, lost := f.record(kind, key, b, to)
	for _, id := range to {
		var rep R
		switch {
		case silent[id]:
			continue
		case gone[id]:
			rep = failed(id, errGone)
		case lost[id]:
			_, _ = handle(id) // it takes effect; its reply is lost
			rep = failed(id, errLost)
		default:
			var err error
			if rep, err = handle(id); err != nil {
				rep = failed(id, err)
			}
		}
		select {
		case replies <- rep:
		default:
			panic("reply channel full")
		}
	}
}

// fakeClock is a clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func hedges(t *testing.T, r *metrictest.Reader, reason string) float64 {
	t.Helper()
	return r.Get(t, "synod.client.hedges", metrictest.Attrs("reason", reason)...).N
}

// nameWith returns a client name whose subsets under cfg (ThriftySplit of
// the proposer ID newTestClient gives it) hold id (in, true) or do not (in,
// false).
func nameWith(t *testing.T, cfg synod.Config, id string, in bool) string {
	t.Helper()
	for k := range 1000 {
		name := fmt.Sprintf("c%d", k)
		first, _ := synod.ThriftySplit(cfg, synod.ProposerID(name, 1), true, nil)
		p, _ := synod.ThriftySplit(cfg, synod.ProposerID(name, 1), false, nil)
		if slices.Contains(first, id) == in && slices.Contains(p, id) == in {
			return name
		}
	}
	t.Fatalf("no client name with %s in its subsets = %v", id, in)
	return ""
}

// warm makes c hold a one-round-trip entry for each of keys (a change of
// each, a full round), then forgets the requests sent so far.
func warm(t *testing.T, c *synod.Client, tr *fakeTransport, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := c.Change(context.Background(), k, incr); err != nil {
			t.Fatalf("warm-up change of %s: %v", k, err)
		}
	}
	tr.reset()
}

// Without failures a one-round-trip accept goes to an accept quorum only,
// every other phase to every acceptor, and nothing hedges.
func TestThriftyQuorumOnly(t *testing.T) {
	type sent struct {
		op string
		to int
	}
	tests := []struct {
		name string
		cfg  func(synod.Config) synod.Config
		n    int
		want []sent
	}{
		{"3 majority", func(c synod.Config) synod.Config { return c }, 3,
			[]sent{{"prepare", 3}, {"accept", 3}, {"accept", 2}, {"accept", 2}}},
		{"5 majority", func(c synod.Config) synod.Config { return c }, 5,
			[]sent{{"prepare", 5}, {"accept", 5}, {"accept", 3}, {"accept", 3}}},
		// Q1 > Q2: no one-round-trip entries, so every phase goes to all.
		{"5 flexible 4/2", func(c synod.Config) synod.Config { c.PrepareQuorum, c.AcceptQuorum = 4, 2; return c }, 5,
			[]sent{{"prepare", 5}, {"accept", 5}, {"prepare", 5}, {"accept", 5}, {"prepare", 5}, {"accept", 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, cfg := newFakeTransport(tt.n)
			cfg = tt.cfg(cfg)
			reader := metrictest.New()
			c := newTestClient(t, "c", cfg, tr, synod.WithThrifty(true), synod.WithHedgeDelay(time.Hour), synod.WithMeterProvider(reader.Provider))
			ctx := context.Background()
			for i := range 3 {
				if v, err := c.Change(ctx, "k", incr); err != nil || string(v) != fmt.Sprint(i+1) {
					t.Fatalf("change %d = %q, %v", i, v, err)
				}
			}
			var got []sent
			for _, r := range tr.requests() {
				got = append(got, sent{r.op, len(r.to)})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("sent %v, want %v", got, tt.want)
			}
			for _, reason := range []string{"refused", "delay", "send"} {
				if n := hedges(t, reader, reason); n != 0 {
					t.Errorf("%v hedges (%s), want none", n, reason)
				}
			}
		})
	}
}

// A client sends the one-round-trip accepts of all its keys to its own
// subset, so that its requests to an acceptor share frames; with a subset
// per key they would spread over every acceptor.
func TestThriftySubsetIsTheClients(t *testing.T) {
	tr, cfg := newFakeTransport(3)
	c := newTestClient(t, "c", cfg, tr, synod.WithHedgeDelay(time.Hour)) // thrifty by default
	var keys []string
	for k := range 30 {
		keys = append(keys, fmt.Sprint("key", k))
	}
	warm(t, c, tr, keys...)
	for _, k := range keys {
		if _, err := c.Change(context.Background(), k, incr); err != nil {
			t.Fatal(err)
		}
	}
	want := synod.Subset(c, cfg)
	reached := map[string]bool{}
	reqs := tr.requests()
	for _, r := range reqs {
		if r.op != "accept" || len(r.to) != 2 {
			t.Errorf("%s %s went to %v, want a one-round-trip accept to 2 acceptors", r.op, r.key, r.to)
		}
		for _, id := range r.to {
			reached[id] = true
		}
	}
	if len(reqs) != len(keys) || len(reached) != 2 || !reached[want[0]] || !reached[want[1]] {
		t.Errorf("%d requests for %d keys reached %v, want one each, to the client's subset %v only", len(reqs), len(keys), reached, want)
	}
}

// WithThrifty(false) sends every phase to every acceptor.
func TestThriftyOff(t *testing.T) {
	tr, cfg := newFakeTransport(3)
	c := newTestClient(t, "c", cfg, tr, synod.WithThrifty(false))
	if _, err := c.Change(context.Background(), "k", incr); err != nil {
		t.Fatal(err)
	}
	for _, r := range tr.requests() {
		if len(r.to) != 3 {
			t.Errorf("%s went to %v, want all three", r.op, r.to)
		}
	}
}

// A refusal from the subset hedges once the subset has a yes: the refused
// one-round-trip accept waits for its whole subset (its result may be
// nowhere until then), then reaches the third acceptor and wins with it.
func TestThriftyHedgeOnRefusal(t *testing.T) {
	tr, cfg := newFakeTransport(3)
	const key = "k"
	ctx := context.Background()
	reader := metrictest.New()
	c := newTestClient(t, nameWith(t, cfg, "a0", true), cfg, tr, synod.WithThrifty(true), synod.WithHedgeDelay(time.Hour), synod.WithPhaseTimeout(time.Hour), synod.WithMeterProvider(reader.Provider))
	warm(t, c, tr, key)
	// a0 promised a ballot no one holds: it refuses the one-round-trip accept.
	high := synod.Ballot{Counter: 1 << 40, Proposer: "elsewhere"}
	if _, err := tr.accs["a0"].Prepare(ctx, synod.PrepareRequest{Key: key, Ballot: high}); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Change(ctx, key, incr); err != nil || string(v) != "2" {
		t.Fatalf("change = %q, %v; want 2", v, err)
	}
	reqs := tr.requests()
	if len(reqs) != 2 || reqs[0].op != "accept" || len(reqs[0].to) != 2 || !slices.Contains(reqs[0].to, "a0") ||
		reqs[1].op != "accept" || len(reqs[1].to) != 1 || slices.Contains(reqs[0].to, reqs[1].to[0]) {
		t.Errorf("requests %+v: want the accept to the subset, then the hedge to the third acceptor", reqs)
	}
	if n := hedges(t, reader, "refused"); n != 1 {
		t.Errorf("%v hedges on a refusal, want 1", n)
	}
}

// An accept refused by its whole subset is withheld from the others: its
// result is nowhere, so the retry runs the change again, determinately,
// and the acceptor outside the subset never sees the doomed accept.
func TestThriftyWithholdsRefusedAccept(t *testing.T) {
	tr, cfg := newFakeTransport(3)
	key := "k"
	ctx := context.Background()
	a := newTestClient(t, nameWith(t, cfg, "a2", false), cfg, tr, synod.WithThrifty(true), synod.WithHedgeDelay(time.Hour), synod.WithPhaseTimeout(time.Hour))
	b := newTestClient(t, "b", cfg, tr, synod.WithThrifty(true), synod.WithHedgeDelay(time.Hour), synod.WithPhaseTimeout(time.Hour))
	for range 2 {
		if _, err := a.Change(ctx, key, incr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Change(ctx, key, incr); err != nil { // a's fast-path entry is stale now
		t.Fatal(err)
	}
	tr.reset()
	v, err := a.Change(ctx, key, incr)
	if err != nil || string(v) != "4" {
		t.Fatalf("a's change = %q, %v; want 4", v, err)
	}
	reqs := tr.requests()
	if len(reqs) < 3 || reqs[0].op != "accept" || len(reqs[0].to) != 2 || reqs[1].op != "prepare" {
		t.Fatalf("requests %+v: want the fast-path accept to the subset, then a new round", reqs)
	}
	for _, r := range reqs {
		if r.b == reqs[0].b && slices.Contains(r.to, "a2") {
			t.Errorf("the refused accept %v reached a2", r.b)
		}
	}
}

// A silent acceptor of the subset costs one hedge delay; it is suspected
// and left out of the next subsets until the suspicion ends, then tried
// again.
func TestThriftyHedgeOnDelaySuspects(t *testing.T) {
	tr, cfg := newFakeTransport(3)
	clock := &fakeClock{}
	reader := metrictest.New()
	c := newTestClient(t, nameWith(t, cfg, "a0", true), cfg, tr, synod.WithThrifty(true), synod.WithHedgeDelay(time.Millisecond), synod.WithPhaseTimeout(time.Hour),
		synod.WithClock(clock.now), synod.WithSuspectFor(time.Second), synod.WithMeterProvider(reader.Provider))
	ctx := context.Background()
	var others []string
	for i := range 5 {
		others = append(others, fmt.Sprint("k", i))
	}
	warm(t, c, tr, append(others, "k", "back")...)
	tr.set("a0", false, true)
	if _, err := c.Change(ctx, "k", incr); err != nil {
		t.Fatal(err)
	}
	if n := hedges(t, reader, "delay"); n != 1 {
		t.Fatalf("%v hedges on the delay, want 1 (then a0 is suspected)", n)
	}
	// The client's subset holds a0, and its other changes avoid it now.
	tr.reset()
	for _, k := range others {
		if _, err := c.Change(ctx, k, incr); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range tr.requests() {
		if slices.Contains(r.to, "a0") {
			t.Errorf("%s %s went to suspected a0: %v", r.op, r.key, r.to)
		}
	}
	if n := hedges(t, reader, "delay"); n != 1 {
		t.Errorf("%v hedges on the delay, want still 1", n)
	}
	// The suspicion ends: a0 (answering again) is back in the subset.
	tr.set("a0", false, false)
	clock.advance(2 * time.Second)
	tr.reset()
	if _, err := c.Change(ctx, "back", incr); err != nil {
		t.Fatal(err)
	}
	back := false
	for _, r := range tr.requests() {
		back = back || slices.Contains(r.to, "a0")
	}
	if !back {
		t.Errorf("a0 not tried again after its suspicion ended: %+v", tr.requests())
	}
}

// An acceptor that is gone answers "not delivered" at once: the phase
// hedges without waiting, and the acceptor is suspected.
func TestThriftyNotDeliveredSuspects(t *testing.T) {
	tr, cfg := newFakeTransport(3)
	clock := &fakeClock{}
	reader := metrictest.New()
	c := newTestClient(t, nameWith(t, cfg, "a1", true), cfg, tr, synod.WithThrifty(true), synod.WithHedgeDelay(time.Hour), synod.WithPhaseTimeout(time.Hour),
		synod.WithClock(clock.now), synod.WithMeterProvider(reader.Provider))
	ctx := context.Background()
	warm(t, c, tr, "k", "k2")
	tr.set("a1", true, false)
	if _, err := c.Change(ctx, "k", incr); err != nil {
		t.Fatal(err)
	}
	if n := hedges(t, reader, "refused"); n != 1 {
		t.Errorf("%v hedges on a reply that was not a yes, want 1", n)
	}
	tr.reset()
	if _, err := c.Change(ctx, "k2", incr); err != nil {
		t.Fatal(err)
	}
	for _, r := range tr.requests() {
		if slices.Contains(r.to, "a1") {
			t.Errorf("%s went to a1, which is gone and suspected: %v", r.op, r.to)
		}
	}
}

// A phase that timed out is followed by phases to every acceptor.
func TestThriftyAllAfterTimeout(t *testing.T) {
	tr, cfg := newFakeTransport(3)
	c := newTestClient(t, nameWith(t, cfg, "a0", true), cfg, tr, synod.WithThrifty(true), synod.WithHedgeDelay(time.Hour), synod.WithPhaseTimeout(20*time.Millisecond))
	const key = "k"
	warm(t, c, tr, key)
	tr.set("a0", false, true)
	if v, err := c.Change(context.Background(), key, incr); err != nil || string(v) != "2" {
		t.Fatalf("change = %q, %v; want 2", v, err)
	}
	reqs := tr.requests()
	if len(reqs) < 2 || reqs[0].op != "accept" || len(reqs[0].to) != 2 {
		t.Fatalf("requests %+v: want a first one-round-trip accept to two acceptors", reqs)
	}
	for _, r := range reqs[1:] {
		if len(r.to) != 3 {
			t.Errorf("%s %v after the timeout went to %v, want all three", r.op, r.b, r.to)
		}
	}
}

// The adaptive hedge delay follows the latency of phases, within its
// bounds.
func TestThriftyHedgeDelayAdapts(t *testing.T) {
	tr, cfg := newFakeTransport(3)
	c := newTestClient(t, "c", cfg, tr, synod.WithThrifty(true), synod.WithPhaseTimeout(time.Second))
	if d := synod.HedgeDelay(c); d != 20*time.Millisecond {
		t.Errorf("delay before any sample = %v, want 20ms", d)
	}
	for range 50 {
		synod.Observe(c, 2*time.Millisecond)
	}
	if d := synod.HedgeDelay(c); d < 8*time.Millisecond || d > 9*time.Millisecond {
		t.Errorf("delay after steady 2ms phases = %v, want about 8ms", d)
	}
	for range 50 {
		synod.Observe(c, 10*time.Microsecond)
	}
	if d := synod.HedgeDelay(c); d != 2*time.Millisecond {
		t.Errorf("delay after 10µs phases = %v, want the 2ms floor", d)
	}
	for range 50 {
		synod.Observe(c, 5*time.Second)
	}
	if d := synod.HedgeDelay(c); d != 250*time.Millisecond {
		t.Errorf("delay after 5s phases = %v, want the cap, a quarter of the phase timeout", d)
	}
}

// A hedged phase whose quorum split (a refusal and a yes) while the acceptor
// it hedged to stays silent (paused, say) cannot be decided without it:
// after two hedge delays it is given up, as a phase timeout would be, and the
// retry, sent to every acceptor, wins without the silent one. Waiting for
// the phase timeout (an hour here) would hold the change until ctx ends.
func TestThriftyStalledPhaseGivesUp(t *testing.T) {
	tr, cfg := newFakeTransport(3)
	const key = "k"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reader := metrictest.New()
	c := newTestClient(t, nameWith(t, cfg, "a2", false), cfg, tr, synod.WithThrifty(true), synod.WithHedgeDelay(time.Millisecond),
		synod.WithPhaseTimeout(time.Hour), synod.WithMeterProvider(reader.Provider))
	warm(t, c, tr, key)
	tr.set("a2", false, true)
	// a0 promised a ballot no one holds: it refuses the one-round-trip accept.
	high := synod.Ballot{Counter: 1 << 40, Proposer: "elsewhere"}
	if _, err := tr.accs["a0"].Prepare(ctx, synod.PrepareRequest{Key: key, Ballot: high}); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Change(ctx, key, incr); err != nil || string(v) != "2" {
		t.Fatalf("change = %q, %v; want 2 (a stalled phase must not wait for its timeout)", v, err)
	}
	if n := reader.Get(t, "synod.client.stalls").N; n != 1 {
		t.Errorf("%v stalled phases, want 1", n)
	}
	reqs := tr.requests()
	if len(reqs) < 3 || len(reqs[0].to) != 2 || !slices.Equal(reqs[1].to, []string{"a2"}) {
		t.Fatalf("requests %+v: want the accept to the subset, then the hedge to a2", reqs)
	}
	for _, r := range reqs[2:] {
		if len(r.to) != 3 {
			t.Errorf("%s %v after the stall went to %v, want all three", r.op, r.b, r.to)
		}
	}
}

// TestPhaseEveryAcceptorAnsweredGivesUp checks that a phase every acceptor
// answered without a decision (their replies were lost, as when the
// proposer's NATS connection drops) is retried at once, not after the phase
// timeout, and that a lost accept that took effect is not applied twice.
func TestPhaseEveryAcceptorAnsweredGivesUp(t *testing.T) {
	for _, thrifty := range []bool{false, true} {
		t.Run(fmt.Sprintf("thrifty=%v", thrifty), func(t *testing.T) {
			tr, cfg := newFakeTransport(3)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// A thrifty phase whose subset lost its replies hedges after
			// the hedge delay, and then has every acceptor's answer.
			reader := metrictest.New()
			c := newTestClient(t, "c", cfg, tr, synod.WithThrifty(thrifty), synod.WithHedgeDelay(time.Millisecond),
				synod.WithPhaseTimeout(time.Hour), synod.WithMeterProvider(reader.Provider))
			const key = "k"
			tr.loseReplies(1, cfg.Acceptors...) // the first prepare
			if v, err := c.Change(ctx, key, incr); err != nil || string(v) != "1" {
				t.Fatalf("first change = %q, %v; want 1 (the lost phase must be retried at once)", v, err)
			}
			tr.loseReplies(1, cfg.Acceptors...) // the one-round-trip accept, which takes effect
			if v, err := c.Change(ctx, key, incr); err != nil || string(v) != "2" {
				t.Fatalf("second change = %q, %v; want 2, applied once", v, err)
			}
			if v, err := c.Read(ctx, key); err != nil || string(v) != "2" {
				t.Fatalf("read = %q, %v; want 2", v, err)
			}
			if n := reader.Get(t, "synod.client.undecided").N; n < 2 {
				t.Errorf("%v phases given up undecided, want at least 2 (one per change)", n)
			}
		})
	}
}

// TestChangeRidesOutBrieflyUnreachableAcceptors checks that a change whose
// quorum NATS found unreachable for a moment (acceptors reconnecting to
// another server) starts again instead of failing, and that one whose
// acceptors stay unreachable still fails fast with ErrUnavailable.
func TestChangeRidesOutBrieflyUnreachableAcceptors(t *testing.T) {
	tr, cfg := newFakeTransport(3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newTestClient(t, "c", cfg, tr, synod.WithPhaseTimeout(time.Hour))
	tr.goneFor(2, "a1", "a2") // the first two prepares
	if v, err := c.Change(ctx, "k", incr); err != nil || string(v) != "1" {
		t.Fatalf("change = %q, %v; want 1 once the acceptors are back", v, err)
	}
	if n := len(tr.requests()); n < 3 {
		t.Errorf("%d requests, want two prepares that found them gone, then a round", n)
	}

	tr.set("a1", true, false)
	tr.set("a2", true, false)
	start := time.Now()
	_, err := c.Change(ctx, "other", incr) // a prepare first: nothing applied

	if !errors.Is(err, synod.ErrUnavailable) || !errors.Is(err, synod.ErrNotDelivered) || errors.Is(err, synod.ErrIndeterminate) {
		t.Fatalf("change with two acceptors gone: %v, want ErrUnavailable (not applied)", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the change with two acceptors gone ran out its context (%v): it must fail fast", time.Since(start))
	}
	t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}
