package natstransport

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/protosynod/protosynod/synod"
)

func prepareItem(seq uint64, key string, b synod.Ballot) RequestItem {
	return RequestItem{Seq: seq, BatchRequest: synod.BatchRequest{Op: synod.OpPrepare, Prepare: synod.PrepareRequest{Key: key, Ballot: b}}}
}

func acceptItem(seq uint64, key string, b synod.Ballot, v []byte, next synod.Ballot) RequestItem {
	return RequestItem{Seq: seq, BatchRequest: synod.BatchRequest{Op: synod.OpAccept, Accept: synod.AcceptRequest{Key: key, Ballot: b, Value: v, Next: next}}}
}

func readItem(seq uint64, key string) RequestItem {
	return RequestItem{Seq: seq, BatchRequest: synod.BatchRequest{Op: synod.OpRead, Read: synod.ReadRequest{Key: key}}}
}

// sampleRequests has every kind of request item, epochs, nil, empty and
// non-empty values, and large sequence numbers.
func sampleRequests() []RequestItem {
	items := []RequestItem{
		prepareItem(1, "k", b1),
		acceptItem(2, "k", b1, []byte("v"), b2),
		acceptItem(3, "empty", b2, []byte{}, synod.Ballot{}),
		acceptItem(1<<40, "nil", b9, nil, synod.Ballot{}),
		readItem(1<<63, "r"),
	}
	items[0].Prepare.Epoch = 7
	items[1].Accept.Epoch = 1 << 33
	items[4].Read.Epoch = 300
	return items
}

