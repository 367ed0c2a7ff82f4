package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// startIDs serves the acceptors ids of cluster "demo" over an embedded
// nats-server and returns its URL and their services.
func startIDs(t *testing.T, ids ...string) (string, map[string]*natstransport.Service) {
	t.Helper()
	s := natstest.RunServer(t)
	svcs := map[string]*natstransport.Service{}
	for _, id := range ids {
		svc, err := natstransport.Serve(context.Background(), natstest.Connect(t, s), "demo", synod.NewAcceptor(id, synod.NewMemoryStorage()))
		if err != nil {
			t.Fatal(err)
		}
		svcs[id] = svc
		t.Cleanup(func() { svc.Stop(context.Background()) })
	}
	return s.ClientURL(), svcs
}

// cliStderr runs the CLI and returns stdout and stderr.
func cliStderr(t *testing.T, url string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := func(k string) string {
		if k == "SYNOD_NATS" {
			return url
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, args, env, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestCLIReconfigure replaces a dead acceptor, adds and removes one, resumes
// with nothing under way, and collects a deleted register, checking what
// each command prints; the commands keep being run with the first acceptor
// set, and adopt the newest configuration.
func TestCLIReconfigure(t *testing.T) {
	url, svcs := startIDs(t, "a1", "a2", "a3", "a4", "a5")
	set := []string{"-cluster", "demo", "-acceptors", "a1,a2,a3"}
	for _, k := range []string{"k1", "k2", "k3"} {
		if _, err := cli(t, url, append(set, "write", k, "v-"+k)...); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := cliStderr(t, url, append(set, "reconfigure", "--replace", "a1=a4")...); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "still answers") {
		t.Fatalf("replace of a live acceptor: %v, want a usage error", err)
	}
	svcs["a1"].Stop(context.Background()) // a1's disk dies

	out, progress, err := cliStderr(t, url, append(set, "reconfigure", "--replace", "a1=a4")...)
	if err != nil {
		t.Fatalf("replace: %v\n%s", err, progress)
	}
	t.Logf("stdout:\n%sstderr:\n%s", out, progress)
	if want := "epoch 2: acceptors a2,a3,a4 (prepare quorum 2, accept quorum 2) after 2 step(s)\n"; !strings.HasPrefix(out, want) {
		t.Errorf("replace printed %q, want it to start with %q", out, want)
	}
	for _, line := range []string{"reconfigure: epoch 0 a1,a2,a3 -> a2,a3,a4", "fence: a4 (", "rescan: 4/4", "step done"} {
		if !strings.Contains(progress, line) {
			t.Errorf("progress lacks %q:\n%s", line, progress)
		}
	}
	for _, k := range []string{"k1", "k2", "k3"} {
		if out, err := cli(t, url, append(set, "read", k)...); err != nil || out != "v-"+k+"\n" {
			t.Errorf("read %s after replace = %q, %v", k, out, err)
		}
	}
	if out, err := cli(t, url, append(set, "members")...); err != nil || !strings.Contains(out, "epoch 2: acceptors a2,a3,a4") || !strings.Contains(out, "dead: a1") {
		t.Errorf("members after replace = %q, %v", out, err)
	}

	if out, _, err = cliStderr(t, url, append(set, "reconfigure", "--add", "a5")...); err != nil || !strings.HasPrefix(out, "epoch 3: acceptors a2,a3,a4,a5 (") {
		t.Fatalf("add a5 = %q, %v", out, err)
	}
	out, _, err = cliStderr(t, url, append(set, "-json", "reconfigure", "--remove", "a2")...)
	var res reconfigureResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.To.Epoch != 4 || !slices.Equal(res.To.Acceptors, []string{"a3", "a4", "a5"}) || res.Steps != 1 || res.From.Epoch != 3 {
		t.Fatalf("remove a2 -json = %q, %v", out, err)
	}
	if out, _, err = cliStderr(t, url, append(set, "reconfigure", "--resume")...); err != nil || !strings.HasPrefix(out, "epoch 4: acceptors a3,a4,a5") {
		t.Fatalf("resume with nothing under way = %q, %v", out, err)
	}
	if _, _, err = cliStderr(t, url, append(set, "reconfigure", "--add", "a1")...); err == nil || !strings.Contains(err.Error(), "a1") {
		t.Fatalf("re-adding retired a1: %v, want a refusal", err)
	}

	if _, err := cli(t, url, append(set, "delete", "k2")...); err != nil {
		t.Fatal(err)
	}
	out, progress, err = cliStderr(t, url, append(set, "-json", "gc")...)
	var gc gcResult
	if err != nil || json.Unmarshal([]byte(out), &gc) != nil || gc.Deleted != 1 || gc.Collected != 1 || gc.Removed != 3 || gc.Epoch != 5 {
		t.Fatalf("gc -json = %q, %v\n%s", out, err, progress)
	}
	// The read-only commands adopt the newest configuration too: from a
	// member of the old set that still answers (a3), or, when none does (a1
	// is gone), from discovery.
	const adopted = "synod: -acceptors a1,a2,a3 predates the cluster's configuration: an acceptor of -acceptors serves epoch 5, acceptors a3,a4,a5; using those\n"
	if out, notes, err := cliStderr(t, url, append(set, "keys", "k")...); err != nil || strings.Contains(out, "k2") || !strings.Contains(out, "k3") ||
		strings.Contains(out, "did not answer") || notes != adopted {
		t.Errorf("keys after gc = %q, %q, %v; want k1 and k3 from a3,a4,a5 and the note %q", out, notes, err, adopted)
	}
	out, notes, err := cliStderr(t, url, append(set, "-json", "inspect", "k3")...)
	var ins inspectResult
	if err != nil || json.Unmarshal([]byte(out), &ins) != nil || !ins.Agree || ins.Epoch != 5 || len(ins.Acceptors) != 3 || ins.Acceptors[0].Acceptor != "a3" || notes != adopted {
		t.Errorf("inspect k3 with the first set = %q, %q, %v; want a3,a4,a5 agreeing at epoch 5", out, notes, err)
	}
	if out, notes, err := cliStderr(t, url, "-cluster", "demo", "-acceptors", "a1", "keys", "k"); err != nil || !strings.Contains(out, "k3") ||
		!strings.Contains(notes, "discovery found epoch 5, acceptors a3,a4,a5") {
		t.Errorf("keys with only the gone a1 = %q, %q, %v; want the configuration discovery finds", out, notes, err)
	}
	if out, err := cli(t, url, append(set, "read", "k2")...); err != nil || out != "(empty register)\n" {
		t.Errorf("read of a collected key = %q, %v", out, err)
	}
}

func TestCLIReconfigureUsage(t *testing.T) {
	set := []string{"-cluster", "demo", "-acceptors", "a1,a2,a3"}
	for _, args := range [][]string{
		{"reconfigure"},
		{"reconfigure", "--add", "a4", "--remove", "a1"},
		{"reconfigure", "--replace", "a1"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append(set, args...), func(k string) string {
			if k == "SYNOD_NATS" {
				return "nats://127.0.0.1:1"
			}
			return ""
		}, &out, &errOut)
		if !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want a usage error", args, err)
		}
	}
}
