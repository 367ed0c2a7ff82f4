package viz

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/acceptortest"
	"github.com/protosynod/protosynod/internal/natstest"
)

type client struct {
	t   *testing.T
	url string
	id  string
}

func (c *client) post(path string, body any) (int, map[string]any) {
	c.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(c.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (c *client) do(req Request) map[string]any {
	c.t.Helper()
	code, out := c.post("/api/sessions/"+c.id+"/do", req)
	if code != http.StatusOK {
		c.t.Fatalf("%+v: %d %v", req, code, out)
	}
	return out
}

func (c *client) export() Export {
	c.t.Helper()
	resp, err := http.Get(c.url + "/api/sessions/" + c.id + "/export")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var e Export
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		c.t.Fatal(err)
	}
	return e
}

// nextView reads the next view from an SSE stream.
func nextView(t *testing.T, sc *bufio.Scanner) PageView {
	t.Helper()
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var v PageView
			if err := json.Unmarshal([]byte(data), &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("event stream ended: %v", sc.Err())
	return PageView{}
}

// TestSessionAPI drives a page's session over HTTP: choices, scenarios, run
// to quiescence, undo, export and import, with the views pushed over SSE.
func TestSessionAPI(t *testing.T) {
	srv := httptest.NewServer(NewServer())
	defer srv.Close()
	c := &client{t: t, url: srv.URL}
	_, out := c.post("/api/sessions", map[string]any{"seed": 7})
	c.id = out["id"].(string)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/sessions/"+c.id+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<22)
	if v := nextView(t, sc); v.Seed != 7 || v.Step != 0 {
		t.Fatalf("first view: seed %d step %d, want 7 and 0", v.Seed, v.Step)
	}

	c.do(Request{Op: "choice", Choice: &Choice{Act: ActSubmit, Proposer: 1, Cmd: CmdSign}})
	v := nextView(t, sc)
	if len(v.Messages) != 3 || v.Messages[0].Kind != "prepare" || v.Proposers[1].Ballot != "1/p1" {
		t.Fatalf("after Ross signs: %d messages, first %+v, p1 ballot %q", len(v.Messages), v.Messages[0], v.Proposers[1].Ballot)
	}
	code, _ := c.post("/api/sessions/"+c.id+"/do", Request{Op: "choice", Choice: &Choice{Act: ActDup, Msg: v.Messages[0].ID}})
	if code != http.StatusConflict {
		t.Fatalf("duplicating a request: status %d, want 409", code)
	}
	if v := nextView(t, sc); !strings.Contains(v.Message, "at most once") {
		t.Fatalf("message after a refused choice: %q", v.Message)
	}
	c.do(Request{Op: "quiesce"})
	v = nextView(t, sc)
	if !v.Quiet || v.Ops[0].Result != "signed: Ross" {
		t.Fatalf("after quiescence: quiet %v, op %+v", v.Quiet, v.Ops[0])
	}
	steps := v.Step
	c.do(Request{Op: "undo"})
	if v := nextView(t, sc); v.Step != steps-1 || v.ScriptLeft != 1 {
		t.Fatalf("after undo: step %d, script %d; want %d, 1", v.Step, v.ScriptLeft, steps-1)
	}
	e := c.export()
	if e.Format != ExportFormat || e.Seed != 7 || len(e.Choices) != steps-1 || len(e.Script) != 1 {
		t.Fatalf("export: %+v", e)
	}

	c.do(Request{Op: "load", Scenario: "missile"})
	if v := nextView(t, sc); v.Step != 0 || v.ScriptLeft == 0 || v.Scenario == nil || v.Scenario.Name != "missile" {
		t.Fatalf("after load: step %d, script %d, scenario %+v", v.Step, v.ScriptLeft, v.Scenario)
	}
	c.do(Request{Op: "step"})
	if v := nextView(t, sc); v.Step != 1 || len(v.Ops) != 1 {
		t.Fatalf("after a step: step %d, %d ops", v.Step, len(v.Ops))
	}

	c.do(Request{Op: "import", Import: &e})
	v = nextView(t, sc)
	if v.Step != steps-1 || v.Seed != 7 {
		t.Fatalf("after import: step %d seed %d", v.Step, v.Seed)
	}
	c.do(Request{Op: "step"}) // the undone choice, from the script
	if v := nextView(t, sc); v.Ops[0].Result != "signed: Ross" || !v.Quiet {
		t.Fatalf("after stepping the imported script: %+v", v.Ops[0])
	}
	bad := e
	bad.Choices = append(bad.Choices, Choice{Act: ActDeliver, Msg: 999})
	if code, _ := c.post("/api/sessions/"+c.id+"/do", Request{Op: "import", Import: &bad}); code != http.StatusConflict {
		t.Fatalf("importing an impossible choice: status %d, want 409", code)
	}
}

// TestUndoIsReplay checks that undo gives exactly the session without the
// last choice, for every prefix of a random run.
func TestUndoIsReplay(t *testing.T) {
	s := randomRun(t, 42)
	cs := s.Choices()
	for n := len(cs); n > len(cs)-20 && n > 0; n-- {
		u, err := s.Undo()
		if err != nil {
			t.Fatal(err)
		}
		r, err := Replay(s.Seed(), cs[:n-1], nil)
		if err != nil {
			t.Fatal(err)
		}
		uv, rv := u.View(), r.View()
		uv.ScriptLeft, uv.Next = 0, nil
		a, _ := json.Marshal(uv)
		b, _ := json.Marshal(rv)
		if !bytes.Equal(a, b) {
			t.Fatalf("undo to %d choices differs from a replay", n-1)
		}
		s = u
	}
}

// TestAutoDeterministic checks that a seed gives the same auto run twice.
func TestAutoDeterministic(t *testing.T) {
	a, b := randomRun(t, 9), randomRun(t, 9)
	if ja, jb := mustJSON(t, a.Choices()), mustJSON(t, b.Choices()); ja != jb {
		t.Fatal("two runs of seed 9 made different choices")
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNATSLive reads acceptors served over an embedded nats-server with
// discovery, stats and their inspect endpoints, and checks the snapshot.
func TestNATSLive(t *testing.T) {
	c := acceptortest.Start(t, "vizlive", 3)
	writeLiveKey(t, c)
	nc := natstest.Connect(t, c.Server)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	live := NATSLive{NC: nc, URL: c.Server.ClientURL()}
	// Discovery gathers the replies of a short window; on a loaded machine
	// one may miss it, so ask again (as the page does every refresh).
	snap := live.Snapshot(ctx, "vizlive", []string{"greeting", "nothing"})
	for len(snap.Acceptors) < 3 && ctx.Err() == nil {
		snap = live.Snapshot(ctx, "vizlive", []string{"greeting", "nothing"})
	}
	if snap.Error != "" || len(snap.Acceptors) != 3 {
		t.Fatalf("snapshot: %+v", snap)
	}
	accepted := 0
	for i, a := range snap.Acceptors {
		if a.Cluster != "vizlive" || a.Acceptor != c.IDs[i] || len(a.Endpoints) == 0 || len(a.Keys) != 2 {
			t.Fatalf("acceptor %d: %+v", i, a)
		}
		if k := a.Keys[0]; k.Key == "greeting" && k.Accepted == "1/viz-test" && k.Value == "5 bytes" {
			accepted++
		}
		if k := a.Keys[1]; k.Promised != "ø" || k.Accepted != "ø" || k.Value != "—" {
			t.Errorf("%s: a key never written: %+v", a.Acceptor, k)
		}
	}
	if accepted < 2 {
		t.Errorf("%d acceptors show greeting accepted at 1/viz-test (5 bytes), want a quorum: %+v", accepted, snap.Acceptors)
	}
	snap = live.Snapshot(ctx, "vizlive", nil)
	for len(snap.Acceptors) == 0 && ctx.Err() == nil {
		snap = live.Snapshot(ctx, "vizlive", nil)
	}
	if !strings.Contains(snap.Keys, "greeting") {
		t.Errorf("with no keys chosen: %q, want it to list greeting", snap.Keys)
	}
	if other := live.Snapshot(ctx, "elsewhere", nil); other.Error == "" || len(other.Acceptors) != 0 {
		t.Errorf("another cluster's snapshot: %+v", other)
	}
}
