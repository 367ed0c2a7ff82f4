package natscluster

import (
	"errors"
	"testing"
	"time"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		ok   bool
	}{
		{"defaults", nil, true},
		{"dotted prefix", []Option{WithSubjectPrefix("acme.actors")}, true},
		{"zero join window", []Option{WithJoinWindow(0)}, true},
		{"nil logger keeps default", []Option{WithLogger(nil)}, true},
		{"empty prefix", []Option{WithSubjectPrefix("")}, false},
		{"wildcard prefix", []Option{WithSubjectPrefix("a.*")}, false},
		{"full wildcard prefix", []Option{WithSubjectPrefix(">")}, false},
		{"space in prefix", []Option{WithSubjectPrefix("a b")}, false},
		{"empty token", []Option{WithSubjectPrefix("a..b")}, false},
		{"trailing dot", []Option{WithSubjectPrefix("a.")}, false},
		{"zero interval", []Option{WithHeartbeatInterval(0)}, false},
		{"ttl equals interval", []Option{WithHeartbeatInterval(time.Second), WithTTL(time.Second)}, false},
		{"ttl below interval", []Option{WithHeartbeatInterval(time.Second), WithTTL(time.Millisecond)}, false},
		{"negative join window", []Option{WithJoinWindow(-1)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := defaultOptions()
			for _, opt := range tt.opts {
				opt(&o)
			}
			err := o.validate()
			if tt.ok && err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			if o.logger == nil {
				t.Fatal("nil logger")
			}
		})
	}
}
