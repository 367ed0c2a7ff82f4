package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// spaceCheckInterval is how long a free-space reading is trusted. Writes in
// that window pass on the old reading, and a WAL write that then meets a full
// disk is fatal to Pebble, so the window is short: at 10 ms a sudden loss of
// space (another process filling the disk) lets through a few commits, not the
// hundreds of KiB that a busy acceptor writes in 100 ms. A reading is one
// statfs, at most 100 a second.
const spaceCheckInterval = 10 * time.Millisecond

// minStartBytes is the least free space Open needs without a reserve.
const minStartBytes = 1 << 20

// space reads the free space of the data directory's filesystem, at most
// once per spaceCheckInterval.
type space struct {
	fs      vfs.FS
	dir     string
	reserve uint64

	mu      sync.Mutex
	checked time.Time
	avail   uint64
	known   bool
}

// free returns the bytes available; known is false if the filesystem cannot
// tell.
func (sp *space) free() (avail uint64, known bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if time.Since(sp.checked) >= spaceCheckInterval {
		u, err := sp.fs.GetDiskUsage(sp.dir)
		sp.checked = time.Now()
		sp.avail, sp.known = u.AvailBytes, err == nil
	}
	return sp.avail, sp.known
}

// floor is the free space below which every write is refused: half the
// reserve, kept for Pebble's own flushes and compactions.
func (sp *space) floor() uint64 { return sp.reserve / 2 }

// checkWrite admits a write of keys (register keys, not Pebble keys): below
// the floor it refuses every write, below the reserve every key the store does
// not hold yet. exists reports whether a key is stored.
func (sp *space) checkWrite(keys []string, exists func(string) (bool, error)) (reason string, err error) {
	reason, refused, err := sp.checkKeys(keys, exists)
	if err == nil {
		for _, e := range refused {
			if e != nil {
				return reason, e
			}
		}
	}
	return reason, err
}

// checkKeys admits the keys of a write one by one: below the floor (or if
// exists fails) err refuses them all; below the reserve refused[i] (nil when
// no key is refused) refuses keys[i] if the store does not hold it yet.
func (sp *space) checkKeys(keys []string, exists func(string) (bool, error)) (reason string, refused []error, err error) {
	if sp.reserve == 0 {
		return "", nil, nil
	}
	avail, known := sp.free()
	switch {
	case !known || avail >= sp.reserve:
		return "", nil, nil
	case avail < sp.floor():
		return "floor", nil, fmt.Errorf("%w: %d bytes free, below half the reserve of %d: refusing every write", ErrNoSpace, avail, sp.reserve)
	}
	for i, k := range keys {
		ok, err := exists(k)
		if err != nil {
			return "", nil, err
		}
		if ok {
			continue
		}
		if refused == nil {
			refused = make([]error, len(keys))
		}
		reason = "reserve"
		refused[i] = fmt.Errorf("%w: %d bytes free, below the reserve of %d: refusing new key %q (existing keys are still written)",
			ErrNoSpace, avail, sp.reserve, k)
	}
	return reason, refused, nil
}

// checkStart refuses to open a data directory that is full or not writable:
// it writes, syncs and removes a probe file, and requires the floor (or 1 MiB
// without a reserve) of free space.
func checkStart(fs vfs.FS, dir string, reserve uint64) error {
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return classify(fmt.Errorf("pebblestore: refusing to start: create data directory %s: %w", dir, err))
	}
	probe := fs.PathJoin(dir, "write-probe.tmp")
	err := func() error {
		f, err := fs.Create(probe, vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		_, werr := f.Write(make([]byte, 4096))
		serr := f.Sync()
		cerr := f.Close()
		return errors.Join(werr, serr, cerr)
	}()
	rerr := fs.Remove(probe)
	if err != nil {
		return classify(fmt.Errorf("pebblestore: refusing to start: data directory %s is not writable: %w", dir, err))
	}
	if rerr != nil && !errors.Is(rerr, syscall.ENOENT) {
		return classify(fmt.Errorf("pebblestore: refusing to start: remove probe in %s: %w", dir, rerr))
	}
	need := uint64(minStartBytes)
	if reserve > 0 {
		need = max(reserve/2, need)
	}
	if u, err := fs.GetDiskUsage(dir); err == nil && u.AvailBytes < need {
		return fmt.Errorf("%w: refusing to start: data directory %s has %d bytes free, needs at least %d",
			ErrNoSpace, dir, u.AvailBytes, need)
	}
	return nil
}

// classify makes an error caused by a full disk match ErrNoSpace.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrNoSpace, err)
}

// errorKind names the kind of a storage error for metrics and logs.
func errorKind(err error) string {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	if errors.Is(err, ErrNoSpace) || errors.Is(err, syscall.ENOSPC) {
		return "no_space"
	}
	if errors.Is(err, ErrCorrupt) || pebble.IsCorruptionError(err) {
		return "corrupt"
	}
	return "io"
}
