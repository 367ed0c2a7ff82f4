package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/protosynod/protosynod/internal/natstest"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

func TestParseConfig(t *testing.T) {
	base := []string{"-id", "a1", "-cluster", "c1", "-data", "/d"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(config) string
		wantErr error
	}{
		{name: "flags", args: append(base, "-nats", "nats://x:1,nats://y:2", "-max-value", "100"), check: func(c config) string {
			return fmt.Sprint(c.conn.URLs == "nats://x:1,nats://y:2", c.maxValue == 100, c.name == "synod-acceptor-c1-a1", !c.unsafeNoFsync)
		}},
		{name: "environment", env: map[string]string{"SYNOD_ID": "a2", "SYNOD_CLUSTER": "c2", "SYNOD_DATA": "/e", "SYNOD_LOG_LEVEL": "debug", "SYNOD_TLS_CA": "ca.pem"}, check: func(c config) string {
			return fmt.Sprint(c.id == "a2", c.cluster == "c2", c.data == "/e", c.logLevel.String() == "DEBUG", c.conn.TLSCA == "ca.pem")
		}},
		{name: "flag wins over environment", args: base, env: map[string]string{"SYNOD_ID": "env"}, check: func(c config) string {
			return fmt.Sprint(c.id == "a1")
		}},
		{name: "unsafe flag", args: append(base, "-unsafe-no-fsync"), check: func(c config) string { return fmt.Sprint(c.unsafeNoFsync) }},
		{name: "unsafe env", args: base, env: map[string]string{"SYNOD_UNSAFE_NO_FSYNC": "true"}, check: func(c config) string { return fmt.Sprint(c.unsafeNoFsync) }},
		{name: "missing id", args: []string{"-cluster", "c1", "-data", "/d"}, wantErr: errUsage},
		{name: "cert without key", args: append(base, "-tls-cert", "c.pem"), wantErr: errUsage},
		{name: "bad env value", args: base, env: map[string]string{"SYNOD_MAX_VALUE": "lots"}, wantErr: errUsage},
		{name: "unknown flag", args: append(base, "-bogus"), wantErr: errUsage},
		{name: "zero max value", args: append(base, "-max-value", "0"), wantErr: errUsage},
		{name: "space reserve default", args: base, check: func(c config) string { return fmt.Sprint(c.spaceReserve == 64<<20) }},
		{name: "space reserve units", args: append(base, "-space-reserve", "1GiB"), check: func(c config) string { return fmt.Sprint(c.spaceReserve == 1<<30) }},
		{name: "space reserve env", args: base, env: map[string]string{"SYNOD_SPACE_RESERVE": "512K"}, check: func(c config) string { return fmt.Sprint(c.spaceReserve == 512<<10) }},
		{name: "space reserve none", args: append(base, "-space-reserve", "0"), check: func(c config) string { return fmt.Sprint(c.spaceReserve == 0) }},
		{name: "space reserve bad unit", args: append(base, "-space-reserve", "3 parsecs"), wantErr: errUsage},
		{name: "state cache default", args: base, check: func(c config) string { return fmt.Sprint(c.stateCache == synod.DefaultStateCache) }},
		{name: "state cache units", args: append(base, "-state-cache", "256MiB"), check: func(c config) string { return fmt.Sprint(c.stateCache == 256<<20) }},
		{name: "state cache env", args: base, env: map[string]string{"SYNOD_STATE_CACHE": "0"}, check: func(c config) string { return fmt.Sprint(c.stateCache == 0) }},
		{name: "state cache bad unit", args: append(base, "-state-cache", "lots"), wantErr: errUsage},
		{name: "test disk limit", args: append(base, "-test-disk-limit-file", "/l"), check: func(c config) string { return fmt.Sprint(c.testDiskLimitFile == "/l") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, &out)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.check(c); strings.Contains(got, "false") {
				t.Errorf("checks: got %s, want all true (config %+v)", got, c)
			}
		})
	}
}

func TestHelpHidesUnsafeFlag(t *testing.T) {
	var out strings.Builder
	if _, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: got %v", err)
	}
	if !strings.Contains(out.String(), "SYNOD_ID") || strings.Contains(out.String(), "unsafe") || strings.Contains(out.String(), "test-disk") || !strings.Contains(out.String(), "space-reserve") {
		t.Errorf("help text:\n%s", out.String())
	}
}

