package natstransport

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/synod"
)

// TestInspectEndpoint checks key state and paged listing, and that
// inspecting changes nothing: the state stays the same and a prepare with
// the ballot just above the promise is still granted.
func TestInspectEndpoint(t *testing.T) {
	s := natstest.RunServer(t)
	store := synod.NewMemoryStorage()
	_, acc := serveOne(t, natstest.Connect(t, s), "a1", store)
	nc := natstest.Connect(t, s)
	tr := newTransport(t, nc)
	ctx := ctxTimeout(t, 10*time.Second)
	in, err := NewInspector(nc, testCluster)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := tr.PrepareAt(ctx, "a1", synod.PrepareRequest{Key: "k", Ballot: b1}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.AcceptAt(ctx, "a1", synod.AcceptRequest{Key: "k", Ballot: b1, Value: []byte("hello"), Next: b2}); err != nil {
		t.Fatal(err)
	}
	before, _ := store.Load(ctx, "k")
	got, err := in.Key(ctx, "a1", "k")
	if err != nil {
		t.Fatal(err)
	}
	if want := (KeyInfo{From: "a1", Key: "k", Promised: b2, Accepted: b1, ValueSize: 5}); got != want {
		t.Errorf("Key = %+v, want %+v", got, want)
	}
	if got, err := in.Key(ctx, "a1", "never"); err != nil || got != (KeyInfo{From: "a1", Key: "never"}) {
		t.Errorf("Key of a key never written = %+v, %v; want zero ballots", got, err)
	}
	if after, _ := store.Load(ctx, "k"); !reflect.DeepEqual(after, before) {
		t.Errorf("inspect changed the state: %+v -> %+v", before, after)
	}
	var stored []string
	_ = store.Keys(ctx, func(k string) bool { stored = append(stored, k); return true })
	if !slices.Equal(stored, []string{"k"}) {
		t.Errorf("stored keys after inspecting = %q, want only k", stored)
	}
	b3 := synod.Ballot{Counter: 3, Proposer: b2.Proposer}
	if rep, err := tr.PrepareAt(ctx, "a1", synod.PrepareRequest{Key: "k", Ballot: b3}); err != nil || !rep.OK {
		t.Errorf("prepare above the promise after inspecting: %+v, %v", rep, err)
	}

	// Paging through keys by prefix.
	var want []string
	for i := range 25 {
		k := fmt.Sprintf("user/%02d", i)
		want = append(want, k)
		if _, err := tr.PrepareAt(ctx, "a1", synod.PrepareRequest{Key: k, Ballot: b1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"user", "user0", "users/x", "v"} {
		if _, err := tr.PrepareAt(ctx, "a1", synod.PrepareRequest{Key: k, Ballot: b1}); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	after, pages := "", 0
	for {
		p, err := in.Keys(ctx, "a1", "user/", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, p.Keys...)
		if !p.More {
			break
		}
		after = p.Keys[len(p.Keys)-1]
	}
	if !slices.Equal(all, want) || pages != 3 {
		t.Errorf("pages of user/: %d pages, keys %q; want 3 pages of %q", pages, all, want)
	}
	p, err := in.Keys(ctx, "a1", "", "", 0)
	if err != nil || len(p.Keys) != 30 || p.More {
		t.Errorf("all keys: %+v, %v; want 30 keys", p, err)
	}

	// Errors: an acceptor nobody serves, bad input on the subject.
	if _, err := in.Key(ctx, "a9", "k"); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("inspect of an acceptor nobody serves: %v", err)
	}
	subj, _ := InspectSubject(DefaultPrefix, testCluster, "a1")
	m, err := nc.RequestWithContext(ctx, subj, []byte("garbage!"))
	if err != nil {
		t.Fatal(err)
	}
	if err := replyError("a1", m); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage on the inspect subject: %v, want ErrMalformed", err)
	}

	// The configuration served: none yet, then the one installed (last:
	// the requests above carry epoch 0).
	if cfg, err := in.Config(ctx, "a1"); err != nil || cfg.Epoch != 0 || len(cfg.Acceptors) != 0 {
		t.Errorf("Config of an acceptor never given one = %+v, %v; want the zero Config", cfg, err)
	}
	installed := synod.Config{Acceptors: []string{"a1", "a2", "a3"}, Epoch: 3}
	if _, err := acc.Install(ctx, installed); err != nil {
		t.Fatal(err)
	}
	if cfg, err := in.Config(ctx, "a1"); err != nil || cfg.Epoch != 3 || !slices.Equal(cfg.Acceptors, installed.Acceptors) {
		t.Errorf("Config after installing epoch 3 = %+v, %v", cfg, err)
	}
	if _, err := in.Config(ctx, "a9"); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("Config of an acceptor nobody serves: %v", err)
	}
}

// TestInspectPermission: a NATS user allowed to publish only on inspect
// subjects can inspect, and cannot prepare.
func TestInspectPermission(t *testing.T) {
	s := natstest.RunServer(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "acceptor", Password: "pw"},
			{Username: "operator", Password: "pw", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"synod.*.*.inspect"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		}
	})
	serveOne(t, natstest.Connect(t, s, nats.UserInfo("acceptor", "pw")), "a1", synod.NewMemoryStorage())
	op := natstest.Connect(t, s, nats.UserInfo("operator", "pw"))
	in, err := NewInspector(op, testCluster)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := in.Key(ctx, "a1", "k"); err != nil {
		t.Fatalf("inspect as operator: %v", err)
	}
	if _, err := in.Config(ctx, "a1"); err != nil {
		t.Fatalf("inspect the configuration as operator: %v", err)
	}
	tr := newTransport(t, op)
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if rep, err := tr.PrepareAt(pctx, "a1", synod.PrepareRequest{Key: "k", Ballot: b1}); err == nil {
		t.Errorf("prepare as operator: got %+v, want an error", rep)
	}
}
