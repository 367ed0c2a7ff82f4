package natstransport

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/protosynod/protosynod/synod"
)

func TestInspectCodecRoundTrip(t *testing.T) {
	reqs := []InspectRequest{
		{Kind: InspectKey, Key: "k"},
		{Kind: InspectKey, Key: strings.Repeat("k", MaxKeySize)},
		{Kind: InspectKeys},
		{Kind: InspectKeys, Prefix: "user/", After: "user/42", Limit: 10},
		{Kind: InspectConfig},
	}
	for _, req := range reqs {
		data, err := EncodeInspectRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeInspectRequest(data)
		if err != nil || !reflect.DeepEqual(got, req) {
			t.Errorf("round trip of %+v: got %+v, %v", req, got, err)
		}
	}
	info := KeyInfo{From: "a1", Key: "k", Promised: b2, Accepted: b1, ValueSize: 42}
	data, err := EncodeKeyInfo(info)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeKeyInfo(data); err != nil || got != info {
		t.Errorf("key info round trip: got %+v, %v", got, err)
	}
	for _, c := range []ConfigInfo{{From: "a1"}, {From: "a2", Config: synod.Config{Acceptors: []string{"a1", "a2", "a4"}, Epoch: 7}}} {
		data, err := EncodeConfigInfo(c)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := DecodeConfigInfo(data); err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("config info round trip of %+v: got %+v, %v", c, got, err)
		}
	}
	for _, page := range []KeyPage{{From: "a1", Keys: []string{}}, {From: "a1", Keys: []string{"a", "b\x00"}, More: true}} {
		data, err := EncodeKeyPage(page)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := DecodeKeyPage(data); err != nil || !reflect.DeepEqual(got, page) {
			t.Errorf("key page round trip of %+v: got %+v, %v", page, got, err)
		}
	}
}

