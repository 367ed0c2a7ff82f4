package dedup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/dedup"
	"github.com/protosynod/protosynod/synod/synodtest"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		in   string
		want dedup.ID
	}{
		{"order-17", dedup.ID{Sender: "order-17"}},
		{"~abc.12", dedup.ID{Sender: "abc", Seq: 12}},
		{"~a.b.3", dedup.ID{Sender: "a.b", Seq: 3}},
		{"~abc.0", dedup.ID{Sender: "~abc.0"}},
		{"~abc.012", dedup.ID{Sender: "~abc.012"}},
		{"~abc.+1", dedup.ID{Sender: "~abc.+1"}},
		{"~.5", dedup.ID{Sender: "~.5"}},
		{"~abc", dedup.ID{Sender: "~abc"}},
		{"~abc.x", dedup.ID{Sender: "~abc.x"}},
		{"~abc.18446744073709551616", dedup.ID{Sender: "~abc.18446744073709551616"}},
	}
	for _, tt := range tests {
		got := dedup.ParseID(tt.in)
		if got != tt.want {
			t.Errorf("ParseID(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if back := got.String(); back != tt.in {
			t.Errorf("ParseID(%q).String() = %q", tt.in, back)
		}
	}
}

func TestTableVerdicts(t *testing.T) {
	var tb dedup.Table
	must := func(t2 dedup.Table, err error) dedup.Table {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return t2
	}
	a3 := dedup.ID{Sender: "a", Seq: 3}
	tb = must(tb.With(a3, []byte("r3"), 8))
	tb = must(tb.With(dedup.ID{Sender: "once"}, []byte("r"), 8))
	tests := []struct {
		id    dedup.ID
		want  dedup.Verdict
		reply string
	}{
		{a3, dedup.Replay, "r3"},
		{dedup.ID{Sender: "a", Seq: 2}, dedup.Stale, ""},
		{dedup.ID{Sender: "a", Seq: 4}, dedup.Fresh, ""},
		{dedup.ID{Sender: "b", Seq: 1}, dedup.Fresh, ""},
		{dedup.ID{Sender: "once"}, dedup.Replay, "r"},
		{dedup.ID{Sender: "twice"}, dedup.Fresh, ""},
	}
	for _, tt := range tests {
		v, reply := tb.Check(tt.id)
		if v != tt.want || string(reply) != tt.reply {
			t.Errorf("Check(%v) = %v %q, want %v %q", tt.id, v, reply, tt.want, tt.reply)
		}
	}
	// A sender's next change replaces its entry: one entry per sender.
	tb2 := must(tb.With(dedup.ID{Sender: "a", Seq: 4}, []byte("r4"), 8))
	if tb2.Len() != 2 {
		t.Errorf("len %d after a sender's second change, want 2", tb2.Len())
	}
	if v, _ := tb.Check(dedup.ID{Sender: "a", Seq: 4}); v != dedup.Fresh {
		t.Errorf("With changed its receiver")
	}
}

// The bound evicts the entry recorded longest ago, whatever order senders
// sort in, so every proposer evicts the same entries.
func TestTableEviction(t *testing.T) {
	var tb dedup.Table
	var err error
	for i, s := range []string{"d", "b", "c", "a", "b", "e"} {
		if tb, err = tb.With(dedup.ID{Sender: s, Seq: uint64(i + 1)}, nil, 3); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, e := range tb.Entries() {
		got = append(got, e.Sender)
	}
	// Recorded: d1 b2 c3 a4 b5 e6; the three most recent senders are a, b, e.
	if fmt.Sprint(got) != "[a b e]" {
		t.Errorf("entries %v, want [a b e]", got)
	}
}

func TestTableRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var tb dedup.Table
	var err error
	for i := range 50 {
		id := dedup.ID{Sender: "s" + strconv.Itoa(r.IntN(20)), Seq: uint64(i)}
		if tb, err = tb.With(id, bytes.Repeat([]byte{byte(i)}, r.IntN(5)), 10); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := tb.Encode(msgpack.NewEncoder(&buf)); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != tb.EncodedLen() && buf.Len() > tb.EncodedLen() {
		t.Errorf("EncodedLen %d < %d", tb.EncodedLen(), buf.Len())
	}
	rd := bytes.NewReader(buf.Bytes())
	got, err := dedup.Decode(msgpack.NewDecoder(rd), rd.Len())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Entries()) != fmt.Sprint(tb.Entries()) {
		t.Errorf("decoded %v\nwant %v", got.Entries(), tb.Entries())
	}
}

