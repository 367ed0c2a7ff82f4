package natscluster

import (
	"errors"
	"strings"
	"testing"
)

func TestHeartbeatRoundTrip(t *testing.T) {
	want := heartbeat{Version: wireVersion, ID: "id.2", Instance: "id", Seq: 7, Host: "10.0.0.1", Port: 4000, Kinds: []string{"a", "b"}, TTLMillis: 3000}
	got, err := decodeHeartbeat(encode(want))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !sameHeartbeat(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestLeaveRoundTrip(t *testing.T) {
	want := leave{Version: wireVersion, ID: "id"}
	got, err := decodeLeave(encode(want))
	if err != nil || got != want {
		t.Fatalf("got %+v %v, want %+v", got, err, want)
	}
}

func TestDecodeHeartbeatRejects(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"not json", `hello`},
		{"empty", ``},
		{"no version", `{"id":"a","host":"h","port":1}`},
		{"future version", `{"v":2,"id":"a","host":"h","port":1}`},
		{"empty id", `{"v":1,"id":"","host":"h","port":1}`},
		{"long id", `{"v":1,"id":"` + strings.Repeat("x", maxIDLen+1) + `","host":"h","port":1}`},
		{"long instance", `{"v":1,"id":"a","inst":"` + strings.Repeat("x", maxIDLen+1) + `","host":"h","port":1}`},
		{"negative seq", `{"v":1,"id":"a","host":"h","port":1,"seq":-1}`},
		{"no host", `{"v":1,"id":"a","port":1}`},
		{"zero port", `{"v":1,"id":"a","host":"h","port":0}`},
		{"big port", `{"v":1,"id":"a","host":"h","port":65536}`},
		{"empty kind", `{"v":1,"id":"a","host":"h","port":1,"kinds":[""]}`},
		{"negative ttl", `{"v":1,"id":"a","host":"h","port":1,"ttl_ms":-1}`},
		{"oversize", `{"v":1,"id":"a","host":"h","port":1,"pad":"` + strings.Repeat("x", maxMessageSize) + `"}`},
		{"wrong type", `{"v":"1","id":"a","host":"h","port":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeHeartbeat([]byte(tt.data))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDecodeAcceptsUnknownFields(t *testing.T) {
	if _, err := decodeHeartbeat([]byte(`{"v":1,"id":"a","host":"h","port":1,"zone":"eu"}`)); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(heartbeat{Version: wireVersion, ID: "id", Host: "h", Port: 1, Kinds: []string{"k"}, TTLMillis: 1}))
	f.Add(encode(heartbeat{Version: wireVersion, ID: "id.2", Instance: "id", Seq: 9, Host: "h", Port: 1, TTLMillis: 1}))
	f.Add(encode(leave{Version: wireVersion, ID: "id"}))
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if h, err := decodeHeartbeat(data); err == nil {
			again, err := decodeHeartbeat(encode(h))
			if err != nil || !sameHeartbeat(h, again) {
				t.Fatalf("heartbeat %+v does not round-trip: %+v %v", h, again, err)
			}
		}
		if l, err := decodeLeave(data); err == nil {
			again, err := decodeLeave(encode(l))
			if err != nil || again != l {
				t.Fatalf("leave %+v does not round-trip: %+v %v", l, again, err)
			}
		}
	})
}

func sameHeartbeat(a, b heartbeat) bool {
	return sameMember(a, b) && a.ID == b.ID && a.Instance == b.Instance && a.Seq == b.Seq && a.TTLMillis == b.TTLMillis
}
