package actors

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/dedup"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// gated holds the first Change until release is closed, and counts rounds.
type gated struct {
	Registers
	release chan struct{}
	rounds  atomic.Int64
}

func (g *gated) Change(ctx context.Context, key string, f synod.ChangeFunc) ([]byte, error) {
	if g.rounds.Add(1) == 1 {
		<-g.release
	}
	return g.Registers.Change(ctx, key, f)
}

type tally struct{ N int64 }

func addHandler(s tally, msg proto.Message) (tally, proto.Message, error) {
	s.N += msg.(*wrapperspb.Int64Value).GetValue()
	return s, wrapperspb.Int64(s.N), nil
}

// Messages that wait while a round is in flight are applied by the next
// round, all of them, in arrival order, in one commit; each sender gets the
// reply computed for its own message.
func TestWaitingMessagesShareOneRound(t *testing.T) {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	c, err := synod.NewClient(synod.ProposerID("n", 1), cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	g := &gated{Registers: c, release: make(chan struct{})}
	var once sync.Once
	queued := func(pending int) {
		if pending == n-1 { // all but the first, which is in the held round
			once.Do(func() { close(g.release) })
		}
	}
	props, err := Props(g, addHandler, func(o *options) { o.onQueue = queued })
	if err != nil {
		t.Fatal(err)
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer sys.Shutdown()
	pid, err := sys.Root.SpawnNamed(props, "hot")
	if err != nil {
		t.Fatal(err)
	}
	// Send in a known order from one goroutine, collect replies concurrently.
	futures := make([]*actor.Future, n)
	for i := range n {
		futures[i] = sys.Root.RequestFuture(pid, wrapperspb.Int64(int64(i+1)), 10*time.Second)
	}
	var sum int64
	for i, f := range futures {
		res, err := f.Result()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		sum += int64(i + 1)
		if got := res.(*wrapperspb.Int64Value).GetValue(); got != sum {
			t.Fatalf("reply to message %d = %d, want the running sum %d", i, got, sum)
		}
	}
	if got := g.rounds.Load(); got != 2 {
		t.Fatalf("%d rounds for %d messages, want 2 (one, then one batch)", got, n)
	}
}

func testSenders(t testing.TB) dedup.Table {
	var tb dedup.Table
	rep, err := encodeReply(wrapperspb.Int64(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []dedup.ID{{Sender: "a"}, {Sender: "s", Seq: 4}} {
		if tb, err = tb.With(id, rep, 8); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

func TestEnvelopeRoundTrip(t *testing.T) {
	e := envelope{Codec: "msgpack", Seq: 3, State: []byte{1, 2}, Writer: 7, Run: 9, Senders: testSenders(t)}
	b, err := encodeEnvelope(&e)
	if err != nil {
		t.Fatal(err)
	}
	d := msgpack.NewDecoder(bytes.NewReader(b))
	if n, err := d.DecodeArrayLen(); err != nil || n < 1 {
		t.Fatalf("encoding is not an array: %d, %v", n, err)
	}
	if v, err := d.DecodeUint8(); err != nil || v != envelopeVersion {
		t.Errorf("first element %d, %v; want version %d", v, err, envelopeVersion)
	}
	got, err := decodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 3 || got.Codec != "msgpack" || !bytes.Equal(got.State, e.State) || got.Run != 9 || got.Senders.Len() != 2 {
		t.Fatalf("round trip: got %+v, want %+v", got, e)
	}
	if v, rep := got.Senders.Check(dedup.ID{Sender: "s", Seq: 4}); v != dedup.Replay || fmt.Sprint(decodeReply("x", rep)) != "value:1" {
		t.Errorf("recorded reply: %v %v", v, decodeReply("x", rep))
	}
	for _, bad := range [][]byte{{0x91, 0x02}, {0xc1}, {0x93, 0x01}, {0x91, 0x03}, append(bytes.Clone(b), 0)} {
		if _, err := decodeEnvelope(bad); err == nil {
			t.Errorf("decodeEnvelope(% x) accepted", bad)
		}
	}
}

// A register written by the version 1 envelope (testdata/envelope-v1.msgpack,
// made by an actor of commit 4f8a769 after requests r1 (+5), r2 (-100,
// refused: overdraft), r3 (+37) and one with a random ID (+0)) still
// decodes: its state, and its window as one-shot senders whose replies a
// retry gets.
func TestEnvelopeV1StillDecodes(t *testing.T) {
	b, err := os.ReadFile("testdata/envelope-v1.msgpack")
	if err != nil {
		t.Fatal(err)
	}
	if b[1] != envelopeV1 {
		t.Fatalf("test vector is version %d", b[1])
	}
	e, err := decodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	type balance struct{ Balance int64 } // the bank examples' account
	var st balance
	if err := msgpack.Unmarshal(e.State, &st); err != nil {
		t.Fatal(err)
	}
	if e.Codec != "msgpack" || st.Balance != 42 || e.Seq != 4 || e.Senders.Len() != 4 {
		t.Fatalf("decoded codec %q state %+v seq %d, %d senders; want msgpack, 42, 4, 4", e.Codec, st, e.Seq, e.Senders.Len())
	}
	for _, tt := range []struct{ id, reply string }{
		{"r1", "value:5"},
		{"r3", "value:42"},
	} {
		v, rep := e.Senders.Check(dedup.ParseID(tt.id))
		if got := fmt.Sprint(decodeReply(tt.id, rep)); v != dedup.Replay || got != tt.reply {
			t.Errorf("%s: %v %s, want Replay %s", tt.id, v, got, tt.reply)
		}
	}
	v, rep := e.Senders.Check(dedup.ParseID("r2"))
	if er, ok := decodeReply("r2", rep).(*ErrorReply); v != dedup.Replay || !ok || er.Reason != "overdraft" {
		t.Errorf("r2: %v %v, want the recorded overdraft", v, decodeReply("r2", rep))
	}
	// An activation of today goes on from it.
	deposit := func(s balance, msg proto.Message) (balance, proto.Message, error) {
		s.Balance += msg.(*wrapperspb.Int64Value).GetValue()
		return s, wrapperspb.Int64(s.Balance), nil
	}
	a := &activation[balance]{h: deposit, opts: defaultOptions(), codec: Msgpack(), key: "k", writer: 1}
	r := newRound(a, []*item{{msg: wrapperspb.Int64(1), id: "r3"}, {msg: wrapperspb.Int64(8), id: "~s.1"}})
	v2, err := r.change(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(r.runs[0].replies); got != "[value:42 value:50]" {
		t.Errorf("replies %s, want [value:42 value:50] (r3 replayed, ~s.1 applied)", got)
	}
	if v2[1] != envelopeVersion {
		t.Errorf("rewritten as version %d", v2[1])
	}
	// What tools see of it.
	rv, err := DecodeRegisterValue(b)
	if err != nil || rv.EnvelopeVersion != 1 || rv.Version != 4 || len(rv.Senders) != 4 {
		t.Fatalf("DecodeRegisterValue(v1) = %+v, %v", rv, err)
	}
	rv2, err := DecodeRegisterValue(v2)
	if err != nil || rv2.EnvelopeVersion != 2 || len(rv2.Senders) != 5 {
		t.Fatalf("DecodeRegisterValue(v2) = %+v, %v", rv2, err)
	}
	if s := rv2.Senders[1]; s.ID != "r1" || fmt.Sprint(s.Reply) != "value:5" {
		t.Errorf("second sender %+v (sorted: the random ID's capital comes first)", s)
	}
	if s := rv2.Senders[4]; s.ID != "~s.1" || s.Sender != "s" || s.Seq != 1 || fmt.Sprint(s.Reply) != "value:50" {
		t.Errorf("last sender %+v", s)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	e := envelope{Codec: "msgpack", Seq: 1, State: []byte{0x81, 0xa1, 'N', 1}, Senders: testSenders(f)}
	b, _ := encodeEnvelope(&e)
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x91, 0x01})
	if v1, err := os.ReadFile("testdata/envelope-v1.msgpack"); err == nil {
		f.Add(v1)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		for _, r := range e.Senders.Entries() {
			_ = decodeReply(r.Sender, r.Reply) // never panics, whatever the bytes
		}
		if _, err := decodeState[tally](Msgpack(), e.State); err != nil {
			return
		}
		again, err := encodeEnvelope(&e)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := decodeEnvelope(again); err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
	})
}

// The batch's change function is pure: running it twice on the same value
// gives equal register values, apart from the run ID.
func TestChangeIsDeterministic(t *testing.T) {
	a := &activation[tally]{h: addHandler, opts: defaultOptions(), codec: Msgpack(), key: "k", writer: 1}
	items := []*item{{msg: wrapperspb.Int64(2), id: "a"}, {msg: wrapperspb.Int64(3)}, {msg: &Query{}, query: true}, {msg: wrapperspb.Int64(5), id: "a"}}
	r := newRound(a, items)
	v1, err := r.change(nil)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := r.change(nil)
	if err != nil {
		t.Fatal(err)
	}
	e1, _ := decodeEnvelope(v1)
	e2, _ := decodeEnvelope(v2)
	if e1.Run == e2.Run {
		t.Errorf("two runs share run ID %d", e1.Run)
	}
	e1.Run, e2.Run = 0, 0
	b1, _ := encodeEnvelope(&e1)
	b2, _ := encodeEnvelope(&e2)
	if !bytes.Equal(b1, b2) {
		t.Errorf("runs on one value differ:\n%+v\n%+v", e1, e2)
	}
	replies := r.runs[1].replies
	want := []string{"value:2", "value:5", fmt.Sprint(&State{Codec: "msgpack", Data: mustMsgpack(t, tally{5}), Version: 1}), "value:2"}
	for i, rep := range replies {
		if got := fmt.Sprint(rep); got != want[i] {
			t.Errorf("reply %d = %s, want %s", i, got, want[i])
		}
	}
}

func mustMsgpack(t *testing.T, v any) []byte {
	b, err := Msgpack().Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
