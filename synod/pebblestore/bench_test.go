package pebblestore

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/protosynod/protosynod/synod"
)

// BenchmarkStoreSync measures synced Stores of 100-byte values on a real
// directory, one writer against 64 concurrent writers of different keys. It
// reports stores/s and WAL fsyncs per store: with group commit the parallel
// case shares each fsync among many Stores.
func BenchmarkStoreSync(b *testing.B) {
	const writers = 64
	st := synod.AcceptorState{
		Promised: synod.Ballot{Counter: 1, Proposer: "node/0123456789abcdef"},
		Accepted: synod.Ballot{Counter: 1, Proposer: "node/0123456789abcdef"},
		Value:    make([]byte, 100),
	}
	open := func(b *testing.B) (*Store, *atomic.Int64) {
		fs := &walSyncCounter{FS: vfs.Default}
		s, err := Open(b.TempDir(), WithFS(fs))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s, &fs.syncs
	}
	report := func(b *testing.B, syncs *atomic.Int64) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "stores/s")
		b.ReportMetric(float64(syncs.Load())/float64(b.N), "fsyncs/store")
	}

	b.Run("sequential", func(b *testing.B) {
		s, syncs := open(b)
		ctx := b.Context()
		syncs.Store(0)
		b.ResetTimer()
		for i := range b.N {
			if err := s.Store(ctx, fmt.Sprintf("k%d", i%writers), st); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		report(b, syncs)
	})
	b.Run(fmt.Sprintf("parallel%d", writers), func(b *testing.B) {
		s, syncs := open(b)
		ctx := b.Context()
		var next atomic.Int64
		b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		syncs.Store(0)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			key := fmt.Sprintf("k%d", next.Add(1))
			for pb.Next() {
				if err := s.Store(ctx, key, st); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		report(b, syncs)
	})
}

// walSyncCounter counts syncs of WAL files (*.log). It wraps files from both
// Create and ReuseForWrite: errorfs (v2.1.7) does not wrap the files that
// ReuseForWrite returns, so it misses syncs of recycled WAL files.
type walSyncCounter struct {
	vfs.FS
	syncs atomic.Int64
}

func (fs *walSyncCounter) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &syncCountingFile{File: f, syncs: &fs.syncs}, nil
}

func (fs *walSyncCounter) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *walSyncCounter) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

type syncCountingFile struct {
	vfs.File
	syncs *atomic.Int64
}

func (f *syncCountingFile) Sync() error     { f.syncs.Add(1); return f.File.Sync() }
func (f *syncCountingFile) SyncData() error { f.syncs.Add(1); return f.File.SyncData() }
func (f *syncCountingFile) SyncTo(n int64) (bool, error) {
	f.syncs.Add(1)
	return f.File.SyncTo(n)
}

// BenchmarkAcceptorManyKeys measures what an acceptor spends per frame of
// the many-keys workload (12 fast-path accepts to different keys of 1,000,
// 100-byte values), with its state cache on and off, over a Store on an
// in-memory filesystem: the fsync costs nothing, so ns/op is the CPU of
// loading, applying and committing the batch. One op is one batch.
func BenchmarkAcceptorManyKeys(b *testing.B) {
	const (
		keys  = 1000
		batch = 12
	)
	proposer := "node/0123456789abcdef"
	value := make([]byte, 100)
	for _, cache := range []int64{0, synod.DefaultStateCache} {
		b.Run(fmt.Sprintf("cache=%d", cache), func(b *testing.B) {
			s, err := Open("db", WithFS(vfs.NewMem()))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			ctx := b.Context()
			a := synod.NewAcceptor("a0", s, synod.WithStateCache(cache))
			names := make([]string, keys)
			for i := range names {
				names[i] = fmt.Sprintf("actor/%06d", i)
			}
			reqs := make([]synod.BatchRequest, batch)
			round := func(n int) {
				c := uint64(n + 1)
				for j := range reqs {
					reqs[j] = synod.BatchRequest{Op: synod.OpAccept, Accept: synod.AcceptRequest{
						Key:    names[(n*batch+j)%keys],
						Ballot: synod.Ballot{Counter: c, Proposer: proposer},
						Next:   synod.Ballot{Counter: c + 1, Proposer: proposer},
						Value:  value,
					}}
				}
				for _, r := range a.ApplyBatch(ctx, reqs) {
					if r.Err != nil || !r.Accept.OK {
						b.Fatalf("accept: %+v", r)
					}
				}
			}
			for n := range keys / batch * 2 { // every key stored, and cached
				round(n)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for n := range b.N {
				round(keys + n)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/accept")
		})
	}
}