// proc is a synod-acceptor child process whose log lines can be awaited.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu    sync.Mutex
	lines []string
	cond  chan struct{} // closed and replaced on every new line
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// build compiles synod-acceptor once per test binary.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "synod-acceptor-test-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "synod-acceptor")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		_ = os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(build(t), args...)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p := &proc{cmd: cmd, done: make(chan struct{}), cond: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.cond)
			p.cond = make(chan struct{})
			p.mu.Unlock()
		}
		r.Close()
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", args, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLog waits until a line contains s.
func (p *proc) waitLog(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.Contains(l, s) {
				p.mu.Unlock()
				return
			}
		}
		cond := p.cond
		p.mu.Unlock()
		select {
		case <-cond:
		case <-p.done:
			if strings.Contains(p.output(), s) {
				return
			}
			t.Fatalf("process exited (%v) before logging %q", p.err, s)
		case <-timeout:
			t.Fatalf("no %q in the log after 30s", s)
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("process did not exit")
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// cluster runs three acceptor processes against one NATS URL.
type cluster struct {
	url   string
	dirs  []string
	procs []*proc
}

func (c *cluster) start(t *testing.T, i int, extra ...string) *proc {
	t.Helper()
	args := append([]string{"-id", fmt.Sprintf("a%d", i), "-cluster", "c1", "-data", c.dirs[i], "-nats", c.url, "-drain-timeout", "10s"}, extra...)
	p := startProc(t, args...)
	c.procs[i] = p
	return p
}

func newCluster(t *testing.T, url string, extra ...string) *cluster {
	c := &cluster{url: url, procs: make([]*proc, 3)}
	for i := range 3 {
		c.dirs = append(c.dirs, t.TempDir())
		c.start(t, i, extra...)
	}
	for _, p := range c.procs {
		p.waitLog(t, "acceptor serving")
	}
	return c
}

func increment(cur []byte) ([]byte, error) {
	n, _ := strconv.Atoi(string(cur))
	return []byte(strconv.Itoa(n + 1)), nil
}

// TestAcceptorProcesses runs three synod-acceptor processes against an
// embedded NATS server, runs changes through a natstransport client, refuses
// a second instance and a foreign data directory, drains on SIGTERM under
// load, and finds every acknowledged change after a restart.
func TestAcceptorProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	s := natstest.RunServer(t)
	c := newCluster(t, s.ClientURL())
	tr, err := natstransport.NewTransport(natstest.Connect(t, s), "c1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := synod.Config{Acceptors: []string{"a0", "a1", "a2"}}
	client, err := synod.NewClient(synod.RandomProposerID("test"), cfg, tr, synod.WithPhaseTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"k0", "k1", "k2"}
	acked := map[string]int{}
	var mu sync.Mutex
	changeAll := func(rounds int) {
		var wg sync.WaitGroup
		for _, k := range keys {
			wg.Go(func() {
				for range rounds {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := client.Change(ctx, k, increment)
					cancel()
					if err != nil {
						t.Errorf("change %s: %v", k, err)
						continue
					}
					mu.Lock()
					acked[k]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	changeAll(20)

	// A second instance of a0 (on another directory) refuses to start.
	dup := startProc(t, "-id", "a0", "-cluster", "c1", "-data", t.TempDir(), "-nats", c.url)
	if code := dup.wait(t); code == 0 || !strings.Contains(dup.output(), "already served") {
		t.Errorf("second a0: exit %d, output:\n%s", code, dup.output())
	}

	// SIGTERM a2 while changes run: it drains and exits 0, and changes go on
	// with a0 and a1.
	busy := make(chan struct{})
	go func() { defer close(busy); changeAll(30) }()
	c.procs[2].signal(t, syscall.SIGTERM)
	if code := c.procs[2].wait(t); code != 0 {
		t.Errorf("a2 after SIGTERM: exit %d", code)
	}
	<-busy
	if out := c.procs[2].output(); !strings.Contains(out, "stopped cleanly") {
		t.Errorf("a2 did not log a clean stop:\n%s", out)
	}

	// a2's directory belongs to a2.
	wrong := startProc(t, "-id", "a9", "-cluster", "c1", "-data", c.dirs[2], "-nats", c.url)
	if code := wrong.wait(t); code == 0 || !strings.Contains(wrong.output(), "belongs to another acceptor") {
		t.Errorf("a9 on a2's directory: exit %d, output:\n%s", code, wrong.output())
	}

	for _, i := range []int{0, 1} {
		c.procs[i].signal(t, syscall.SIGINT)
		if code := c.procs[i].wait(t); code != 0 {
			t.Errorf("a%d after SIGINT: exit %d", i, code)
		}
	}
	for i := range 3 {
		c.start(t, i).waitLog(t, "acceptor serving")
	}
	reader, err := synod.NewClient(synod.RandomProposerID("reader"), cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, err := reader.Read(ctx, k)
		cancel()
		if got, _ := strconv.Atoi(string(v)); err != nil || got != acked[k] {
			t.Errorf("%s after restart: got %q, %v; want %d", k, v, err, acked[k])
		}
	}
	for i := range 3 {
		c.procs[i].signal(t, syscall.SIGTERM)
		if code := c.procs[i].wait(t); code != 0 {
			t.Errorf("a%d: exit %d", i, code)
		}
	}
}

// TestUnsafeNoFsyncLosesWritesOnKill checks that the test-only flag does what
// the integration suite relies on: acknowledged writes are lost when the
// acceptors are killed.
func TestUnsafeNoFsyncLosesWritesOnKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	s := natstest.RunServer(t)
	c := newCluster(t, s.ClientURL(), "-unsafe-no-fsync")
	for _, p := range c.procs {
		p.waitLog(t, "UNSAFE")
	}
	tr, err := natstransport.NewTransport(natstest.Connect(t, s), "c1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := synod.Config{Acceptors: []string{"a0", "a1", "a2"}}
	client, err := synod.NewClient(synod.RandomProposerID("test"), cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := client.Change(ctx, "k", increment)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range c.procs {
		p.signal(t, syscall.SIGKILL)
		p.wait(t)
	}
	for i := range 3 {
		c.start(t, i).waitLog(t, "acceptor serving")
	}
	reader, err := synod.NewClient(synod.RandomProposerID("reader"), cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := reader.Read(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := strconv.Atoi(string(v)); got >= n {
		t.Errorf("after SIGKILL with -unsafe-no-fsync: counter %d, want fewer than the %d acknowledged", got, n)
	}
}
