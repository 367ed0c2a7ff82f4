package natstransport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/protosynod/protosynod/synod"
)

var (
	b1 = synod.Ballot{Counter: 1, Proposer: "n1/0000000000000001"}
	b2 = synod.Ballot{Counter: 2, Proposer: "n1/0000000000000001"}
	b9 = synod.Ballot{Counter: 9, Proposer: "n2/00000000000000ff"}
)

// mustEncode unwraps an encoder's result; encoding a wire struct cannot fail.
func mustEncode(data []byte, err error) []byte {
	if err != nil {
		panic(fmt.Sprintf("encode: %v", err))
	}
	return data
}

// marshal encodes v with plain msgpack, for crafting frames.
func marshal(t testing.TB, v any) []byte {
	t.Helper()
	data, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return data
}

func TestCodecRoundTrip(t *testing.T) {
	lim := DefaultLimits()
	big := bytes.Repeat([]byte{0xab}, DefaultMaxValue)
	prepares := []synod.PrepareRequest{
		{Key: "k", Ballot: b1},
		{Key: strings.Repeat("k", MaxKeySize), Ballot: synod.Ballot{Counter: 1<<64 - 1, Proposer: strings.Repeat("p", MaxIDSize)}},
	}
	for _, want := range prepares {
		got, err := DecodePrepareRequest(mustEncode(EncodePrepareRequest(want)), lim)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("prepare request: got %+v, %v; want %+v", got, err, want)
		}
	}
	accepts := []synod.AcceptRequest{
		{Key: "k", Ballot: b1},
		{Key: "k", Ballot: b1, Value: []byte{}, Next: b2},
		{Key: "k", Ballot: b1, Value: []byte("v"), Next: b2},
		{Key: "k", Ballot: b1, Value: big},
	}
	for _, want := range accepts {
		got, err := DecodeAcceptRequest(mustEncode(EncodeAcceptRequest(want)), lim)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("accept request %q %d bytes: got err %v, equal %v", want.Key, len(want.Value), err, reflect.DeepEqual(got, want))
		}
	}
	preps := []synod.PrepareReply{
		{From: "a1", Key: "k", Ballot: b1, OK: true},
		{From: "a1", Key: "k", Ballot: b2, OK: true, Accepted: b1, Value: []byte("v")},
		{From: "a1", Key: "k", Ballot: b1, Seen: b9},
	}
	for _, want := range preps {
		got, err := DecodePrepareReply(mustEncode(EncodePrepareReply(want)), lim)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("prepare reply: got %+v, %v; want %+v", got, err, want)
		}
	}
	accs := []synod.AcceptReply{
		{From: "a1", Key: "k", Ballot: b1, OK: true},
		{From: "a1", Key: "k", Ballot: b1, Seen: b9},
	}
	for _, want := range accs {
		got, err := DecodeAcceptReply(mustEncode(EncodeAcceptReply(want)), lim)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("accept reply: got %+v, %v; want %+v", got, err, want)
		}
	}
	wantErr := ErrorReply{Code: CodeStorage, Message: "disk on fire"}
	gotErr, err := DecodeErrorReply(mustEncode(EncodeErrorReply(wantErr)), lim)
	if err != nil || gotErr != wantErr {
		t.Errorf("error reply: got %+v, %v; want %+v", gotErr, err, wantErr)
	}
}

// TestCodecLayout pins the wire layout: a change of it must bump WireVersion.
func TestCodecLayout(t *testing.T) {
	got := mustEncode(EncodePrepareRequest(synod.PrepareRequest{Key: "k", Ballot: synod.Ballot{Counter: 1, Proposer: "p"}}))
	want := []byte{0x93, 0x01, 0xa1, 'k', 0x92, 0x01, 0xa1, 'p'}
	if !bytes.Equal(got, want) {
		t.Errorf("prepare request frame: got % x, want % x", got, want)
	}
	got = mustEncode(EncodeAcceptRequest(synod.AcceptRequest{Key: "k", Ballot: synod.Ballot{Counter: 1, Proposer: "p"}}))
	want = []byte{0x95, 0x01, 0xa1, 'k', 0x92, 0x01, 0xa1, 'p', 0xc0, 0x92, 0x00, 0xa0}
	if !bytes.Equal(got, want) {
		t.Errorf("accept request frame: got % x, want % x", got, want)
	}
}

