package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protosynod/protosynod/actors"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/persistence"
	"github.com/protosynod/protosynod/synod"
)

var set = []string{"-cluster", "demo", "-acceptors", "a1,a2,a3"}

// testTransport returns a natstransport Transport to the "demo" acceptors.
func testTransport(t *testing.T, url string) *natstransport.Transport {
	t.Helper()
	nc, err := natsConnect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	tr, err := natstransport.NewTransport(nc, "demo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// writeAll writes key through the CLI and waits until every acceptor holds
// the write: a write returns once a quorum accepted, and the last acceptor's
// accept may still be on its way.
func writeAll(t *testing.T, url, key, value string) {
	t.Helper()
	if _, err := cli(t, url, append(set, "write", key, value)...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := cli(t, url, append(set, "-json", "inspect", key)...)
		var res inspectResult
		if err == nil && json.Unmarshal([]byte(out), &res) == nil && res.Agree {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("acceptors do not agree on %s after 10s: %v\n%s", key, err, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestInspectAndKeys makes the acceptors disagree on purpose and checks
// that inspect shows it, as a table and as JSON, and that keys lists by
// prefix across pages.
func TestInspectAndKeys(t *testing.T) {
	url := startAcceptors(t)
	tr := testTransport(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	writeAll(t, url, "k", "v1")

	out, err := cli(t, url, append(set, "inspect", "k")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "all acceptors agree") || strings.Count(out, "current") != 3 {
		t.Errorf("inspect of an agreed key:\n%s", out)
	}

	// A proposer with a higher ballot writes v2 through a2 and a3 only: a1 lags.
	b := synod.Ballot{Counter: 1000, Proposer: "test/1"}
	for _, id := range []string{"a2", "a3"} {
		if _, err := tr.PrepareAt(ctx, id, synod.PrepareRequest{Key: "k", Ballot: b}); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.AcceptAt(ctx, id, synod.AcceptRequest{Key: "k", Ballot: b, Value: []byte("v2!")}); err != nil {
			t.Fatal(err)
		}
	}
	// And an unfinished change of key u: only a1 accepted it.
	writeAll(t, url, "u", "old")
	if _, err := tr.AcceptAt(ctx, "a1", synod.AcceptRequest{Key: "u", Ballot: b, Value: []byte("half-written")}); err != nil {
		t.Fatal(err)
	}

	out, err = cli(t, url, append(set, "inspect", "k")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("synod inspect k:\n%s", out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ACCEPTOR\s+EPOCH\s+PROMISED\s+ACCEPTED\s+VALUE BYTES\s+STATUS$`),
		regexp.MustCompile(`(?m)^a1\s+0\s+\S+\s+\S+\s+2\s+lags$`),
		regexp.MustCompile(`(?m)^a2\s+0\s+1000\S*\s+1000\S*\s+3\s+current$`),
		regexp.MustCompile(`(?m)^lagging behind a newer value: a1 `),
		regexp.MustCompile(`(?m)^chosen: ballot 1000/test/1 `),
	} {
		if !want.MatchString(out) {
			t.Errorf("inspect k output lacks %v", want)
		}
	}

	var res inspectResult
	out, err = cli(t, url, append(set, "inspect", "-json", "u")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("synod inspect -json u:\n%s", out)
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Agree || !slices.Equal(res.Unchosen, []string{"a1"}) || len(res.Lagging) != 0 || res.Chosen == nil ||
		res.Acceptors[0].Status != statusUnchosen || res.Acceptors[0].ValueSize != len("half-written") || res.Acceptors[1].Status != statusCurrent {
		t.Errorf("inspect -json u = %+v", res)
	}

	// An empty register, and an acceptor that does not answer.
	out, err = cli(t, url, "-cluster", "demo", "-acceptors", "a1,a2,a3,a4", "-json", "inspect", "none")
	if err != nil {
		t.Fatal(err)
	}
	res = inspectResult{}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Agree || res.Chosen != nil || !slices.Equal(res.Unreachable, []string{"a4"}) || res.Acceptors[0].Status != statusEmpty {
		t.Errorf("inspect of an empty key with a4 missing = %+v", res)
	}

	// Keys: k and u, then pages of user/.
	for i := range 5 {
		writeAll(t, url, "user/"+string(rune('a'+i)), "x")
	}
	out, err = cli(t, url, append(set, "keys", "")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("synod keys \"\":\n%s", out)
	if !regexp.MustCompile(`(?m)^k\s+a1,a2,a3$`).MatchString(out) || !strings.Contains(out, "user/e") {
		t.Errorf("keys of everything:\n%s", out)
	}
	var page keysResult
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("keys -after does not advance")
		}
		out, err = cli(t, url, append(set, "keys", "-json", "-limit", "2", "-after", after, "user/")...)
		if err != nil {
			t.Fatal(err)
		}
		page = keysResult{}
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			t.Fatal(err)
		}
		for _, k := range page.Keys {
			got = append(got, k.Key)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if want := []string{"user/a", "user/b", "user/c", "user/d", "user/e"}; !slices.Equal(got, want) {
		t.Errorf("keys user/ by pages of 2 = %q, want %q", got, want)
	}

	// Configuration epochs: a reconfiguration that reached a1 and a2 only.
	next := synod.Config{Acceptors: []string{"a1", "a2", "a3"}, Epoch: 1}
	for _, id := range []string{"a1", "a2"} {
		if _, err := tr.Install(ctx, id, next); err != nil {
			t.Fatal(err)
		}
	}
	out, err = cli(t, url, append(set, "inspect", "k")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("synod inspect k after installing epoch 1 on a1 and a2:\n%s", out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^a1\s+1\s+\S+\s+\S+\s+2\s+lags$`),
		regexp.MustCompile(`(?m)^a3\s+0\s+1000\S*\s+1000\S*\s+3\s+current$`),
		regexp.MustCompile(`(?m)^serving a configuration older than epoch 1: a3 `),
	} {
		if !want.MatchString(out) {
			t.Errorf("inspect k output lacks %v", want)
		}
	}
	out, err = cli(t, url, append(set, "inspect", "-json", "k")...)
	if err != nil {
		t.Fatal(err)
	}
	res = inspectResult{}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if a1 := res.Acceptors[0]; res.Epoch != 1 || !slices.Equal(res.StaleConfig, []string{"a3"}) || a1.Epoch == nil || *a1.Epoch != 1 ||
		!slices.Equal(a1.ConfigAcceptors, next.Acceptors) || res.Acceptors[2].Epoch == nil || *res.Acceptors[2].Epoch != 0 {
		t.Errorf("inspect -json k after installing epoch 1 on a1 and a2:\n%s", out)
	}
}

// TestReadDecode writes an actors envelope and a persistence record through
// their own packages and renders them with read -decode.
func TestReadDecode(t *testing.T) {
	url := startAcceptors(t)
	tr := testTransport(t, url)
	reg, err := synod.NewClient(synod.RandomProposerID("test"), synod.Config{Acceptors: []string{"a1", "a2", "a3"}}, tr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// An actor whose state counts deposits.
	type account struct{ Balance int64 }
	props, err := actors.Props(reg, func(a account, msg proto.Message) (account, proto.Message, error) {
		a.Balance += msg.(*wrapperspb.Int64Value).GetValue()
		return a, wrapperspb.Int64(a.Balance), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	defer sys.Shutdown()
	pid, err := sys.Root.SpawnNamed(props, "account-42")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := actors.Request(ctx, actors.Local(sys, pid), wrapperspb.Int64(100), actors.WithRequestID("client-7:1")); err != nil {
		t.Fatal(err)
	}

	out, err := cli(t, url, append(set, "read", "actors/account-42", "-decode")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("synod read actors/account-42 -decode:\n%s", out)
	var res readResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	a := res.Decoded.Actors
	if res.Decoded.Format != formatActors || a == nil || a.Codec != "msgpack" || a.Version != 1 || len(a.Senders) != 1 {
		t.Fatalf("decoded = %+v", res.Decoded)
	}
	if st, _ := json.Marshal(a.State); string(st) != `{"Balance":100}` {
		t.Errorf("state = %s, want {\"Balance\":100}", st)
	}
	if s := a.Senders[0]; s.ID != "client-7:1" || !strings.Contains(string(s.Reply), "100") {
		t.Errorf("sender record = %+v (reply %s)", s, s.Reply)
	}

	// A persistence record: a snapshot and two events.
	prov, err := persistence.NewProvider(reg)
	if err != nil {
		t.Fatal(err)
	}
	st := prov.NewState()
	st.PersistEvent("journal", 0, wrapperspb.String("opened"))
	st.PersistSnapshot("journal", 1, wrapperspb.String("snapshot at 1"))
	st.PersistEvent("journal", 1, wrapperspb.String("deposit"))
	out, err = cli(t, url, append(set, "-json", "read", prov.Key("journal"), "-decode", "-as", "persistence")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("synod read %s -decode:\n%s", prov.Key("journal"), out)
	res = readResult{}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	p := res.Decoded.Persistence
	if res.Decoded.Format != formatPersistence || p == nil || p.SnapshotIndex != 1 || p.NextIndex != 2 || len(p.Events) != 1 ||
		!strings.Contains(string(p.Snapshot), "snapshot at 1") || !strings.Contains(string(p.Events[0]), "deposit") {
		t.Errorf("decoded = %+v", p)
	}

	// A value that is neither.
	if _, err := cli(t, url, append(set, "write", "plain", "hello")...); err != nil {
		t.Fatal(err)
	}
	if out, err := cli(t, url, append(set, "read", "plain", "-decode")...); err == nil || !strings.Contains(err.Error(), "not an actors envelope") {
		t.Errorf("decode of plain text = %q, %v; want an error", out, err)
	}
}

func natsConnect(url string) (*nats.Conn, error) { return nats.Connect(url) }

// TestInspectWithoutQuorum: when the answers hold no value a quorum
// accepted, the newest is unchosen and the older ones lag.
func TestInspectWithoutQuorum(t *testing.T) {
	ids := []string{"a1", "a2", "a3"}
	infos := map[string]natstransport.KeyInfo{
		"a1": {From: "a1", Key: "k", Accepted: synod.Ballot{Counter: 7, Proposer: "p"}},
		"a3": {From: "a3", Key: "k", Accepted: synod.Ballot{Counter: 5, Proposer: "p"}},
	}
	epochs := map[string]uint64{"a1": 2, "a3": 1}
	res := compareStates(synod.Config{Acceptors: ids}, "k", func(id string) (natstransport.KeyInfo, error) {
		if k, ok := infos[id]; ok {
			return k, nil
		}
		return natstransport.KeyInfo{}, errors.New("no responders")
	}, func(id string) (synod.Config, error) {
		if e, ok := epochs[id]; ok {
			return synod.Config{Acceptors: ids, Epoch: e}, nil
		}
		return synod.Config{}, errors.New("no responders")
	})
	got := []string{res.Acceptors[0].Status, res.Acceptors[1].Status, res.Acceptors[2].Status}
	if want := []string{statusUnchosen, statusUnreachable, statusLags}; !slices.Equal(got, want) || res.Chosen != nil || res.Agree {
		t.Errorf("statuses %q, chosen %v; want %q and none chosen", got, res.Chosen, want)
	}
	if res.Epoch != 2 || !slices.Equal(res.StaleConfig, []string{"a3"}) || res.Acceptors[1].Epoch != nil || res.Acceptors[1].ConfigError != "" {
		t.Errorf("epoch %d, stale %q, a2 %+v; want 2, [a3] and nothing for the unreachable a2", res.Epoch, res.StaleConfig, res.Acceptors[1])
	}
}

// TestInspectOlderAcceptor: an acceptor whose inspect endpoint predates
// configuration reads answers them with 400; inspect still shows its state
// of the key, and says its epoch is unknown and why.
func TestInspectOlderAcceptor(t *testing.T) {
	ids := []string{"a1", "a2", "a3"}
	res := compareStates(synod.Config{Acceptors: ids}, "k", func(id string) (natstransport.KeyInfo, error) {
		return natstransport.KeyInfo{From: id, Key: "k", Accepted: synod.Ballot{Counter: 5, Proposer: "p"}}, nil
	}, func(id string) (synod.Config, error) {
		if id == "a2" {
			return synod.Config{}, &natstransport.RemoteError{Acceptor: id, Code: natstransport.CodeMalformed, Description: "unknown kind 3"}
		}
		return synod.Config{}, nil
	})
	if !res.Agree || res.Acceptors[1].Epoch != nil || !strings.Contains(res.Acceptors[1].ConfigError, "predates") || len(res.StaleConfig) != 0 {
		t.Errorf("result %+v", res)
	}
	var out strings.Builder
	if err := res.write(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if !regexp.MustCompile(`(?m)^a2\s+\?\s+\S+\s+5/p\s+0\s+current$`).MatchString(out.String()) ||
		!strings.Contains(out.String(), "a2's configuration is unknown: its inspect endpoint predates") {
		t.Errorf("table:\n%s", out.String())
	}
}
