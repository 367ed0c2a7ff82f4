package natscluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/protosynod/protosynod/integration/harness"
	"github.com/protosynod/protosynod/internal/natstest"
)

// These tests run real protoactor-go cluster members, each in its own
// process (see member_main_test.go), whose only membership service is the
// provider.

// proc is a cluster member or client running in a child process.
type proc struct {
	owner  *testing.T // the test whose cleanup stops the child
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr syncBuffer

	started chan struct{} // closed when id and addr are set
	id      string
	addr    string
	rec     *recorder  // topologies the member's MemberList published, by ID
	addrs   *recorder  // the same topologies, by member address
	replies chan event // answers to cmdRequest
	exited  chan struct{}
	killed  bool
}

// syncBuffer is a bytes.Buffer safe for a writer and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// timing is a heartbeat interval and TTL for the children.
type timing struct{ interval, ttl time.Duration }

// spawn starts a child running role ("member" or "client") of cluster name.
// Call waitStarted before using its id.
func spawn(t *testing.T, s *server.Server, role, name string, tm timing) *proc {
	t.Helper()
	return spawnURL(t, s.ClientURL(), role, name, tm)
}

// spawnURL is spawn with the child connecting to NATS at url.
func spawnURL(t *testing.T, url, role, name string, tm timing) *proc {
	t.Helper()
	p := &proc{
		owner:   t,
		started: make(chan struct{}),
		rec:     newRecorder(),
		addrs:   newRecorder(),
		replies: make(chan event, 64),
		exited:  make(chan struct{}),
	}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(),
		envRole+"="+role,
		envURL+"="+url,
		envCluster+"="+name,
		envInterval+"="+tm.interval.String(),
		envTTL+"="+tm.ttl.String(),
	)
	p.cmd.Stderr = &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", role, err)
	}
	go p.read(stdout)
	t.Cleanup(p.stop)
	return p
}

// read handles the child's events until it exits.
func (p *proc) read(stdout io.Reader) {
	defer close(p.exited)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue
		}
		switch e.Event {
		case "started":
			p.id, p.addr = e.ID, e.Addr
			close(p.started)
		case "topology":
			p.rec.recordIDs(e.Members)
			p.addrs.recordIDs(e.Addrs)
		case "reply":
			p.replies <- e
		}
	}
	_ = p.cmd.Wait()
}

func (p *proc) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-p.started:
	case <-p.exited:
		t.Fatalf("child exited before starting:\n%s", p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("child did not start within 30s")
	}
}

func (p *proc) send(t *testing.T, cmd string) {
	t.Helper()
	if _, err := fmt.Fprintln(p.stdin, cmd); err != nil {
		t.Fatalf("send %q: %v", cmd, err)
	}
}

// reply waits for the child's next answer to cmdRequest.
func (p *proc) reply(t *testing.T) event {
	t.Helper()
	select {
	case r := <-p.replies:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no reply within 20s")
		return event{}
	}
}

// kill crashes the child: no leave, no goodbye on the NATS connection.
func (p *proc) kill() {
	p.killed = true
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// stop closes the child's stdin, which shuts it down, and checks how it
// ended and what the race detector said.
func (p *proc) stop() {
	t := p.owner
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Errorf("child did not exit within 15s; killing it")
		p.kill()
	}
	stderr := p.stderr.String()
	ours, theirs := classifyRaces(stderr)
	for _, r := range ours {
		t.Errorf("data race in natscluster:\n%s", r)
	}
	if len(theirs) > 0 {
		t.Logf("tolerated %d data race report(s) inside dependencies", len(theirs))
	}
	if code := p.cmd.ProcessState.ExitCode(); !p.killed && code != 0 && code != raceExitCode {
		t.Errorf("child exited with %d", code)
	}
	if t.Failed() {
		t.Logf("child %s stderr:\n%s", p.id, stderr)
	}
}