// craft builds frames field by field; header helpers write raw headers.
func craft(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func str(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }

func u(n byte) []byte { return []byte{n} }

func ballotBytes(counter byte, proposer string) []byte {
	return craft([]byte{0x92}, u(counter), str(proposer))
}

func hdr32(code byte, n uint32) []byte {
	b := []byte{code, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], n)
	return b
}

func TestDecodeRejects(t *testing.T) {
	lim := Limits{MaxValue: 64}
	valid := craft([]byte{0x93}, u(1), str("k"), ballotBytes(1, "p"))
	longKey := craft([]byte{0x93}, u(1), []byte{0xda, 0x04, 0x01}, bytes.Repeat([]byte{'k'}, MaxKeySize+1), ballotBytes(1, "p"))
	bigValue := marshal(t, &wireAcceptRequest{Version: 1, Key: "k", Ballot: toWire(b1), Value: make([]byte, 65)})
	okValue := marshal(t, &wireAcceptRequest{Version: 1, Key: "k", Ballot: toWire(b1), Value: make([]byte, 64)})
	if _, err := DecodePrepareRequest(valid, lim); err != nil {
		t.Fatalf("valid frame rejected: %v", err)
	}
	if _, err := DecodeAcceptRequest(okValue, lim); err != nil {
		t.Fatalf("value at the limit rejected: %v", err)
	}
	tests := []struct {
		name   string
		accept bool
		data   []byte
		want   error
	}{
		{"empty", false, nil, ErrMalformed},
		{"not an array", false, str("hello"), ErrMalformed},
		{"nil", false, []byte{0xc0}, ErrMalformed},
		{"empty array", false, []byte{0x90}, ErrMalformed},
		{"version 2", false, craft([]byte{0x93}, u(2), str("k"), ballotBytes(1, "p")), ErrVersion},
		{"version 0", false, craft([]byte{0x93}, u(0), str("k"), ballotBytes(1, "p")), ErrVersion},
		{"negative version", false, craft([]byte{0x93}, []byte{0xff}, str("k"), ballotBytes(1, "p")), ErrMalformed},
		{"too few fields", false, craft([]byte{0x92}, u(1), str("k")), ErrMalformed},
		{"too many fields", false, craft([]byte{0x94}, u(1), str("k"), ballotBytes(1, "p"), u(0)), ErrMalformed},
		{"truncated", false, valid[:len(valid)-1], ErrMalformed},
		{"trailing garbage", false, append(append([]byte{}, valid...), 0x00), ErrMalformed},
		{"key not a string", false, craft([]byte{0x93}, u(1), u(7), ballotBytes(1, "p")), ErrMalformed},
		{"key as binary", false, craft([]byte{0x93}, u(1), []byte{0xc4, 1, 'k'}, ballotBytes(1, "p")), ErrMalformed},
		{"empty key", false, craft([]byte{0x93}, u(1), str(""), ballotBytes(1, "p")), synod.ErrInvalidRequest},
		{"oversize key", false, longKey, ErrTooLarge},
		{"zero ballot", false, craft([]byte{0x93}, u(1), str("k"), ballotBytes(0, "")), synod.ErrInvalidRequest},
		{"ballot without proposer", false, craft([]byte{0x93}, u(1), str("k"), ballotBytes(3, "")), synod.ErrInvalidRequest},
		{"ballot with 3 fields", false, craft([]byte{0x93}, u(1), str("k"), []byte{0x93, 1}, str("p"), u(0)), ErrMalformed},
		{"counter as string", false, craft([]byte{0x93}, u(1), str("k"), []byte{0x92}, str("1"), str("p")), ErrMalformed},
		{"key length 2^32-1", false, craft([]byte{0x93}, u(1), hdr32(0xdb, 1<<32-1), []byte("k")), ErrTooLarge},
		{"proposer length 2^32-1", false, craft([]byte{0x93}, u(1), str("k"), []byte{0x92, 1}, hdr32(0xdb, 1<<32-1)), ErrTooLarge},
		{"array length 2^32-1", false, craft(hdr32(0xdd, 1<<32-1), u(1)), ErrMalformed},
		{"ballot length 2^32-1", false, craft([]byte{0x93}, u(1), str("k"), hdr32(0xdd, 1<<32-1)), ErrMalformed},
		{"key longer than frame", false, craft([]byte{0x93}, u(1), []byte{0xd9, 200}, []byte("k")), ErrMalformed},
		{"frame over limit", false, make([]byte, lim.maxMessage()+1), ErrTooLarge},
		{"accept frame on prepare", false, okValue, ErrMalformed},
		{"prepare frame on accept", true, valid, ErrMalformed},
		{"oversize value", true, bigValue, ErrTooLarge},
		{"value length 2^32-1", true, craft([]byte{0x95}, u(1), str("k"), ballotBytes(1, "p"), hdr32(0xc6, 1<<32-1)), ErrTooLarge},
		{"value as string", true, craft([]byte{0x95}, u(1), str("k"), ballotBytes(1, "p"), str("v"), ballotBytes(0, "")), ErrMalformed},
		{"next below ballot", true, marshal(t, &wireAcceptRequest{Version: 1, Key: "k", Ballot: toWire(b2), Next: toWire(b1)}), synod.ErrInvalidRequest},
		{"map instead of array", true, []byte{0x81, 0xa1, 'k', 0x01}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.accept {
				_, err = DecodeAcceptRequest(tt.data, lim)
			} else {
				_, err = DecodePrepareRequest(tt.data, lim)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want an error matching %v", err, tt.want)
			}
		})
	}
}

