package main

import (
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// unsafeWALBuffer is how much write-ahead log the -unsafe-no-fsync mode holds
// in process memory before it writes it to the operating system.
const unsafeWALBuffer = 4 << 20

// noSyncFS is the filesystem of the test-only -unsafe-no-fsync mode: every
// fsync is skipped, and the write-ahead log (*.log files) is held in process
// memory (up to unsafeWALBuffer, and until the file is closed), so killing the
// process loses recently acknowledged writes, as a power failure would lose
// them without fsync. It exists so that tests can prove they detect lost
// writes. Never use it for data you want to keep.
type noSyncFS struct{ vfs.FS }

func (fs noSyncFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	if strings.HasSuffix(name, ".log") {
		return &bufferedFile{File: f}, nil
	}
	return noSyncFile{f}, nil
}

// Create implements vfs.FS.
func (fs noSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

// OpenReadWrite implements vfs.FS.
func (fs noSyncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

// ReuseForWrite implements vfs.FS.
func (fs noSyncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

// OpenDir implements vfs.FS; directory syncs are skipped too.
func (fs noSyncFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	if err != nil {
		return f, err
	}
	return noSyncFile{f}, nil
}

// noSyncFile skips syncs and passes everything else through.
type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error                { return nil }
func (noSyncFile) SyncData() error            { return nil }
func (noSyncFile) SyncTo(int64) (bool, error) { return true, nil }

// bufferedFile holds written bytes in memory until the buffer is full or the
// file is closed, and skips syncs.
type bufferedFile struct {
	vfs.File
	mu  sync.Mutex
	buf []byte
}

func (f *bufferedFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf = append(f.buf, p...)
	if len(f.buf) >= unsafeWALBuffer {
		if err := f.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (f *bufferedFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.flushLocked(); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *bufferedFile) flushLocked() error {
	if len(f.buf) == 0 {
		return nil
	}
	_, err := f.File.Write(f.buf)
	f.buf = f.buf[:0]
	return err
}

func (f *bufferedFile) Close() error {
	f.mu.Lock()
	err := f.flushLocked()
	f.mu.Unlock()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	return err
}

func (*bufferedFile) Sync() error                { return nil }
func (*bufferedFile) SyncData() error            { return nil }
func (*bufferedFile) SyncTo(int64) (bool, error) { return true, nil }
