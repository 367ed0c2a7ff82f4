package procs

import "testing"

func TestBinaryName(t *testing.T) {
	tests := []struct{ pkg, want string }{
		{"github.com/nats-io/nats-server/v2", "nats-server"},
		{"./cmd/synod-acceptor", "synod-acceptor"},
		{"github.com/protosynod/protosynod/cmd/synod-bench", "synod-bench"},
		{"example.com/v2", "example.com"},
		{"example.com/tool/v12", "tool"},
		{"example.com/vx", "vx"},
	}
	for _, tt := range tests {
		if got := binaryName(tt.pkg); got != tt.want {
			t.Errorf("binaryName(%q) = %q, want %q", tt.pkg, got, tt.want)
		}
	}
}

func TestLastLines(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"", 3, ""},
	}
	for _, tt := range tests {
		if got := lastLines(tt.in, tt.n); got != tt.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