// raceExitCode is the race detector's default exit code.
const raceExitCode = 66

// classifyRaces splits the race reports in a child's stderr into those
// where a racing access happens in this module and the others. An access is
// attributed to the innermost stack frame outside the standard library.
func classifyRaces(stderr string) (ours, theirs []string) {
	const start, end = "WARNING: DATA RACE", "=================="
	for _, chunk := range strings.Split(stderr, start)[1:] {
		report, _, _ := strings.Cut(chunk, end)
		if racesInModule(report) {
			ours = append(ours, start+report)
		} else {
			theirs = append(theirs, start+report)
		}
	}
	return ours, theirs
}

func racesInModule(report string) bool {
	lines := strings.Split(report, "\n")
	for i, l := range lines {
		if !strings.Contains(l, " at 0x") || strings.HasPrefix(l, "Goroutine") {
			continue
		}
		// Frames follow as "  pkg.func(...)" / "      file:line" pairs.
		for _, f := range lines[i+1:] {
			if !strings.HasPrefix(f, "  ") {
				break
			}
			fn := strings.TrimSpace(f)
			if strings.HasPrefix(f, "      ") || isStdFrame(fn) {
				continue
			}
			if strings.HasPrefix(fn, "github.com/protosynod/protosynod/") {
				return true
			}
			break
		}
	}
	return false
}

// isStdFrame reports whether fn belongs to the standard library, whose
// import paths have no dot in their first element.
func isStdFrame(fn string) bool {
	first, _, _ := strings.Cut(fn, "/")
	return !strings.Contains(first, ".") || strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "sync")
}

func procIDs(ps ...*proc) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.id
	}
	return out
}

// TestClusterMembership runs one cluster through its life. Each process is
// a race-instrumented protoactor-go member, and a cluster member sleeps a
// second in StartMember, so one scenario is much cheaper than a test per
// step.
//
// Members announce their own TTL. a, c and d announce a minute, so only
// their leave messages can explain a quick drop, and a loaded machine
// (processes frozen for seconds have been seen on 2 busy cores) cannot
// expire them by mistake, which protoactor-go would never forgive. b, the
// crash victim, announces a short TTL and joins just before it is killed.
func TestClusterMembership(t *testing.T) {
	s := natstest.RunServer(t)
	const name = "scenario"
	long := timing{interval: 100 * time.Millisecond, ttl: time.Minute}
	short := timing{interval: 100 * time.Millisecond, ttl: 2 * time.Second}
	a := spawn(t, s, "member", name, long)
	c := spawn(t, s, "member", name, long)
	d := spawn(t, s, "member", name, long)
	for _, p := range []*proc{a, c, d} {
		p.waitStarted(t)
	}
	root := t // owns every child, including those spawned in a step
	var b, client *proc

	// want waits until every process in ps has seen exactly members.
	want := func(t *testing.T, ps []*proc, members ...*proc) {
		t.Helper()
		for _, p := range ps {
			took := p.rec.waitFor(t, 10*time.Second, procIDs(members...)...)
			t.Logf("%s saw %d member(s) after %v", p.id, len(members), took)
		}
	}
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow() // later steps build on this one
		}
	}

	step("forms", func(t *testing.T) {
		want(t, []*proc{a, c, d}, a, c, d)
	})

	step("serves grains", func(t *testing.T) {
		// Grains are placed by the topology the provider built, so
		// requests from one member reach grains on the others.
		const grains = 16
		hosts := ask(t, a, grains)
		if len(hosts) < 2 {
			t.Fatalf("%d grains on %d member(s), want them spread", grains, len(hosts))
		}
	})

	step("client follows", func(t *testing.T) {
		client = spawn(root, s, "client", name, long)
		client.waitStarted(t)
		want(t, []*proc{client}, a, c, d)
		client.send(t, cmdRequest+" from-client")
		if r := client.reply(t); r.Err != "" {
			t.Fatalf("request from client: %s", r.Err)
		}
		for _, p := range []*proc{a, c, d} { // members never list the client
			if got := p.rec.snapshot(); !equalSet(got, procIDs(a, c, d)) {
				t.Fatalf("member topology: got %v, want %v", got, procIDs(a, c, d))
			}
		}
	})

	step("graceful shutdown leaves", func(t *testing.T) {
		d.send(t, cmdLeave) // cluster.Shutdown(true) calls the provider's Shutdown
		want(t, []*proc{a, c, client}, a, c)
		d.kill() // skip protoactor's slow graceful gRPC stop
	})

	step("abrupt shutdown leaves", func(t *testing.T) {
		// cluster.Shutdown(false) never calls the provider; the provider
		// sees the stopped actor system at its next tick and leaves.
		c.send(t, cmdAbrupt)
		want(t, []*proc{a, client}, a)
	})

	step("crash expires", func(t *testing.T) {
		b = spawn(root, s, "member", name, short)
		b.waitStarted(t)
		want(t, []*proc{a, b, client}, a, b)
		b.kill() // no leave: the others must notice the silence
		want(t, []*proc{a, client}, a)
	})
}

func equalSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, x := range a {
		seen[x] = true
	}
	for _, x := range b {
		if !seen[x] {
			return false
		}
	}
	return true
}

func TestClassifyRaces(t *testing.T) {
	const theirs = `WARNING: DATA RACE
Write at 0x00c000 by goroutine 7:
  runtime.mapassign_faststr()
      /go/src/runtime/map.go:1
  github.com/asynkron/protoactor-go/cluster.(*MemberList).UpdateClusterTopology()
      /mod/member_list.go:1
  github.com/protosynod/protosynod/natscluster.(*runner).loop()
      /work/natscluster/runner.go:1

Previous read at 0x00c000 by goroutine 9:
  github.com/asynkron/protoactor-go/cluster.(*MemberSet).ContainsID()
      /mod/members.go:1

Goroutine 7 (running) created at:
  github.com/protosynod/protosynod/natscluster.(*Provider).start()
      /work/natscluster/provider.go:1
==================
`
	const ours = `WARNING: DATA RACE
Read at 0x00c000 by goroutine 8:
  sync/atomic.LoadInt32()
      /go/src/sync/atomic/doc.go:1
  github.com/protosynod/protosynod/natscluster.(*runner).handle()
      /work/natscluster/runner.go:1

Previous write at 0x00c000 by goroutine 9:
  github.com/asynkron/protoactor-go/cluster.(*MemberSet).ContainsID()
      /mod/members.go:1
==================
`
	o, th := classifyRaces("noise\n" + theirs + "more noise\n" + ours)
	if len(o) != 1 || len(th) != 1 || !strings.Contains(o[0], "handle") {
		t.Fatalf("got ours=%d theirs=%d, want 1 and 1", len(o), len(th))
	}
	if o, th := classifyRaces(""); o != nil || th != nil {
		t.Fatal("races found in empty output")
	}
}