func TestDecodeRepliesReject(t *testing.T) {
	lim := DefaultLimits()
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty from", marshal(t, &wirePrepareReply{Version: 1, Key: "k", Ballot: toWire(b1), OK: true}), ErrMalformed},
		{"zero ballot", marshal(t, &wirePrepareReply{Version: 1, From: "a", Key: "k", OK: true}), synod.ErrInvalidRequest},
		{"invalid accepted", marshal(t, &wirePrepareReply{Version: 1, From: "a", Key: "k", Ballot: toWire(b1), Accepted: wireBallot{Counter: 1}}), synod.ErrInvalidRequest},
		{"empty key", marshal(t, &wirePrepareReply{Version: 1, From: "a", Ballot: toWire(b1)}), synod.ErrInvalidRequest},
		{"version 7", marshal(t, &wirePrepareReply{Version: 7, From: "a", Key: "k", Ballot: toWire(b1)}), ErrVersion},
		{"ok not bool", craft([]byte{0x98}, u(1), str("a"), str("k"), ballotBytes(1, "p"), u(1), ballotBytes(0, ""), ballotBytes(0, ""), []byte{0xc0}), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodePrepareReply(tt.data, lim); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want an error matching %v", err, tt.want)
			}
		})
	}
	if _, err := DecodeAcceptReply(marshal(t, &wireAcceptReply{Version: 1, From: "a", Key: "k", Ballot: toWire(b1), Seen: wireBallot{Proposer: "x"}}), lim); !errors.Is(err, synod.ErrInvalidRequest) {
		t.Errorf("accept reply with invalid seen ballot: got %v, want ErrInvalidRequest", err)
	}
	if _, err := DecodeErrorReply(marshal(t, &wireErrorReply{Version: 1}), lim); !errors.Is(err, ErrMalformed) {
		t.Errorf("error reply without code: got %v, want ErrMalformed", err)
	}
	if _, err := DecodeErrorReply(marshal(t, &wireErrorReply{Version: 1, Code: strings.Repeat("9", maxCodeSize+1)}), lim); !errors.Is(err, ErrTooLarge) {
		t.Errorf("error reply with long code: got %v, want ErrTooLarge", err)
	}
}