func FuzzUnwrap(f *testing.F) {
	incr := func(cur []byte) ([]byte, error) { return append(cur, 'x'), nil }
	v, _ := dedup.Wrap(dedup.ID{Sender: "s", Seq: 1}, incr, 4)(nil)
	f.Add(v)
	v2, _ := dedup.Wrap(dedup.ID{Sender: "one"}, incr, 4)(v)
	f.Add(v2)
	f.Add([]byte{0x93, 0x01, 0x90, 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		value, tb, err := dedup.Unwrap(b)
		if err != nil {
			if !errors.Is(err, dedup.ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		// What decodes re-encodes to something that decodes the same.
		again, err := dedup.Wrap(dedup.ID{Sender: "fuzz", Seq: 1}, func(cur []byte) ([]byte, error) { return cur, nil }, tb.Len()+1)(b)
		if err != nil {
			t.Fatalf("wrap of a valid value: %v", err)
		}
		value2, tb2, err := dedup.Unwrap(again)
		if err != nil || !bytes.Equal(value, value2) || tb2.Len() != tb.Len()+1 {
			t.Fatalf("round trip: %q %d, %v; want %q %d", value2, tb2.Len(), err, value, tb.Len()+1)
		}
	})
}

// dropAcceptReplies loses accept replies with probability p, which makes
// changes indeterminate although they may have committed.
type dropAcceptReplies struct {
	*synodtest.LocalTransport
	mu  sync.Mutex
	rng *rand.Rand
	p   float64
}

func (d *dropAcceptReplies) Accept(ctx context.Context, to []string, req synod.AcceptRequest, replies chan<- synod.AcceptReply) error {
	ch := make(chan synod.AcceptReply, len(to))
	if err := d.LocalTransport.Accept(ctx, to, req, ch); err != nil {
		return err
	}
	go func() {
		for range to {
			select {
			case r := <-ch:
				d.mu.Lock()
				lose := d.rng.Float64() < d.p
				d.mu.Unlock()
				if !lose {
					select {
					case replies <- r:
					default:
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// Increments from several senders over a transport that loses accept
// replies: without dedup some end indeterminate; with it every increment
// is applied exactly once and none is reported indeterminate.
func TestClientExactlyOnce(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	lossy := &dropAcceptReplies{LocalTransport: tr, rng: rand.New(rand.NewPCG(3, 4)), p: 0.4}
	var clients []*dedup.Client
	for i := range 2 { // two proposers compete for the key
		sc, err := synod.NewClient(synod.ProposerID(fmt.Sprint("p", i), 1), cfg, lossy,
			synod.WithPhaseTimeout(5*time.Millisecond), synod.WithBackoff(time.Millisecond, 3*time.Millisecond),
			synod.WithRand(rand.New(rand.NewPCG(5, uint64(i)))))
		if err != nil {
			t.Fatal(err)
		}
		c, err := dedup.NewClient(sc, dedup.WithAttemptTimeout(15*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	c := clients[0]
	incr := func(cur []byte) ([]byte, error) {
		n, _ := strconv.Atoi(string(cur))
		return []byte(strconv.Itoa(n + 1)), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const senders, each = 4, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	replayed := 0
	for i := range senders {
		wg.Go(func() {
			s := dedup.NewSender()
			for range each {
				res, err := clients[i%2].Change(ctx, "k", s.Next(), incr)
				if err != nil {
					t.Errorf("change: %v", err)
					return
				}
				if res.Replayed {
					mu.Lock()
					replayed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	lossy.mu.Lock()
	lossy.p = 0
	lossy.mu.Unlock()
	v, err := c.Read(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(v) != strconv.Itoa(senders*each) {
		t.Fatalf("counter %s after %d increments", v, senders*each)
	}
	t.Logf("%d of %d changes learned on a retry that an earlier attempt had applied them", replayed, senders*each)
}

// Delete leaves the register empty, with no Table (a tombstone that garbage
// collection removes), where a change to the empty value keeps its Table.
func TestClientDelete(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	sc, err := synod.NewClient(synod.ProposerID("p", 1), cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dedup.NewClient(sc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := dedup.NewSender()
	empty := func([]byte) ([]byte, error) { return nil, nil }
	if _, err := c.Change(ctx, "k", s.Next(), empty); err != nil {
		t.Fatal(err)
	}
	if raw, err := sc.Read(ctx, "k"); err != nil || len(raw) == 0 {
		t.Fatalf("raw value after a change to empty: %x, %v; want the wrapped Table", raw, err)
	}
	if err := c.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if raw, err := sc.Read(ctx, "k"); err != nil || len(raw) != 0 {
		t.Fatalf("raw value after Delete: %x, %v; want the tombstone", raw, err)
	}
	if v, err := c.Read(ctx, "k"); err != nil || v != nil {
		t.Fatalf("Read after Delete: %q, %v", v, err)
	}
	res, err := c.Change(ctx, "k", s.Next(), func([]byte) ([]byte, error) { return []byte("again"), nil })
	if err != nil || string(res.Value) != "again" || res.Replayed {
		t.Fatalf("change after Delete: %+v, %v", res, err)
	}
}