// TestRejoinAfterNATSCut cuts one member's NATS connection (through a
// toxiproxy proxy) for longer than the TTL. The other member expires it;
// when the connection returns, the member must join again, under a new
// member ID, without a restart, and serve grains as before. protoactor-go
// blocks every member ID that left a topology for good, so a member coming
// back under its old ID would never be seen again.
func TestRejoinAfterNATSCut(t *testing.T) {
	s := natstest.RunServer(t)
	px := harness.NewProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	const name = "rejoin"
	tm := timing{interval: 100 * time.Millisecond, ttl: 2 * time.Second}
	a := spawn(t, s, "member", name, tm)
	b := spawnURL(t, px.URL(), "member", name, tm)
	a.waitStarted(t)
	b.waitStarted(t)
	const within = 15 * time.Second
	a.addrs.waitFor(t, within, a.addr, b.addr)
	b.addrs.waitFor(t, within, a.addr, b.addr)
	before := b.rec.snapshot()
	const grains = 16
	if hosts := ask(t, a, grains); hosts[b.addr] == 0 {
		t.Fatalf("no grain on b before the cut: %v", hosts)
	}

	if err := px.Disable(); err != nil {
		t.Fatal(err)
	}
	took := a.addrs.waitFor(t, within, a.addr)
	t.Logf("a expired b %v after the cut", took)
	// b fences itself: a topology without b in which no one hosts a kind,
	// so that it stops its grains and activates none while a may.
	took = b.addrs.waitFor(t, within, a.addr)
	t.Logf("b saw itself cut off after %v more", took)
	waitCount(t, b, 0, within)
	// a's placement may lag just behind the topology the test saw, and
	// b activates what it is asked to; it stops such grains again within
	// a heartbeat interval (requests queued in them are dropped).
	hosts, failed, _ := tryAsk(t, a, grains, time.Second)
	t.Logf("right after the expiry, asked from a: %v, %d failed", hosts, failed)
	waitCount(t, b, 0, within)
	if hosts := ask(t, a, grains); hosts[a.addr] != grains {
		t.Fatalf("grains during the cut: %v, want all on a", hosts)
	}

	if err := px.Heal(); err != nil {
		t.Fatal(err)
	}
	took = a.addrs.waitFor(t, within, a.addr, b.addr)
	t.Logf("a saw b again %v after the heal", took)
	b.addrs.waitFor(t, within, a.addr, b.addr)
	after := b.rec.snapshot()
	if slices.Equal(before, after) {
		t.Fatalf("b rejoined under the member IDs %v it had before the cut", after)
	}

	// Grains are placed on both members again, from either side. As the
	// new topology reaches a's placement actor it stops the grains that
	// are b's again, and protoactor drops the requests queued in their
	// mailboxes: callers time out and retry, as with any member joining.
	for _, from := range []*proc{a, b} {
		deadline := time.Now().Add(within)
		for {
			hosts, failed, _ := tryAsk(t, from, grains, time.Second)
			if failed == 0 && hosts[a.addr] > 0 && hosts[b.addr] > 0 {
				t.Logf("grains per member, asked from %s: %v", from.addr, hosts)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d grains asked from %s after %v: %v, %d failed; want all answered, on both members", grains, from.addr, within, hosts, failed)
			}
		}
	}
}

// ask asks p for the echo grains grain-0 to grain-(n-1), fails the test if
// one does not answer within 10s, and returns how many answered from each
// member address.
func ask(t *testing.T, p *proc, n int) map[string]int {
	t.Helper()
	hosts, failed, first := tryAsk(t, p, n, 10*time.Second)
	if failed > 0 {
		t.Fatalf("%d of %d requests from %s failed, the first: %s", failed, n, p.addr, first)
	}
	t.Logf("grains per member, asked from %s: %v", p.addr, hosts)
	return hosts
}

// tryAsk asks p for n echo grains with the given timeout each and returns
// where they answered from, how many failed and the first failure.
func tryAsk(t *testing.T, p *proc, n int, timeout time.Duration) (hosts map[string]int, failed int, first string) {
	t.Helper()
	for i := range n {
		p.send(t, fmt.Sprintf("%s grain-%d %v", cmdRequest, i, timeout))
	}
	hosts = map[string]int{}
	for range n {
		if r := p.reply(t); r.Err != "" {
			if failed++; failed == 1 {
				first = r.Identity + ": " + r.Err
			}
		} else {
			hosts[r.From]++
		}
	}
	return hosts, failed, first
}

// waitCount waits until p has want echo grains activated, asking every
// 50ms; with within 0 it asks once.
func waitCount(t *testing.T, p *proc, want int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		p.send(t, cmdCount)
		got := p.reply(t).Count
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s hosts %d grains after %v, want %d", p.addr, got, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
