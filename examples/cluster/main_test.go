package main

import (
	"errors"
	"io"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr error
		check   func(flags) bool
	}{
		{"defaults run everything", nil, nil, func(f flags) bool { return f.role == "all" && f.seed != 0 && f.acceptors == "a1,a2,a3" }},
		{"acceptor", []string{"-role", "acceptor", "-id", "a1", "-data", "/tmp/x", "-nats", "nats://h:4222"}, nil, func(f flags) bool { return f.id == "a1" }},
		{"acceptor needs data", []string{"-role", "acceptor", "-id", "a1", "-nats", "nats://h:4222"}, errUsage, nil},
		{"member needs nats", []string{"-role", "member", "-id", "m1"}, errUsage, nil},
		{"client ID defaults", []string{"-role", "client", "-nats", "nats://h:4222", "-seed", "7"}, nil, func(f flags) bool { return f.id == "client" && f.seed == 7 }},
		{"unknown role", []string{"-role", "proposer"}, errUsage, nil},
		{"stray argument", []string{"extra"}, errUsage, nil},
		{"bad flag", []string{"-nope"}, errUsage, nil},
		{"member with credentials", []string{"-role", "member", "-nats", "tls://h:4222", "-creds", "u.creds", "-tls-ca", "ca.pem"}, nil,
			func(f flags) bool {
				return f.conn.URLs == "tls://h:4222" && f.conn.Creds == "u.creds" && f.conn.TLSCA == "ca.pem"
			}},
		{"tls cert without key", []string{"-role", "member", "-nats", "tls://h:4222", "-tls-cert", "c.pem"}, errUsage, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parse(tt.args, io.Discard)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.check != nil && !tt.check(f) {
				t.Fatalf("flags %+v", f)
			}
		})
	}
}
