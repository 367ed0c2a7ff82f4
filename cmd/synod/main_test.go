package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// startAcceptors serves acceptors a1..a3 of cluster "demo" over an embedded
// nats-server and returns its URL.
func startAcceptors(t *testing.T) string {
	t.Helper()
	s := natstest.RunServer(t)
	for _, id := range []string{"a1", "a2", "a3"} {
		nc := natstest.Connect(t, s)
		svc, err := natstransport.Serve(context.Background(), nc, "demo", synod.NewAcceptor(id, synod.NewMemoryStorage()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Stop(context.Background()) })
	}
	return s.ClientURL()
}

func cli(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := func(k string) string {
		if k == "SYNOD_NATS" {
			return url
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := run(ctx, args, env, &out, &errOut)
	return out.String(), err
}

func TestCLI(t *testing.T) {
	url := startAcceptors(t)
	set := []string{"-cluster", "demo", "-acceptors", "a1,a2,a3"}

	out, err := cli(t, url, "acceptors")
	if err != nil {
		t.Fatalf("acceptors: %v", err)
	}
	for _, id := range []string{"a1", "a2", "a3"} {
		if !strings.Contains(out, "demo     "+id) {
			t.Errorf("acceptors output lacks %s:\n%s", id, out)
		}
	}
	if out, err = cli(t, url, append(set, "read", "k")...); err != nil || out != "(empty register)\n" {
		t.Fatalf("read of a new key = %q, %v; want (empty register)", out, err)
	}
	if _, err = cli(t, url, append(set, "write", "k", "v1")...); err != nil {
		t.Fatalf("write: %v", err)
	}
	if out, err = cli(t, url, append(set, "read", "k")...); err != nil || out != "v1\n" {
		t.Fatalf("read after write = %q, %v; want v1", out, err)
	}
	if out, err = cli(t, url, append(set, "read", "-round", "k")...); err != nil || out != "v1\n" {
		t.Fatalf("read -round after write = %q, %v; want v1", out, err)
	}
	if out, err = cli(t, url, append(set, "delete", "k")...); err != nil || out != "k deleted\n" {
		t.Fatalf("delete = %q, %v", out, err)
	}
	if out, err = cli(t, url, append(set, "read", "-round", "k")...); err != nil || out != "(empty register)\n" {
		t.Fatalf("read after delete = %q, %v; want (empty register)", out, err)
	}
	if _, err = cli(t, url, append(set, "write", "k", "v2")...); err != nil {
		t.Fatalf("write after delete: %v", err)
	}
	if out, err = cli(t, url, append(set, "read", "k")...); err != nil || out != "v2\n" {
		t.Fatalf("read after delete and write = %q, %v; want v2", out, err)
	}
	if out, err = cli(t, url, append(set, "members")...); err != nil || !strings.Contains(out, "epoch 0: acceptors a1,a2,a3 (prepare quorum 2, accept quorum 2") {
		t.Fatalf("members = %q, %v", out, err)
	}
	if out, err = cli(t, url, append(set, "-cluster", "other", "acceptors")...); err == nil {
		t.Errorf("acceptors of an unknown cluster = %q, want an error", out)
	}
}

// TestCLIJSON checks that -json works before and after the command name and
// prints one JSON document per command.
func TestCLIJSON(t *testing.T) {
	url := startAcceptors(t)
	set := []string{"-cluster", "demo", "-acceptors", "a1,a2,a3"}

	out, err := cli(t, url, "-json", "acceptors")
	if err != nil {
		t.Fatalf("acceptors: %v", err)
	}
	var list []acceptorInfo
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("acceptors -json: %v\n%s", err, out)
	}
	if len(list) != 3 || list[0].Acceptor != "a1" || list[2].Acceptor != "a3" || list[0].Cluster != "demo" {
		t.Errorf("acceptors -json = %+v, want a1..a3 of demo", list)
	}

	var got readResult
	decode := func(out string, err error) readResult {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var r readResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return r
	}
	if got = decode(cli(t, url, append(set, "read", "k", "-json")...)); got.Key != "k" || !got.Value.Empty {
		t.Errorf("read -json of a new key = %+v", got)
	}
	if got = decode(cli(t, url, append(set, "write", "-json", "k", "v1")...)); got.Value.Text != "v1" || got.Value.Size != 2 {
		t.Errorf("write -json = %+v", got)
	}
	if got = decode(cli(t, url, append(set, "-json", "write", "k", "\x00\x01")...)); got.Value.Base64 == nil || got.Value.Text != "" {
		t.Errorf("write -json of binary = %+v, want base64", got)
	}
	got = decode(cli(t, url, append(set, "read", "k", "-json")...))
	if string(got.Value.Base64) != "\x00\x01" {
		t.Errorf("read -json of binary = %+v", got)
	}
}

func TestCLIUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"frobnicate"}},
		{"read without acceptor set", []string{"-cluster", "demo", "read", "k"}},
		{"write without value", []string{"-cluster", "demo", "-acceptors", "a1", "write", "k"}},
		{"bad flag", []string{"-no-such-flag", "acceptors"}},
		{"bad command flag", []string{"acceptors", "-no-such-flag"}},
		{"extra argument", []string{"acceptors", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, func(string) string { return "" }, &out, &errOut)
			if !errors.Is(err, errUsage) {
				t.Fatalf("err = %v, want a usage error", err)
			}
		})
	}
}
