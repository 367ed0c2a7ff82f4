package procs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotRunning is returned when a signal is sent to a process that has exited
// (or was never started).
var ErrNotRunning = errors.New("procs: process not running")

// tailSize is how many bytes of the current run's output a Proc keeps in
// memory.
const tailSize = 64 << 10

// failureTailLines is how many lines of output a failed test logs per process.
const failureTailLines = 40

// ProcSpec describes a process for [StartProc].
type ProcSpec struct {
	// Name labels the process in messages and names its log file. It
	// defaults to the base name of Path.
	Name string
	// Path is the executable.
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env holds extra KEY=VALUE pairs, appended to the test binary's
	// environment (later entries win).
	Env []string
	// Dir is the working directory; empty means the test binary's.
	Dir string
	// LogDir receives the log file <Name>.log; empty means a fresh
	// env.TempDir().
	LogDir string
}

// Proc is a child process started by [StartProc]. Its stdout and stderr go to
// one log file, which keeps every run, and to an in-memory tail of the current
// run. The process runs in its own process group; signals go to the whole
// group, so children it spawns share its fate. A Proc is safe for concurrent
// use.
type Proc struct {
	spec    ProcSpec
	logPath string
	out     *procOutput

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current run has exited
	err     error         // cmd.Wait's result for the last finished run
	starts  int
	stopped bool // SIGSTOP sent and no SIGCONT since
}

// StartProc starts the process described by spec. The process is killed
// (SIGKILL to its process group) in env's cleanup; if env failed, the cleanup
// also logs the last lines of its output. On Linux the process also gets
// SIGKILL when the starting program dies (Pdeathsig), so it never outlives
// it.
func StartProc(t Env, spec ProcSpec) (*Proc, error) {
	t.Helper()
	if spec.Path == "" {
		return nil, errors.New("procs: start process: empty path")
	}
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Path)
	}
	if spec.LogDir == "" {
		spec.LogDir = t.TempDir()
	}
	spec.Args = append([]string(nil), spec.Args...)
	spec.Env = append([]string(nil), spec.Env...)
	logPath := filepath.Join(spec.LogDir, spec.Name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("procs: start %s: open log: %w", spec.Name, err)
	}
	p := &Proc{spec: spec, logPath: logPath, out: newProcOutput(f)}
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			t.Logf("procs: %s (log %s), last output:\n%s", p.spec.Name, p.logPath,
				lastLines(p.Tail(), failureTailLines))
		}
		p.out.close()
	})
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		return fmt.Errorf("procs: start %s: already running as pid %d", p.spec.Name, p.cmd.Process.Pid)
	}
	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	cmd.Env = append(os.Environ(), p.spec.Env...)
	cmd.Dir = p.spec.Dir
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	cmd.SysProcAttr = SysProcAttr()
	// Stop copying output shortly after exit even if a stray grandchild
	// still holds the pipe.
	cmd.WaitDelay = 2 * time.Second
	p.starts++
	p.out.beginRun(fmt.Sprintf("=== procs: start #%d: %s %s\n",
		p.starts, p.spec.Path, strings.Join(p.spec.Args, " ")))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("procs: start %s: %w", p.spec.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err, p.stopped = cmd, done, nil, false
	go func() {
		err := cmd.Wait()
		p.out.note(fmt.Sprintf("=== procs: pid %d exited: %v\n", cmd.Process.Pid, exitText(err)))
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Name returns the process's label.
func (p *Proc) Name() string { return p.spec.Name }

// LogPath returns the path of the log file holding the output of every run.
func (p *Proc) LogPath() string { return p.logPath }

// LogFiles returns the process's log file, so a Proc can be passed to
// [WithLogs].
func (p *Proc) LogFiles() []string { return []string{p.logPath} }

// Args returns a copy of the arguments the process runs with.
func (p *Proc) Args() []string { return append([]string(nil), p.spec.Args...) }

// Pid returns the process ID of the current (or last) run.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the current run has not exited yet. A stopped
// (SIGSTOP) process is running.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !isClosed(p.done)
}

// Exited returns a channel closed when the current run exits. A later Restart
// makes a new channel.
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Tail returns up to the last 64 KiB of the current run's output.
func (p *Proc) Tail() string { return p.out.tailString() }

// Signal sends sig to the process group of the current run. It returns
// [ErrNotRunning] if the run has exited.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || isClosed(p.done) {
		return fmt.Errorf("procs: signal %s to %s: %w", sig, p.spec.Name, ErrNotRunning)
	}
	if err := signalGroup(p.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("procs: signal %s to %s: %w", sig, p.spec.Name, err)
	}
	return nil
}

// Kill sends SIGKILL to the process group and waits until the process has
// been reaped. Killing an exited process is a no-op.
func (p *Proc) Kill() error {
	done := p.Exited()
	if done == nil {
		return nil
	}
	err := p.Signal(syscall.SIGKILL)
	if err != nil && !errors.Is(err, ErrNotRunning) && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	<-done
	return nil
}