func sampleReplies() []ReplyItem {
	return []ReplyItem{
		{Seq: 1, Op: synod.OpPrepare, Prepare: synod.PrepareReply{From: "a1", Key: "k", Ballot: b2, OK: true, Accepted: b1, Value: []byte("v")}},
		{Seq: 2, Op: synod.OpPrepare, Prepare: synod.PrepareReply{From: "a1", Key: "k", Ballot: b1, Seen: b9}},
		{Seq: 3, Op: synod.OpAccept, Accept: synod.AcceptReply{From: "a1", Key: "k", Ballot: b1, OK: true}},
		{Seq: 4, Op: synod.OpRead, Read: synod.ReadReply{From: "a1", Key: "k", Promised: b2, Accepted: b1, Value: []byte{}}},
		{Seq: 5, Op: synod.OpRead, Read: synod.ReadReply{From: "a1", Key: "empty"}},
		{Seq: 6, Error: ItemError{Code: "412", Message: "stale epoch", Detail: []byte{1, 2, 3}}},
		{Seq: 7, Error: ItemError{Code: CodeStorage, Message: "disk on fire"}},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	lim := DefaultLimits()
	reqs := sampleRequests()
	got, err := DecodeRequestFrame(mustEncode(EncodeRequestFrame(reqs)), lim)
	if err != nil || !reflect.DeepEqual(got, reqs) {
		t.Errorf("request frame: got %+v, %v; want %+v", got, err, reqs)
	}
	reps := sampleReplies()
	f, err := DecodeReplyFrame(mustEncode(EncodeReplyFrame("a1", reps)), lim)
	if err != nil || f.From != "a1" || !reflect.DeepEqual(f.Items, reps) {
		t.Errorf("reply frame: got %+v, %v; want from a1 %+v", f, err, reps)
	}
	// Nil and empty values stay apart.
	if got[2].Accept.Value == nil || got[3].Accept.Value != nil {
		t.Errorf("values: empty became %v, nil became %v", got[2].Accept.Value, got[3].Accept.Value)
	}
	// An empty frame is a frame.
	if got, err := DecodeRequestFrame(mustEncode(EncodeRequestFrame(nil)), lim); err != nil || len(got) != 0 {
		t.Errorf("empty request frame: got %v, %v", got, err)
	}
}

// TestFrameLayout pins the version-2 layout, and checks it is plain msgpack
// as the package doc describes it.
func TestFrameLayout(t *testing.T) {
	bp := synod.Ballot{Counter: 1, Proposer: "p"}
	items := []RequestItem{prepareItem(5, "k", bp), acceptItem(6, "k", bp, []byte("v"), synod.Ballot{}), readItem(7, "k")}
	items[2].Read.Epoch = 3
	got := mustEncode(EncodeRequestFrame(items))
	want := craft([]byte{0x92, 0x02, 0x93},
		[]byte{0x95, 0x01, 0x05, 0x00}, str("k"), ballotBytes(1, "p"),
		[]byte{0x97, 0x02, 0x06, 0x00}, str("k"), ballotBytes(1, "p"), []byte{0xc4, 0x01, 'v'}, ballotBytes(0, ""),
		[]byte{0x94, 0x03, 0x07, 0x03}, str("k"))
	if !bytes.Equal(got, want) {
		t.Errorf("request frame: got % x, want % x", got, want)
	}
	var generic []any
	if err := msgpack.Unmarshal(got, &generic); err != nil {
		t.Fatalf("request frame is not msgpack: %v", err)
	}
	wantGeneric := fmt.Sprint([]any{2, []any{
		[]any{1, 5, 0, "k", []any{1, "p"}},
		[]any{2, 6, 0, "k", []any{1, "p"}, []byte("v"), []any{0, ""}},
		[]any{3, 7, 3, "k"},
	}})
	if fmt.Sprint(generic) != wantGeneric {
		t.Errorf("request frame as msgpack: got %v, want %v", generic, wantGeneric)
	}
	rep := mustEncode(EncodeReplyFrame("a", []ReplyItem{
		{Seq: 5, Op: synod.OpAccept, Accept: synod.AcceptReply{Key: "k", Ballot: bp, OK: true}},
		{Seq: 6, Error: ItemError{Code: "500", Message: "m"}},
	}))
	wantRep := craft([]byte{0x93, 0x02}, str("a"), []byte{0x92},
		[]byte{0x96, 0x02, 0x05}, str("k"), ballotBytes(1, "p"), []byte{0xc3}, ballotBytes(0, ""),
		[]byte{0x95, 0x00, 0x06}, str("500"), str("m"), []byte{0xc0})
	if !bytes.Equal(rep, wantRep) {
		t.Errorf("reply frame: got % x, want % x", rep, wantRep)
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	lim := Limits{MaxValue: 64}
	item := craft([]byte{0x95, 0x01, 0x05, 0x00}, str("k"), ballotBytes(1, "p"))
	frame := func(items ...[]byte) []byte {
		return craft([]byte{0x92, 0x02, 0x90 | byte(len(items))}, craft(items...))
	}
	if _, err := DecodeRequestFrame(frame(item), lim); err != nil {
		t.Fatalf("valid frame rejected: %v", err)
	}
	const over = MaxFrameItems + 1
	tooMany := craft([]byte{0x92, 0x02, 0xdc, byte(over >> 8), byte(over & 0xff)}, bytes.Repeat(item, over))
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"version 1", craft([]byte{0x92, 0x01, 0x91}, item), ErrVersion},
		{"version 3", craft([]byte{0x92, 0x03, 0x91}, item), ErrVersion},
		{"three fields", craft([]byte{0x93, 0x02, 0x91}, item, u(0)), ErrMalformed},
		{"items not an array", craft([]byte{0x92, 0x02}, str("x")), ErrMalformed},
		{"items nil", []byte{0x92, 0x02, 0xc0}, ErrMalformed},
		{"more items than bytes", craft([]byte{0x92, 0x02, 0xdc, 0x03, 0x00}, item), ErrMalformed},
		{"item count 2^32-1", craft([]byte{0x92, 0x02}, hdr32(0xdd, 1<<32-1), item), ErrTooLarge},
		{"too many items", tooMany, ErrTooLarge},
		{"fewer items than announced", craft([]byte{0x92, 0x02, 0x92}, item), ErrMalformed},
		{"trailing item", craft([]byte{0x92, 0x02, 0x91}, item, item), ErrMalformed},
		{"unknown kind", frame(craft([]byte{0x95, 0x04, 0x05, 0x00}, str("k"), ballotBytes(1, "p"))), ErrMalformed},
		// 257 is prepare's kind 1 modulo 256: kinds are compared whole.
		{"kind 257", frame(craft([]byte{0x95, 0xcd, 0x01, 0x01, 0x05, 0x00}, str("k"), ballotBytes(1, "p"))), ErrMalformed},
		{"kind 0 in a request", frame(craft([]byte{0x95, 0x00, 0x05, 0x00}, str("k"), ballotBytes(1, "p"))), ErrMalformed},
		{"prepare with accept's fields", frame(craft([]byte{0x97, 0x01, 0x05, 0x00}, str("k"), ballotBytes(1, "p"), []byte{0xc0}, ballotBytes(0, ""))), ErrMalformed},
		{"item not an array", frame(str("k")), ErrMalformed},
		{"seq negative", frame(craft([]byte{0x95, 0x01, 0xff, 0x00}, str("k"), ballotBytes(1, "p"))), ErrMalformed},
		{"epoch as string", frame(craft([]byte{0x95, 0x01, 0x05}, str("1"), str("k"), ballotBytes(1, "p"))), ErrMalformed},
		{"oversize value", frame(craft([]byte{0x97, 0x02, 0x05, 0x00}, str("k"), ballotBytes(1, "p"), []byte{0xc4, 65}, make([]byte, 65), ballotBytes(0, ""))), ErrTooLarge},
		{"value length 2^32-1", frame(craft([]byte{0x97, 0x02, 0x05, 0x00}, str("k"), ballotBytes(1, "p"), hdr32(0xc6, 1<<32-1))), ErrTooLarge},
		{"key longer than frame", frame(craft([]byte{0x94, 0x03, 0x05, 0x00}, []byte{0xd9, 200}, []byte("k"))), ErrMalformed},
		{"frame over limit", make([]byte, lim.maxMessage()+1), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeRequestFrame(tt.data, lim); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want an error matching %v", err, tt.want)
			}
		})
	}
	// Request frames leave semantic checks to the acceptor, item by item.
	if got, err := DecodeRequestFrame(frame(craft([]byte{0x95, 0x01, 0x05, 0x00}, str(""), ballotBytes(0, ""))), lim); err != nil || len(got) != 1 {
		t.Errorf("frame with an empty key and zero ballot: got %v, %v; want one item", got, err)
	}
}

