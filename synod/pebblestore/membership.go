package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/protosynod/protosynod/synod"
)

// configKey holds the acceptor's configuration record (see StoreConfig), a
// record kind added after format version 1 under the metadata prefix, so data
// directories written before it stay readable: they simply have none.
var configKey = []byte{metaPrefix, '/', 'c', 'o', 'n', 'f', 'i', 'g'}

// configRecordVersion is the version byte of the configuration record:
// version, uint32 length and synod.Config's binary encoding, CRC-32C under
// the key.
const configRecordVersion = 1

var (
	_ synod.ConfigStorage = (*Store)(nil)
	_ synod.Deleter       = (*Store)(nil)
)

func appendConfig(dst []byte, cfg synod.Config) ([]byte, error) {
	body, err := cfg.MarshalBinary()
	if err != nil {
		return nil, err
	}
	start := len(dst)
	dst = append(dst, configRecordVersion)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	dst = append(dst, body...)
	return binary.BigEndian.AppendUint32(dst, checksum(string(configKey), dst[start:])), nil
}

func decodeConfig(data []byte) (synod.Config, error) {
	if err := verify(string(configKey), data, 1+4+checksumSize); err != nil {
		return synod.Config{}, err
	}
	r := reader{b: data[:len(data)-checksumSize]}
	if v := r.u8(); v != configRecordVersion {
		return synod.Config{}, fmt.Errorf("%w: unsupported configuration record version %d", ErrCorrupt, v)
	}
	body := r.bytes()
	if r.err != nil {
		return synod.Config{}, r.err
	}
	if len(r.b) != 0 {
		return synod.Config{}, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	var cfg synod.Config
	if err := cfg.UnmarshalBinary(body); err != nil {
		return synod.Config{}, fmt.Errorf("%w: configuration record: %w", ErrCorrupt, err)
	}
	return cfg, nil
}

// LoadConfig implements synod.ConfigStorage: the configuration the acceptor
// serves, if one was ever stored.
func (s *Store) LoadConfig(ctx context.Context) (synod.Config, bool, error) {
	if err := s.enter("load config", ""); err != nil {
		return synod.Config{}, false, err
	}
	defer s.inflight.Done()
	if err := ctx.Err(); err != nil {
		return synod.Config{}, false, fmt.Errorf("pebblestore: load config: %w", err)
	}
	var (
		cfg   synod.Config
		found bool
	)
	err := recoverFatal(func() error {
		v, closer, err := s.db.Get(configKey)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer closer.Close()
		cfg, err = decodeConfig(v)
		found = err == nil
		return err
	})
	if err != nil {
		return synod.Config{}, false, fmt.Errorf("pebblestore: load config of %s: %w", s.dir, err)
	}
	return cfg, found, nil
}

// StoreConfig implements synod.ConfigStorage: it returns once cfg is synced.
func (s *Store) StoreConfig(ctx context.Context, cfg synod.Config) error {
	rec, err := appendConfig(nil, cfg)
	if err != nil {
		return fmt.Errorf("pebblestore: store config: %w", err)
	}
	if err := s.enter("store config", ""); err != nil {
		return err
	}
	defer s.inflight.Done()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: store config: %w", err)
	}
	if err := s.commit(ctx, 0, func() error { return s.db.Set(configKey, rec, pebble.Sync) }); err != nil {
		return fmt.Errorf("pebblestore: store config: %w", err)
	}
	return nil
}

// Delete implements synod.Deleter: it removes register key, synced. It is
// allowed below the space reserve, since it frees space once Pebble compacts.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.enter("delete", key); err != nil {
		return err
	}
	defer s.inflight.Done()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: delete %q: %w", key, err)
	}
	if err := s.commit(ctx, 0, func() error { return s.db.Delete(dataKey(key), pebble.Sync) }); err != nil {
		return fmt.Errorf("pebblestore: delete %q: %w", key, err)
	}
	return nil
}

// Compact compacts the registers' key range, so that the space of deleted
// registers is reclaimed now rather than at Pebble's leisure.
func (s *Store) Compact(ctx context.Context) error {
	if err := s.enter("compact", ""); err != nil {
		return err
	}
	defer s.inflight.Done()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: compact: %w", err)
	}
	err := recoverFatal(func() error { return s.db.Compact(ctx, []byte{dataPrefix}, []byte{dataPrefix + 1}, true) })
	if err != nil {
		return fmt.Errorf("pebblestore: compact %s: %w", s.dir, err)
	}
	return nil
}

// DiskUsage returns the bytes the store's live tables take on disk: the
// registers as stored, compressed. The write-ahead log is left out (its size
// follows the recent writes, deletions included, and its files are
// recycled), and so are tables a compaction replaced, which Pebble deletes
// in the background.
func (s *Store) DiskUsage() uint64 {
	m := s.db.Metrics()
	return m.Table.Local.LiveSize + m.BlobFiles.Local.LiveSize
}
