// Package limitfs is a Pebble vfs.FS that behaves like a small filesystem: it
// counts the bytes of the files under one directory and fails writes beyond a
// limit with ENOSPC, as a full disk does, and reports the limit in
// GetDiskUsage. Tests use it to fill and free a data directory without root
// (no loop devices or tmpfs mounts); synod-acceptor's hidden
// -test-disk-limit-file flag puts it under a real acceptor. It is for tests
// only.
package limitfs

import (
	"bytes"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// rescan is how long the byte count from a directory walk is trusted; writes
// since the walk are added to it.
const rescan = 50 * time.Millisecond

// FS wraps a vfs.FS and limits the bytes stored under Dir to Limit().
type FS struct {
	vfs.FS
	dir   string
	limit func() int64

	mu      sync.Mutex
	scanned time.Time
	used    int64 // bytes under dir at the last walk, plus writes since
}

var _ vfs.FS = (*FS)(nil)

// Stall is the limit that makes every write and sync block until the limit
// changes, as on a hung disk.
const Stall = -2

// New returns base limited to limit() bytes under dir. limit is called on
// every write, so it may change at any time: -1 (any negative limit but
// Stall) means none, Stall blocks writes and syncs.
func New(base vfs.FS, dir string, limit func() int64) *FS {
	return &FS{FS: base, dir: dir, limit: limit}
}

// Used returns the bytes stored under the directory.
func (fs *FS) Used() int64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.usedLocked()
}

func (fs *FS) usedLocked() int64 {
	if time.Since(fs.scanned) > rescan {
		fs.used = fs.walk(fs.dir)
		fs.scanned = time.Now()
	}
	return fs.used
}

func (fs *FS) walk(dir string) int64 {
	names, err := fs.FS.List(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, name := range names {
		p := fs.FS.PathJoin(dir, name)
		fi, err := fs.FS.Stat(p)
		switch {
		case err != nil:
		case fi.IsDir():
			n += fs.walk(p)
		default:
			n += fi.Size()
		}
	}
	return n
}

// stall blocks while the limit is Stall.
func (fs *FS) stall() int64 {
	for {
		limit := fs.limit()
		if limit != Stall {
			return limit
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reserve admits a write of n bytes, or fails it with ENOSPC.
func (fs *FS) reserve(name string, n int) error {
	limit := fs.stall()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	used := fs.usedLocked()
	if limit >= 0 && used+int64(n) > limit {
		return &os.PathError{Op: "write", Path: name, Err: syscall.ENOSPC}
	}
	fs.used += int64(n)
	return nil
}

// GetDiskUsage implements vfs.FS: the limit is the filesystem's size.
func (fs *FS) GetDiskUsage(path string) (vfs.DiskUsage, error) {
	limit := fs.stall()
	if limit < 0 {
		return fs.FS.GetDiskUsage(path)
	}
	used := uint64(fs.Used())
	u := vfs.DiskUsage{TotalBytes: uint64(limit), UsedBytes: used}
	if used < uint64(limit) {
		u.AvailBytes = uint64(limit) - used
	}
	return u, nil
}

// Create implements vfs.FS.
func (fs *FS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.reserve(name, 0); err != nil {
		return nil, err
	}
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

// OpenReadWrite implements vfs.FS.
func (fs *FS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

// ReuseForWrite implements vfs.FS.
func (fs *FS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

// Unwrap implements vfs.FS.
func (fs *FS) Unwrap() vfs.FS { return fs.FS }

func (fs *FS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return &file{File: f, fs: fs, name: name}, nil
}

// file charges its writes to its FS.
type file struct {
	vfs.File
	fs   *FS
	name string
}

func (f *file) Write(p []byte) (int, error) {
	if err := f.fs.reserve(f.name, len(p)); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *file) Sync() error {
	f.fs.stall()
	return f.File.Sync()
}

func (f *file) SyncData() error {
	f.fs.stall()
	return f.File.SyncData()
}

func (f *file) SyncTo(length int64) (bool, error) {
	f.fs.stall()
	return f.File.SyncTo(length)
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.reserve(f.name, len(p)); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

// LimitFile returns a limit function that reads a decimal byte count, or the
// word "stall" (Stall), from path, rereading it at most every 20ms; a missing
// or unreadable file means no limit.
func LimitFile(path string) func() int64 {
	var (
		mu    sync.Mutex
		last  time.Time
		limit int64 = -1
	)
	return func() int64 {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 20*time.Millisecond {
			return limit
		}
		last = time.Now()
		limit = -1
		f, err := os.Open(path)
		if err != nil {
			return limit
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 64))
		if err != nil {
			return limit
		}
		if string(bytes.TrimSpace(b)) == "stall" {
			limit = Stall
			return limit
		}
		var n int64
		for _, c := range b {
			switch {
			case c >= '0' && c <= '9':
				n = n*10 + int64(c-'0')
			case c == '\n' || c == ' ' || c == '\r':
			default:
				return limit
			}
		}
		if len(b) > 0 {
			limit = n
		}
		return limit
	}
}