func TestDecodeReplyFrameRejects(t *testing.T) {
	lim := DefaultLimits()
	rframe := func(from string, items ...[]byte) []byte {
		return craft([]byte{0x93, 0x02}, str(from), []byte{0x90 | byte(len(items))}, craft(items...))
	}
	accept := func(key string, b, seen []byte) []byte {
		return craft([]byte{0x96, 0x02, 0x01}, str(key), b, []byte{0xc3}, seen)
	}
	ok := accept("k", ballotBytes(1, "p"), ballotBytes(0, ""))
	if _, err := DecodeReplyFrame(rframe("a", ok), lim); err != nil {
		t.Fatalf("valid reply frame rejected: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty from", rframe("", ok), ErrMalformed},
		{"empty key", rframe("a", accept("", ballotBytes(1, "p"), ballotBytes(0, ""))), synod.ErrInvalidRequest},
		{"zero ballot", rframe("a", accept("k", ballotBytes(0, ""), ballotBytes(0, ""))), synod.ErrInvalidRequest},
		{"invalid seen", rframe("a", accept("k", ballotBytes(1, "p"), ballotBytes(3, ""))), synod.ErrInvalidRequest},
		{"empty error code", rframe("a", craft([]byte{0x95, 0x00, 0x01}, str(""), str("m"), []byte{0xc0})), ErrMalformed},
		{"long error code", rframe("a", craft([]byte{0x95, 0x00, 0x01}, str("12345678901234567"), str("m"), []byte{0xc0})), ErrTooLarge},
		{"detail as string", rframe("a", craft([]byte{0x95, 0x00, 0x01}, str("500"), str("m"), str("d"))), ErrMalformed},
		{"error with 4 fields", rframe("a", craft([]byte{0x94, 0x00, 0x01}, str("500"), str("m"))), ErrMalformed},
		{"read reply empty key", rframe("a", craft([]byte{0x96, 0x03, 0x01}, str(""), ballotBytes(0, ""), ballotBytes(0, ""), []byte{0xc0})), synod.ErrInvalidRequest},
		{"unknown kind", rframe("a", craft([]byte{0x96, 0x09, 0x01}, str("k"), ballotBytes(1, "p"), []byte{0xc3}, ballotBytes(0, ""))), ErrMalformed},
		{"kind 258", rframe("a", craft([]byte{0x96, 0xcd, 0x01, 0x02, 0x01}, str("k"), ballotBytes(1, "p"), []byte{0xc3}, ballotBytes(0, ""))), ErrMalformed},
		{"request frame", mustEncode(EncodeRequestFrame(sampleRequests())), ErrMalformed},
		{"version 1 reply", mustEncode(EncodeAcceptReply(synod.AcceptReply{From: "a", Key: "k", Ballot: b1})), ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeReplyFrame(tt.data, lim); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want an error matching %v", err, tt.want)
			}
		})
	}
}