// TestDecodeHugeLengthPrefixesStaySmall feeds frames whose headers announce
// 2^32-1 elements or bytes and checks that decoding them allocates about as
// much as a tiny frame, never anything near what the headers claim.
func TestDecodeHugeLengthPrefixesStaySmall(t *testing.T) {
	lim := DefaultLimits()
	inputs := map[string][]byte{
		"str32 key":   craft([]byte{0x93}, u(1), hdr32(0xdb, 1<<32-1), []byte("k")),
		"bin32 value": craft([]byte{0x95}, u(1), str("k"), ballotBytes(1, "p"), hdr32(0xc6, 1<<32-1), []byte("v")),
		"bin32 under limit": craft([]byte{0x95}, u(1), str("k"), ballotBytes(1, "p"),
			hdr32(0xc6, DefaultMaxValue), []byte("v")),
		"array32 frame":  craft(hdr32(0xdd, 1<<32-1), u(1)),
		"array32 ballot": craft([]byte{0x93}, u(1), str("k"), hdr32(0xdd, 1<<32-1)),
		"str32 from":     craft([]byte{0x98}, u(1), hdr32(0xdb, 1<<32-1)),
		"str32 message":  craft([]byte{0x93}, u(1), str("500"), hdr32(0xdb, 1<<32-1)),
		"map32":          hdr32(0xdf, 1<<32-1),
	}
	decoders := map[string]func([]byte) error{
		"prepare request": func(d []byte) error { _, err := DecodePrepareRequest(d, lim); return err },
		"accept request":  func(d []byte) error { _, err := DecodeAcceptRequest(d, lim); return err },
		"prepare reply":   func(d []byte) error { _, err := DecodePrepareReply(d, lim); return err },
		"accept reply":    func(d []byte) error { _, err := DecodeAcceptReply(d, lim); return err },
		"error reply":     func(d []byte) error { _, err := DecodeErrorReply(d, lim); return err },
	}
	const maxBytes = 16 << 10 // a decode of a tiny frame allocates ~1 KiB
	for in, data := range inputs {
		for dn, decode := range decoders {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const runs = 10
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

// roundTrip checks the fuzz property for one decoder: a frame that decodes
// re-encodes to a frame that decodes to the same value.
func roundTrip[T any](t *testing.T, data []byte, decode func([]byte, Limits) (T, error), encode func(T) ([]byte, error)) {
	lim := Limits{MaxValue: 1 << 10}
	v, err := decode(data, lim)
	if err != nil {
		return
	}
	again, err := encode(v)
	if err != nil {
		t.Fatalf("re-encode %+v: %v", v, err)
	}
	w, err := decode(again, lim)
	if err != nil {
		t.Fatalf("decode of re-encoded %+v: %v", v, err)
	}
	if !reflect.DeepEqual(v, w) {
		t.Fatalf("round trip changed the value: %+v became %+v", v, w)
	}
}

// seeds returns valid frames of every kind plus a few crafted ones, for every
// fuzz target (a frame of another kind is a useful near miss).
func seeds(t testing.TB) [][]byte {
	return [][]byte{
		mustEncode(EncodePrepareRequest(synod.PrepareRequest{Key: "k", Ballot: b1})),
		mustEncode(EncodeAcceptRequest(synod.AcceptRequest{Key: "k", Ballot: b1, Value: []byte("v"), Next: b2})),
		mustEncode(EncodeAcceptRequest(synod.AcceptRequest{Key: "k", Ballot: b1})),
		mustEncode(EncodePrepareReply(synod.PrepareReply{From: "a1", Key: "k", Ballot: b2, OK: true, Accepted: b1, Value: []byte("v")})),
		mustEncode(EncodePrepareReply(synod.PrepareReply{From: "a1", Key: "k", Ballot: b1, Seen: b9})),
		mustEncode(EncodeAcceptReply(synod.AcceptReply{From: "a1", Key: "k", Ballot: b1, OK: true})),
		mustEncode(EncodeErrorReply(ErrorReply{Code: CodeStorage, Message: "disk"})),
		craft([]byte{0x93}, u(1), hdr32(0xdb, 1<<32-1), []byte("k")),
		craft(hdr32(0xdd, 1<<32-1), u(1)),
		craft([]byte{0x95}, u(1), str("k"), ballotBytes(1, "p"), hdr32(0xc6, 1<<32-1)),
		{},
	}
}

func addSeeds(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
}

func FuzzDecodePrepareRequest(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodePrepareRequest, EncodePrepareRequest) })
}

func FuzzDecodeAcceptRequest(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeAcceptRequest, EncodeAcceptRequest) })
}

func FuzzDecodePrepareReply(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodePrepareReply, EncodePrepareReply) })
}

func FuzzDecodeAcceptReply(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeAcceptReply, EncodeAcceptReply) })
}

func FuzzDecodeErrorReply(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeErrorReply, EncodeErrorReply) })
}

// TestWriteSeedCorpus regenerates testdata/fuzz from seeds when
// NATSTRANSPORT_WRITE_CORPUS=1; the corpus is committed.
func TestWriteSeedCorpus(t *testing.T) {
	if os.Getenv("NATSTRANSPORT_WRITE_CORPUS") != "1" {
		t.Skip("set NATSTRANSPORT_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	for _, target := range []string{"FuzzDecodePrepareRequest", "FuzzDecodeAcceptRequest", "FuzzDecodePrepareReply", "FuzzDecodeAcceptReply", "FuzzDecodeErrorReply"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds(t) {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