func TestInspectCodecRejects(t *testing.T) {
	keyReq := mustEncode(EncodeInspectRequest(InspectRequest{Kind: InspectKey, Key: "k"}))
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"garbage", []byte("garbage!"), ErrMalformed},
		{"truncated", keyReq[:len(keyReq)-1], ErrMalformed},
		{"trailing", append(append([]byte{}, keyReq...), 0xc0), ErrMalformed},
		{"version 1", craft([]byte{0x93}, u(1), u(1), str("k")), ErrVersion},
		{"unknown kind", craft([]byte{0x93}, u(2), u(9), str("k")), ErrMalformed},
		{"empty key", craft([]byte{0x93}, u(2), u(1), str("")), synod.ErrInvalidRequest},
		{"keys request with 3 fields", craft([]byte{0x93}, u(2), u(2), str("p")), ErrMalformed},
		{"oversize", make([]byte, maxInspectFrame+1), ErrTooLarge},
		{"huge prefix", craft([]byte{0x95}, u(2), u(2), hdr32(0xdb, 1<<32-1)), ErrTooLarge},
		{"a reply as a request", mustEncode(EncodeKeyPage(KeyPage{From: "a1"})), ErrMalformed},
		{"config request with a key", craft([]byte{0x93}, u(2), u(3), str("k")), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeInspectRequest(tt.data); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	// A page announcing more keys than bytes left does not allocate them.
	huge := craft([]byte{0x95}, u(2), u(2), str("a1"), hdr32(0xdd, MaxInspectPage), []byte{0xc3})
	if _, err := DecodeKeyPage(huge); !errors.Is(err, ErrMalformed) {
		t.Errorf("page announcing %d keys in %d bytes: got %v", MaxInspectPage, len(huge), err)
	}
	// A configuration reply: another kind, a config that does not decode.
	for name, data := range map[string][]byte{
		"key info as config":  mustEncode(EncodeKeyInfo(KeyInfo{From: "a1", Key: "k"})),
		"config not bin":      craft([]byte{0x94}, u(2), u(3), str("a1"), str("x")),
		"config garbage":      craft([]byte{0x94}, u(2), u(3), str("a1"), []byte{0xc4, 2, 0xff, 0xff}),
		"config huge":         craft([]byte{0x94}, u(2), u(3), str("a1"), hdr32(0xc6, 1<<32-1)),
		"config extra fields": craft([]byte{0x95}, u(2), u(3), str("a1"), []byte{0xc0, 0xc0}),
	} {
		if _, err := DecodeConfigInfo(data); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	tooMany := craft([]byte{0x95}, u(2), u(2), str("a1"), hdr32(0xdd, MaxInspectPage+1))
	if _, err := DecodeKeyPage(tooMany); !errors.Is(err, ErrTooLarge) {
		t.Errorf("page of %d keys: got %v", MaxInspectPage+1, err)
	}
}

// inspectSeeds are valid and broken inspect frames for the fuzz targets.
func inspectSeeds(t testing.TB) [][]byte {
	return [][]byte{
		mustEncode(EncodeInspectRequest(InspectRequest{Kind: InspectKey, Key: "k"})),
		mustEncode(EncodeInspectRequest(InspectRequest{Kind: InspectKeys, Prefix: "p/", After: "p/1", Limit: 3})),
		mustEncode(EncodeKeyInfo(KeyInfo{From: "a1", Key: "k", Promised: b2, Accepted: b1, ValueSize: 7})),
		mustEncode(EncodeKeyPage(KeyPage{From: "a1", Keys: []string{"a", "b"}, More: true})),
		craft([]byte{0x95}, u(2), u(2), str("a1"), hdr32(0xdd, MaxInspectPage), []byte{0xc3}),
		[]byte("garbage!"),
		mustEncode(EncodeInspectRequest(InspectRequest{Kind: InspectConfig})),
		mustEncode(EncodeConfigInfo(ConfigInfo{From: "a1"})),
		mustEncode(EncodeConfigInfo(ConfigInfo{From: "a1", Config: synod.Config{Acceptors: []string{"a1", "a2", "a3"}, Epoch: 2}})),
	}
}

func FuzzDecodeInspectRequest(f *testing.F) {
	for _, s := range inspectSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeInspectRequest(data)
		if err != nil {
			return
		}
		again, err := DecodeInspectRequest(mustEncode(EncodeInspectRequest(req)))
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("re-encoding %+v: got %+v, %v", req, again, err)
		}
	})
}

func FuzzDecodeKeyInfo(f *testing.F) {
	for _, s := range inspectSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := DecodeKeyInfo(data)
		if err != nil {
			return
		}
		again, err := DecodeKeyInfo(mustEncode(EncodeKeyInfo(k)))
		if err != nil || again != k {
			t.Fatalf("re-encoding %+v: got %+v, %v", k, again, err)
		}
	})
}

func FuzzDecodeConfigInfo(f *testing.F) {
	for _, s := range inspectSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeConfigInfo(data)
		if err != nil {
			return
		}
		again, err := DecodeConfigInfo(mustEncode(EncodeConfigInfo(c)))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("re-encoding %+v: got %+v, %v", c, again, err)
		}
	})
}

func FuzzDecodeKeyPage(f *testing.F) {
	for _, s := range inspectSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeKeyPage(data)
		if err != nil {
			return
		}
		again, err := DecodeKeyPage(mustEncode(EncodeKeyPage(p)))
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("re-encoding %+v: got %+v, %v", p, again, err)
		}
	})
}

// TestWriteInspectSeedCorpus regenerates the inspect targets' testdata/fuzz
// when NATSTRANSPORT_WRITE_CORPUS=1; the corpus is committed.
func TestWriteInspectSeedCorpus(t *testing.T) {
	if os.Getenv("NATSTRANSPORT_WRITE_CORPUS") != "1" {
		t.Skip("set NATSTRANSPORT_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	for _, target := range []string{"FuzzDecodeInspectRequest", "FuzzDecodeKeyInfo", "FuzzDecodeKeyPage", "FuzzDecodeConfigInfo"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range inspectSeeds(t) {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
