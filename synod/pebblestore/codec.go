package pebblestore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/protosynod/protosynod/synod"
)

// Record format, version 1 (all integers big-endian):
//
//	version  uint8  = 1
//	flags    uint8  bit 0: Value is non-nil; other bits zero
//	promised uint64 counter, uint32 length, proposer bytes
//	accepted uint64 counter, uint32 length, proposer bytes
//	value    uint32 length, bytes
//	checksum uint32 CRC-32C of (uint32 key length, key, every byte above)
//
// The checksum covers the register key, so a record found under another key
// is corrupt too. Decoding checks the checksum first, then bounds every length
// by the bytes that remain, and rejects trailing bytes: a record decodes only
// if re-encoding it gives the same bytes.
const (
	stateVersion   = 1
	flagValue      = 1 << 0
	checksumSize   = 4
	minStateRecord = 1 + 1 + (8 + 4) + (8 + 4) + 4 + checksumSize

	identityVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum returns the CRC-32C of key (length-prefixed) followed by body.
// The length and the key go through the table a byte at a time: handed to
// crc32.Update they would escape, an allocation per record.
func checksum(key string, body []byte) uint32 {
	c := ^uint32(0) // crc32.Update's conditioning of the initial 0
	n := uint32(len(key))
	for _, b := range [4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} {
		c = castagnoli[byte(c)^b] ^ (c >> 8)
	}
	for i := range len(key) {
		c = castagnoli[byte(c)^key[i]] ^ (c >> 8)
	}
	return crc32.Update(^c, castagnoli, body)
}

// appendState appends the record of st under key to dst.
func appendState(dst []byte, key string, st synod.AcceptorState) ([]byte, error) {
	if len(st.Promised.Proposer) > math.MaxUint32 || len(st.Accepted.Proposer) > math.MaxUint32 ||
		len(st.Value) > math.MaxUint32 || len(key) > math.MaxUint32 {
		return dst, fmt.Errorf("pebblestore: state of %d value bytes too large to encode", len(st.Value))
	}
	start := len(dst)
	var flags byte
	if st.Value != nil {
		flags |= flagValue
	}
	dst = append(dst, stateVersion, flags)
	dst = appendBallot(dst, st.Promised)
	dst = appendBallot(dst, st.Accepted)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(st.Value)))
	dst = append(dst, st.Value...)
	return binary.BigEndian.AppendUint32(dst, checksum(key, dst[start:])), nil
}

func appendBallot(dst []byte, b synod.Ballot) []byte {
	dst = binary.BigEndian.AppendUint64(dst, b.Counter)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b.Proposer)))
	return append(dst, b.Proposer...)
}

// decodeState decodes the record stored under key. Every failure wraps
// ErrCorrupt. The returned state shares no memory with data.
func decodeState(key string, data []byte) (synod.AcceptorState, error) {
	if err := verify(key, data, minStateRecord); err != nil {
		return synod.AcceptorState{}, err
	}
	r := reader{b: data[:len(data)-checksumSize]}
	if v := r.u8(); v != stateVersion {
		return synod.AcceptorState{}, fmt.Errorf("%w: unsupported record version %d", ErrCorrupt, v)
	}
	flags := r.u8()
	if flags&^flagValue != 0 {
		return synod.AcceptorState{}, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	var st synod.AcceptorState
	st.Promised = r.ballot()
	st.Accepted = r.ballot()
	value := r.bytes()
	if r.err != nil {
		return synod.AcceptorState{}, r.err
	}
	if len(r.b) != 0 {
		return synod.AcceptorState{}, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	switch {
	case flags&flagValue != 0:
		st.Value = append(make([]byte, 0, len(value)), value...)
	case len(value) != 0:
		return synod.AcceptorState{}, fmt.Errorf("%w: nil value with %d bytes", ErrCorrupt, len(value))
	}
	return st, nil
}

// verify checks that data is at least minSize bytes and ends with the checksum
// of the rest under key.
func verify(key string, data []byte, minSize int) error {
	if len(data) < minSize {
		return fmt.Errorf("%w: %d bytes, want at least %d", ErrCorrupt, len(data), minSize)
	}
	body, sum := data[:len(data)-checksumSize], binary.BigEndian.Uint32(data[len(data)-checksumSize:])
	if got := checksum(key, body); got != sum {
		return fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, got, sum)
	}
	return nil
}

// identity is the cluster and acceptor ID a data directory belongs to.
type identity struct {
	Cluster  string
	Acceptor string
}

// appendIdentity appends the record of id (version, two length-prefixed
// strings, CRC-32C under key) to dst.
func appendIdentity(dst []byte, key string, id identity) []byte {
	start := len(dst)
	dst = append(dst, identityVersion)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(id.Cluster)))
	dst = append(dst, id.Cluster...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(id.Acceptor)))
	dst = append(dst, id.Acceptor...)
	return binary.BigEndian.AppendUint32(dst, checksum(key, dst[start:]))
}

// decodeIdentity decodes an identity record; failures wrap ErrCorrupt.
func decodeIdentity(key string, data []byte) (identity, error) {
	if err := verify(key, data, 1+4+4+checksumSize); err != nil {
		return identity{}, err
	}
	r := reader{b: data[:len(data)-checksumSize]}
	if v := r.u8(); v != identityVersion {
		return identity{}, fmt.Errorf("%w: unsupported identity version %d", ErrCorrupt, v)
	}
	id := identity{Cluster: string(r.bytes()), Acceptor: string(r.bytes())}
	if r.err == nil && len(r.b) != 0 {
		return identity{}, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	return id, r.err
}

// reader consumes a record front to back. After the first short read every
// method returns zero values and err wraps ErrCorrupt.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: field of %d bytes, %d left", ErrCorrupt, n, len(r.b))
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u8() byte {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// bytes reads a uint32 length and that many bytes; the length is checked
// against what remains before anything is sliced or allocated.
func (r *reader) bytes() []byte {
	n := r.u32()
	return r.take(uint64(n))
}

func (r *reader) ballot() synod.Ballot {
	c := r.u64()
	return synod.Ballot{Counter: c, Proposer: string(r.bytes())}
}
