package pebblestore

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/protosynod/protosynod/synod"
)

// walSizes returns the size of every WAL file in dir.
func walSizes(t *testing.T, fs vfs.FS, dir string) map[string]int64 {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, n := range names {
		if !strings.HasSuffix(n, ".log") {
			continue
		}
		st, err := fs.Stat(fs.PathJoin(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		sizes[n] = st.Size()
	}
	if len(sizes) == 0 {
		t.Fatalf("no WAL file in %s: %v", dir, names)
	}
	return sizes
}

func regState(i int) synod.AcceptorState {
	b := synod.Ballot{Counter: uint64(i + 1), Proposer: "p"}
	return synod.AcceptorState{Promised: b, Accepted: b, Value: []byte(fmt.Sprintf("value %d %0100d", i, i))}
}

// TestWALIsPrewritten checks that the WAL an acceptor syncs into was written
// in full before, on the operating system's file system with Pebble's default
// memtable size.
func TestWALIsPrewritten(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Store(ctx, "k", regState(1)); err != nil {
		t.Fatal(err)
	}
	po := &pebble.Options{}
	po.EnsureDefaults()
	want := int64(po.MemTableSize) * 11 / 10
	for n, size := range walSizes(t, vfs.Default, dir) {
		if size < want {
			t.Errorf("WAL %s holds %d bytes, want at least %d prewritten", n, size, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if got, err := s.Load(ctx, "k"); err != nil || string(got.Value) != string(regState(1).Value) {
		t.Fatalf("after reopen: %q, %v", got.Value, err)
	}
}

// TestPrewrittenWALsAcrossRotationsAndCrash rotates and recycles WALs many
// times with small memtables, checks that every WAL stays prewritten, and
// that a crash (only synced data survives) loses no acknowledged store:
// Pebble's reader must take the zeros after the last record for the end of
// the log.
func TestPrewrittenWALsAcrossRotationsAndCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openFS(t, fs)
	ctx := t.Context()
	const n = 3000 // about 400 KB of registers: several 64 KiB memtables
	for i := range n {
		if err := s.Store(ctx, fmt.Sprintf("k%d", i), regState(i)); err != nil {
			t.Fatal(err)
		}
	}
	m := s.db.Metrics()
	if m.Flush.Count < 3 {
		t.Fatalf("only %d memtable flushes: the test does not rotate WALs", m.Flush.Count)
	}
	want := int64(64<<10) * 11 / 10 // smallMemtables
	for name, size := range walSizes(t, fs, "acceptor") {
		if size < want {
			t.Errorf("WAL %s holds %d bytes, want at least %d prewritten", name, size, want)
		}
	}
	r := openFS(t, fs.CrashClone(vfs.CrashCloneCfg{}))
	for i := range n {
		got, err := r.Load(ctx, fmt.Sprintf("k%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Value) != string(regState(i).Value) {
			t.Fatalf("k%d after the crash: %q, want %q", i, got.Value, regState(i).Value)
		}
	}
}

// noReopenFS refuses to open existing WAL files for writing, so prewriting
// fails.
type noReopenFS struct{ vfs.FS }

func (fs noReopenFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if strings.HasSuffix(name, ".log") {
		return nil, errors.New("injected: no reopening")
	}
	return fs.FS.OpenReadWrite(name, category, opts...)
}

// TestWALPrewriteFailureIsHarmless checks that a store whose WALs cannot be
// prewritten works as before.
func TestWALPrewriteFailureIsHarmless(t *testing.T) {
	mem := vfs.NewCrashableMem()
	s := openFS(t, noReopenFS{mem})
	ctx := t.Context()
	for i := range 1000 {
		if err := s.Store(ctx, fmt.Sprintf("k%d", i), regState(i)); err != nil {
			t.Fatal(err)
		}
	}
	r := openFS(t, mem.CrashClone(vfs.CrashCloneCfg{}))
	for i := range 1000 {
		if got, err := r.Load(ctx, fmt.Sprintf("k%d", i)); err != nil || string(got.Value) != string(regState(i).Value) {
			t.Fatalf("k%d after the crash: %q, %v", i, got.Value, err)
		}
	}
}

// TestWALNotPrewrittenIntoTheReserve checks that prewriting leaves the space
// reserve alone: with less room above the reserve than a WAL's size, the WAL
// is used as Pebble creates it.
func TestWALNotPrewrittenIntoTheReserve(t *testing.T) {
	dir := t.TempDir()
	u, err := vfs.Default.GetDiskUsage(dir)
	if err != nil {
		t.Skipf("no disk usage here: %v", err)
	}
	s, err := Open(dir, WithSpaceReserve(u.AvailBytes-1<<20)) // 1 MiB above the reserve
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Store(t.Context(), "k", regState(1)); err != nil && !errors.Is(err, ErrNoSpace) {
		t.Fatal(err)
	}
	for n, size := range walSizes(t, vfs.Default, dir) {
		if size >= 1<<20 {
			t.Errorf("WAL %s holds %d bytes: prewritten into the space reserve", n, size)
		}
	}
}
