package natstransport

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

// poolValue is the value of key k after round r: its size varies from a few
// bytes to over maxPooledBuf, so that frames go through pooled buffers, grow
// them and skip the pool.
func poolValue(k, r int) []byte {
	size := 1 + (k*37+r*11)%300
	if k%16 == 0 {
		size = maxPooledBuf + 1000
	}
	return bytes.Repeat([]byte{byte('a' + (k+r)%26)}, size)
}

// TestPooledBuffersKeepValues checks that the buffers the Transport and the
// Service reuse (request and reply frame encoding, reply decoding) never
// alias a value handed to a caller: the values Change returns and the
// current values a change function is given stay as they were while many
// more frames go through the same pools. Pooled buffers are poisoned when
// they are returned, so an alias shows at once, whatever the pool reuses.
func TestPooledBuffersKeepValues(t *testing.T) {
	const (
		keys    = 64
		rounds  = 4
		writers = 16
	)
	poisonPooled.Store(true)
	t.Cleanup(func() { poisonPooled.Store(false) })
	s := natstest.RunServer(t)
	h := newHarness(t, inProcess(s), 3, memoryStorage)
	writer, _ := h.client("writer", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	type kept struct {
		what string
		got  []byte // as handed out, never copied
		want []byte
	}
	var (
		mu   sync.Mutex
		keep []kept
	)
	hold := func(what string, got, want []byte) {
		mu.Lock()
		keep = append(keep, kept{what, got, bytes.Clone(want)})
		mu.Unlock()
	}
	write := func(first int) {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for r := range rounds {
					for k := first + w; k < first+keys; k += writers {
						want := poolValue(k, r)
						got, err := writer.Change(ctx, fmt.Sprintf("k%d", k), func([]byte) ([]byte, error) { return want, nil })
						if err != nil {
							t.Errorf("change k%d: %v", k, err)
							return
						}
						hold(fmt.Sprintf("Change of k%d round %d", k, r), got, want)
					}
				}
			})
		}
		wg.Wait()
	}
	write(0)

	// A second proposer has no one-round-trip entries: its changes prepare,
	// and the current values reach it in decoded prepare replies.
	reader, _ := h.client("reader", 2)
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			key := fmt.Sprintf("k%d", k)
			got, err := reader.Change(ctx, key, func(cur []byte) ([]byte, error) {
				hold("current value of "+key+" given to a change function", cur, cur)
				return append(bytes.Clone(cur), 'x'), nil
			})
			if err != nil {
				t.Errorf("change %s: %v", key, err)
				return
			}
			hold("Change of "+key+" by the second proposer", got, append(poolValue(k, rounds-1), 'x'))
		})
	}
	wg.Wait()
	write(keys) // more frames through the same pools, other keys

	mu.Lock()
	defer mu.Unlock()
	for _, k := range keep {
		if !bytes.Equal(k.got, k.want) {
			t.Errorf("%s changed after it was handed out: %d bytes %.20q..., want %d bytes %.20q...", k.what, len(k.got), k.got, len(k.want), k.want)
		}
	}
	for k := range keys {
		got, err := reader.Read(ctx, fmt.Sprintf("k%d", k))
		if want := append(poolValue(k, rounds-1), 'x'); err != nil || !bytes.Equal(got, want) {
			t.Errorf("read k%d: %d bytes, %v; want %d bytes", k, len(got), err, len(want))
		}
	}
}

// TestDecodeReplyFrameHints checks that hints only ever replace a decoded
// string by an equal one: a reply whose key or proposer differs from the
// hint still decodes to what it carries.
func TestDecodeReplyFrameHints(t *testing.T) {
	b := synod.Ballot{Counter: 3, Proposer: "p1"}
	items := []ReplyItem{
		{Seq: 1, Op: synod.OpAccept, Accept: synod.AcceptReply{Key: "k1", Ballot: b, OK: true}},
		{Seq: 2, Op: synod.OpAccept, Accept: synod.AcceptReply{Key: "k2", Ballot: synod.Ballot{Counter: 4, Proposer: "p2"}}},
		{Seq: 9, Op: synod.OpPrepare, Prepare: synod.PrepareReply{Key: "k3", Ballot: b, OK: true, Accepted: b, Value: []byte("v")}},
	}
	data := mustEncode(EncodeReplyFrame("a1", items))
	want, err := DecodeReplyFrame(data, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	hints := replyHints{from: "a2", item: func(i int, seq uint64) (string, string, bool) {
		return "k1", "p1", true // right for item 0 only
	}}
	reuse := make([]ReplyItem, 0, 1)
	reuse = append(reuse, ReplyItem{Seq: 77, Error: ItemError{Code: "stale"}})
	got, err := decodeReplyFrame(data, DefaultLimits(), reuse[:0], &hints)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("with hints: got %+v, want %+v", got, want)
	}
}
