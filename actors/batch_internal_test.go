package actors

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/synod"
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

func TestEnvelopeRoundTrip(t *testing.T) {
	e := envelope{Codec: "msgpack", Seq: 3, State: []byte{1, 2}, Writer: 7, Run: 9,
		Recent: []*entry{{ID: "a", Type: "t", Reply: []byte("r")}}}
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
	if got.Seq != 3 || got.Codec != "msgpack" || !bytes.Equal(got.State, e.State) || got.Run != 9 || len(got.Recent) != 1 || got.Recent[0].ID != "a" {
		t.Fatalf("round trip: got %+v, want %+v", got, e)
	}
	for _, bad := range [][]byte{{0x91, 0x02}, {0xc1}, {0x93, 0x01}} {
		if _, err := decodeEnvelope(bad); err == nil {
			t.Errorf("decodeEnvelope(% x) accepted", bad)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	e := envelope{Codec: "msgpack", Seq: 1, State: []byte{0x81, 0xa1, 'N', 1},
		Recent: []*entry{{ID: "x", Type: "google.protobuf.Int64Value", Reply: []byte{8, 1}}}}
	b, _ := encodeEnvelope(&e)
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x91, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		for _, r := range e.Recent {
			_ = r.reply() // never panics, whatever the bytes
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