// TestDecodeFrameHugeLengthsStaySmall: headers announcing 2^32-1 items or
// bytes never make the frame decoders allocate anything near that.
func TestDecodeFrameHugeLengthsStaySmall(t *testing.T) {
	lim := DefaultLimits()
	inputs := map[string][]byte{
		"item array32":  craft([]byte{0x92, 0x02}, hdr32(0xdd, 1<<32-1), u(1)),
		"reply array32": craft([]byte{0x93, 0x02}, str("a"), hdr32(0xdd, 1<<32-1), u(1)),
		"item32":        craft([]byte{0x92, 0x02, 0x91}, hdr32(0xdd, 1<<32-1), u(1)),
		"key str32":     craft([]byte{0x92, 0x02, 0x91, 0x94, 0x03, 0x01, 0x00}, hdr32(0xdb, 1<<32-1), []byte("k")),
		"from str32":    craft([]byte{0x93, 0x02}, hdr32(0xdb, 1<<32-1)),
		"many items":    craft([]byte{0x92, 0x02, 0xdc, 0x04, 0x00}, bytes.Repeat([]byte{0x94, 0x03, 0x01, 0x00, 0xa1, 'k'}, 1023), []byte{0x94}),
	}
	const maxBytes = 1 << 20 // 1023 decoded items: ~200 KiB of structs, doubled by append
	for in, data := range inputs {
		for dn, decode := range map[string]func([]byte) error{
			"request": func(d []byte) error { _, err := DecodeRequestFrame(d, lim); return err },
			"reply":   func(d []byte) error { _, err := DecodeReplyFrame(d, lim); return err },
		} {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const runs = 5
			for range runs {
				if err := decode(data); err == nil {
					t.Errorf("%s as %s: decoded without error", in, dn)
				}
			}
			runtime.ReadMemStats(&after)
			if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > maxBytes {
				t.Errorf("%s as %s: %d bytes allocated per decode, want at most %d", in, dn, perRun, maxBytes)
			}
		}
	}
}

// frameSeeds are the seeds of the frame fuzz targets: valid frames of both
// directions, the version-1 messages (near misses), and crafted ones.
func frameSeeds(t testing.TB) [][]byte {
	out := [][]byte{
		mustEncode(EncodeRequestFrame(sampleRequests())),
		mustEncode(EncodeRequestFrame(sampleRequests()[:1])),
		mustEncode(EncodeRequestFrame(nil)),
		mustEncode(EncodeReplyFrame("a1", sampleReplies())),
		mustEncode(EncodeReplyFrame("a1", sampleReplies()[5:6])),
		mustEncode(EncodeReplyFrame("a1", nil)),
		craft([]byte{0x92, 0x02}, hdr32(0xdd, 1<<32-1), u(1)),
		craft([]byte{0x92, 0x02, 0x91, 0x97, 0x02, 0x05, 0x00}, str("k"), ballotBytes(1, "p"), hdr32(0xc6, 1<<32-1)),
	}
	return append(out, seeds(t)...)
}

func FuzzDecodeRequestFrame(f *testing.F) {
	for _, s := range frameSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, DecodeRequestFrame, EncodeRequestFrame)
	})
}

func FuzzDecodeReplyFrame(f *testing.F) {
	for _, s := range frameSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, DecodeReplyFrame, func(rf ReplyFrame) ([]byte, error) { return EncodeReplyFrame(rf.From, rf.Items) })
	})
}

// TestWriteFrameSeedCorpus regenerates the frame targets' testdata/fuzz when
// NATSTRANSPORT_WRITE_CORPUS=1; the corpus is committed.
func TestWriteFrameSeedCorpus(t *testing.T) {
	if os.Getenv("NATSTRANSPORT_WRITE_CORPUS") != "1" {
		t.Skip("set NATSTRANSPORT_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	for _, target := range []string{"FuzzDecodeRequestFrame", "FuzzDecodeReplyFrame"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range frameSeeds(t) {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