// Stop pauses the process group with SIGSTOP and, on Linux, waits until every
// thread of the process has stopped. The process keeps its sockets open but
// answers nothing until [Proc.Cont].
func (p *Proc) Stop() error {
	if err := p.pause(syscall.SIGSTOP, true); err != nil {
		return err
	}
	return waitStopped(p.Pid())
}

// Cont resumes a process paused by [Proc.Stop] with SIGCONT.
func (p *Proc) Cont() error { return p.pause(syscall.SIGCONT, false) }

func (p *Proc) pause(sig syscall.Signal, stopped bool) error {
	if err := p.Signal(sig); err != nil {
		return err
	}
	p.mu.Lock()
	p.stopped = stopped
	p.mu.Unlock()
	return nil
}

// Stopped reports whether the process was paused with [Proc.Stop] and not
// resumed (or restarted) since.
func (p *Proc) Stopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped && p.cmd != nil && !isClosed(p.done)
}

// Terminate asks the process to exit with SIGTERM (followed by SIGCONT, so a
// stopped process can act on it) and waits. If ctx ends first it kills the
// process with SIGKILL and returns an error wrapping ctx.Err(). Terminating an
// exited process returns nil.
func (p *Proc) Terminate(ctx context.Context) error {
	done := p.Exited()
	if done == nil {
		return nil
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		if errors.Is(err, ErrNotRunning) {
			return nil
		}
		return err
	}
	_ = p.Cont()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		_ = p.Kill()
		return fmt.Errorf("procs: %s ignored SIGTERM, killed: %w", p.spec.Name, ctx.Err())
	}
}

// Wait waits until the current run exits and returns its exit status as
// exec.Cmd.Wait reports it (nil for exit code 0, an *exec.ExitError
// otherwise). It returns ctx.Err() if ctx ends first.
func (p *Proc) Wait(ctx context.Context) error {
	done := p.Exited()
	if done == nil {
		return fmt.Errorf("procs: wait for %s: %w", p.spec.Name, ErrNotRunning)
	}
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("procs: wait for %s: %w", p.spec.Name, ctx.Err())
	}
}

// Restart starts the process again with the same path, arguments,
// environment and log file. If it is still running it is killed first
// (SIGKILL), so Restart after Stop is a crash and restart.
func (p *Proc) Restart() error {
	if err := p.Kill(); err != nil {
		return err
	}
	return p.start()
}

// WaitOutput waits until the current run's output contains substr. It fails
// early if the run exits first, and returns ctx's error if ctx ends first.
// Output is searched in the in-memory tail (the last 64 KiB of the run).
func (p *Proc) WaitOutput(ctx context.Context, substr string) error {
	done := p.Exited()
	for {
		changed, found := p.out.contains(substr)
		if found {
			return nil
		}
		select {
		case <-changed:
		case <-done:
			if _, found := p.out.contains(substr); found {
				return nil
			}
			return fmt.Errorf("procs: %s exited before printing %q: %w; last output:\n%s",
				p.spec.Name, substr, ErrNotRunning, lastLines(p.Tail(), failureTailLines))
		case <-ctx.Done():
			return fmt.Errorf("procs: %s has not printed %q: %w", p.spec.Name, substr, ctx.Err())
		}
	}
}

// procOutput receives a process's stdout and stderr: it appends to the log
// file and keeps the tail of the current run, waking waiters on every write.
// exec.Cmd calls Write from one goroutine at a time when Stdout and Stderr
// are the same value, but Tail and contains are called concurrently.
type procOutput struct {
	mu      sync.Mutex
	file    *os.File // nil once closed
	tail    []byte
	changed chan struct{} // closed and replaced on every write
}

func newProcOutput(f *os.File) *procOutput {
	return &procOutput{file: f, changed: make(chan struct{})}
}

// Write implements io.Writer. It never fails, so a closed log file does not
// break the child's pipe.
func (o *procOutput) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		_, _ = o.file.Write(b)
	}
	o.tail = append(o.tail, b...)
	if over := len(o.tail) - tailSize; over > 0 {
		o.tail = append(o.tail[:0], o.tail[over:]...)
	}
	close(o.changed)
	o.changed = make(chan struct{})
	return len(b), nil
}

// beginRun writes a header to the log file and clears the tail.
func (o *procOutput) beginRun(header string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tail = o.tail[:0]
	if o.file != nil {
		_, _ = o.file.WriteString(header)
	}
}

// note writes a line to the log file only.
func (o *procOutput) note(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		_, _ = o.file.WriteString(line)
	}
}

func (o *procOutput) tailString() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.tail)
}

// contains reports whether the tail holds substr, and returns a channel
// closed on the next write.
func (o *procOutput) contains(substr string) (<-chan struct{}, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changed, bytes.Contains(o.tail, []byte(substr))
}

func (o *procOutput) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		_ = o.file.Close()
		o.file = nil
	}
}

func isClosed(ch chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	idx := len(s)
	for range n {
		i := strings.LastIndexByte(s[:idx], '\n')
		if i < 0 {
			return s
		}
		idx = i
	}
	return s[idx+1:]
}
