package natscluster

import (
	"encoding/json"
	"fmt"
	"time"
)

// wireVersion is the version every message carries in its "v" field.
// Receivers drop messages with any other version.
const wireVersion = 1

// Limits checked before and after decoding.
const (
	maxMessageSize = 64 << 10
	maxIDLen       = 256
	maxHostLen     = 1024
	maxKinds       = 1024
	maxKindLen     = 256
)

// Subject suffixes after "<prefix>.<cluster>.members.".
const (
	opHeartbeat = "heartbeat"
	opLeave     = "leave"
	opHello     = "hello"
	opExpired   = "expired"
)

// subjects holds the membership subjects of one cluster.
type subjects struct {
	all       string // wildcard over the three below
	heartbeat string
	leave     string
	hello     string
	expired   string
}

func newSubjects(prefix, clusterName string) subjects {
	base := prefix + "." + clusterName + ".members."
	return subjects{
		all:       base + "*",
		heartbeat: base + opHeartbeat,
		leave:     base + opLeave,
		hello:     base + opHello,
		expired:   base + opExpired,
	}
}

// heartbeat announces a live member. It is JSON so that
// `nats sub '<prefix>.<cluster>.members.*'` is readable.
type heartbeat struct {
	Version int `json:"v"`
	// ID is the member ID in protoactor's topology: the instance and an
	// incarnation number, "<instance>.<n>". A member that had to fence
	// itself comes back under the next incarnation.
	ID string `json:"id"`
	// Instance is the sender's actor system ID, the same for all of its
	// incarnations. A heartbeat of a new incarnation replaces the older
	// ones at once. Empty from senders that predate incarnations.
	Instance string `json:"inst,omitempty"`
	// Seq numbers the sender's heartbeats, so that it recognises its own
	// heartbeats when they come back and knows when it sent them.
	Seq   uint64   `json:"seq,omitempty"`
	Host  string   `json:"host"`
	Port  int32    `json:"port"`
	Kinds []string `json:"kinds,omitempty"`
	// TTLMillis is how long receivers keep the member after this
	// heartbeat. Zero lets each receiver use its own TTL.
	TTLMillis int64 `json:"ttl_ms,omitempty"`
}

func (h heartbeat) ttl() time.Duration { return time.Duration(h.TTLMillis) * time.Millisecond }

// leave announces that a member is going away. hello asks every member to
// heartbeat at once. Both only carry the sender's ID.
type leave struct {
	Version int    `json:"v"`
	ID      string `json:"id"`
}

type hello = leave

// expired tells the member ID in it that the sender expired it, though it
// is alive: it heard its heartbeat after the TTL (a partition inside NATS,
// which its own echo cannot reveal). protoactor-go blocks that ID for good
// at the sender, so the member comes back under its next incarnation.
type expired = leave

func encode(v any) []byte {
	// The message types hold only strings and integers: Marshal cannot
	// fail.
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("natscluster: encode %T: %v", v, err))
	}
	return b
}

func decodeHeartbeat(data []byte) (heartbeat, error) {
	var h heartbeat
	if err := decode(data, &h); err != nil {
		return heartbeat{}, err
	}
	if err := checkHeader(h.Version, h.ID); err != nil {
		return heartbeat{}, err
	}
	switch {
	case len(h.Instance) > maxIDLen:
		return heartbeat{}, fmt.Errorf("%w: instance length %d", ErrMalformed, len(h.Instance))
	case h.Host == "" || len(h.Host) > maxHostLen:
		return heartbeat{}, fmt.Errorf("%w: host length %d", ErrMalformed, len(h.Host))
	case h.Port <= 0 || h.Port > 65535:
		return heartbeat{}, fmt.Errorf("%w: port %d", ErrMalformed, h.Port)
	case len(h.Kinds) > maxKinds:
		return heartbeat{}, fmt.Errorf("%w: %d kinds", ErrMalformed, len(h.Kinds))
	case h.TTLMillis < 0:
		return heartbeat{}, fmt.Errorf("%w: negative TTL", ErrMalformed)
	}
	for _, k := range h.Kinds {
		if k == "" || len(k) > maxKindLen {
			return heartbeat{}, fmt.Errorf("%w: kind length %d", ErrMalformed, len(k))
		}
	}
	return h, nil
}

// decodeLeave decodes a leave or a hello.
func decodeLeave(data []byte) (leave, error) {
	var l leave
	if err := decode(data, &l); err != nil {
		return leave{}, err
	}
	if err := checkHeader(l.Version, l.ID); err != nil {
		return leave{}, err
	}
	return l, nil
}

func decode(data []byte, v any) error {
	if len(data) > maxMessageSize {
		return fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(data), maxMessageSize)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

func checkHeader(version int, id string) error {
	if version != wireVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrMalformed, version, wireVersion)
	}
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: member ID length %d", ErrMalformed, len(id))
	}
	return nil
}
