package natstransport

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/protosynod/protosynod/synod"
)

var adminCfg = synod.Config{Acceptors: []string{"a1", "a2", "a4"}, Epoch: 3, Floor: 17}

func adminRequests() []AdminRequest {
	return []AdminRequest{
		{Kind: AdminInstall, Config: adminCfg},
		{Kind: AdminConfig},
		{Kind: AdminKeys, Limit: 1},
		{Kind: AdminKeys, After: "k/9", Limit: MaxAdminPage},
		{Kind: AdminState, Key: "k"},
		{Kind: AdminForget, Key: "k", Floor: 1 << 40},
		{Kind: AdminCompact},
	}
}

func adminReplies() []AdminReply {
	return []AdminReply{
		{Kind: AdminInstall, From: "a1", Config: adminCfg},
		{Kind: AdminConfig, From: "a1", Config: adminCfg},
		{Kind: AdminConfig, From: "a1"}, // never configured: the zero Config
		{Kind: AdminKeys, From: "a1", Keys: []string{}},
		{Kind: AdminKeys, From: "a1", Keys: []string{"a", "b"}, More: true},
		{Kind: AdminState, From: "a1", Key: "k", State: synod.AcceptorState{Promised: b2, Accepted: b1, Value: []byte("v")}},
		{Kind: AdminState, From: "a1", Key: "k"},
		{Kind: AdminForget, From: "a1", Key: "k", Removed: true},
		{Kind: AdminCompact, From: "a1", Before: 1 << 30, After: 12345},
		{From: "a1", Error: &ItemError{Code: CodeStaleEpoch, Message: "stale", Detail: mustEncode(adminCfg.MarshalBinary())}},
		{From: "a1", Error: &ItemError{Code: CodeInvalidConfig, Message: "conflicting"}},
	}
}

// TestAdminCodecRoundTrip encodes and decodes every admin message kind.
func TestAdminCodecRoundTrip(t *testing.T) {
	for _, req := range adminRequests() {
		t.Run("request "+req.Kind.String(), func(t *testing.T) {
			got, err := DecodeAdminRequest(mustEncode(EncodeAdminRequest(req)))
			if err != nil || !reflect.DeepEqual(got, req) {
				t.Fatalf("got %+v, %v; want %+v", got, err, req)
			}
		})
	}
	for _, rep := range adminReplies() {
		t.Run("reply "+rep.Kind.String(), func(t *testing.T) {
			got, err := DecodeAdminReply(mustEncode(EncodeAdminReply(rep)), DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Config.Acceptors == nil {
				rep.Config.Acceptors = got.Config.Acceptors // nil and empty decode alike
			}
			if !reflect.DeepEqual(got, rep) {
				t.Fatalf("got %+v, want %+v", got, rep)
			}
		})
	}
}

// TestAdminDecodeRejects checks that malformed, oversized and invalid admin
// messages are refused with the right sentinel.
func TestAdminDecodeRejects(t *testing.T) {
	badCfg := mustEncode(synod.Config{Acceptors: []string{"a1"}}.MarshalBinary()) // epoch 0
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"not an array", []byte{0x02}, ErrMalformed},
		{"version 1", craft([]byte{0x92}, u(1), u(2)), ErrVersion},
		{"unknown kind", craft([]byte{0x92}, u(2), u(9)), ErrMalformed},
		{"kind over a byte", craft([]byte{0x92}, u(2), []byte{0xcd, 0x01, 0x02}), ErrMalformed},
		{"config with a field too many", craft([]byte{0x93}, u(2), u(2), u(0)), ErrMalformed},
		{"keys limit 0", craft([]byte{0x94}, u(2), u(3), str(""), u(0)), synod.ErrInvalidRequest},
		{"keys limit over the page", craft([]byte{0x94}, u(2), u(3), str(""), []byte{0xcd, 0x13, 0x88}), synod.ErrInvalidRequest},
		{"state of the empty key", craft([]byte{0x93}, u(2), u(4), str("")), synod.ErrInvalidRequest},
		{"install epoch 0", craft([]byte{0x93}, u(2), u(1), append([]byte{0xc4, byte(len(badCfg))}, badCfg...)), synod.ErrInvalidConfig},
		{"install garbage config", craft([]byte{0x93}, u(2), u(1), []byte{0xc4, 2, 9, 9}), ErrMalformed},
		{"install huge config length", craft([]byte{0x93}, u(2), u(1), hdr32(0xc6, 1<<31)), ErrTooLarge},
		{"trailing bytes", craft([]byte{0x92}, u(2), u(2), u(0)), ErrMalformed},
		{"oversize", make([]byte, maxAdminMessage(DefaultLimits())+1), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeAdminRequest(tt.data)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	replies := []struct {
		name string
		data []byte
		want error
	}{
		{"keys count over the page", craft([]byte{0x95}, u(2), u(3), str("a1"), hdr32(0xdd, MaxAdminPage+1)), ErrTooLarge},
		{"keys count over the bytes", craft([]byte{0x95}, u(2), u(3), str("a1"), hdr32(0xdd, 50), []byte{0xc3}), ErrMalformed},
		{"empty from", craft([]byte{0x95}, u(2), u(5), str(""), str("k"), []byte{0xc3}), ErrMalformed},
		{"forget of the empty key", craft([]byte{0x95}, u(2), u(5), str("a1"), str(""), []byte{0xc3}), ErrMalformed},
		{"error without a code", craft([]byte{0x96}, u(2), u(0), str("a1"), str(""), str("m"), []byte{0xc0}), ErrMalformed},
	}
	for _, tt := range replies {
		t.Run("reply "+tt.name, func(t *testing.T) {
			_, err := DecodeAdminReply(tt.data, DefaultLimits())
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func adminSeeds() [][]byte {
	var out [][]byte
	for _, r := range adminRequests() {
		out = append(out, mustEncode(EncodeAdminRequest(r)))
	}
	for _, r := range adminReplies() {
		out = append(out, mustEncode(EncodeAdminReply(r)))
	}
	return append(out, craft([]byte{0x95}, u(2), u(3), str("a1"), hdr32(0xdd, MaxAdminPage), []byte{0xc3}), []byte("garbage!"))
}

func FuzzDecodeAdminRequest(f *testing.F) {
	for _, s := range adminSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeAdminRequest(data)
		if err != nil {
			return
		}
		again, err := DecodeAdminRequest(mustEncode(EncodeAdminRequest(req)))
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("re-encoding %+v: got %+v, %v", req, again, err)
		}
	})
}

func FuzzDecodeAdminReply(f *testing.F) {
	for _, s := range adminSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := DecodeAdminReply(data, DefaultLimits())
		if err != nil {
			return
		}
		again, err := DecodeAdminReply(mustEncode(EncodeAdminReply(rep)), DefaultLimits())
		if err != nil || !reflect.DeepEqual(again, rep) {
			t.Fatalf("re-encoding %+v: got %+v, %v", rep, again, err)
		}
	})
}

// TestWriteAdminSeedCorpus regenerates the admin targets' testdata/fuzz when
// NATSTRANSPORT_WRITE_CORPUS=1; the corpus is committed.
func TestWriteAdminSeedCorpus(t *testing.T) {
	if os.Getenv("NATSTRANSPORT_WRITE_CORPUS") != "1" {
		t.Skip("set NATSTRANSPORT_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	for _, target := range []string{"FuzzDecodeAdminRequest", "FuzzDecodeAdminReply"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range adminSeeds() {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
