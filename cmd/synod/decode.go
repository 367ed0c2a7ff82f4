package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/protosynod/protosynod/actors"
	"github.com/protosynod/protosynod/persistence"
)

// Formats "read -decode" knows; "auto" tries actors, then persistence.
const (
	formatAuto        = "auto"
	formatActors      = "actors"
	formatPersistence = "persistence"
)

// decodedValue is a register value decoded by "read -decode".
type decodedValue struct {
	Format      string            `json:"format"` // actors, persistence, or empty
	Actors      *actorsValue      `json:"actors,omitempty"`
	Persistence *persistenceValue `json:"persistence,omitempty"`
}

// actorsValue is an actors envelope in JSON.
type actorsValue struct {
	EnvelopeVersion int    `json:"envelope_version"`
	Codec           string `json:"codec"`
	Version         uint64 `json:"version"` // commits that changed the state
	// State is the decoded state for the msgpack codec; StateBytes the
	// encoded state for others (protobuf states need their type).
	State      any            `json:"state,omitempty"`
	StateBytes []byte         `json:"state_bytes,omitempty"`
	Senders    []actorsSender `json:"senders"`
}

// actorsSender is one sender's recorded request and reply.
type actorsSender struct {
	ID     string          `json:"id"`
	Sender string          `json:"sender"`
	Seq    uint64          `json:"seq"`
	Reply  json.RawMessage `json:"reply"`
}

// persistenceValue is a persistence record in JSON.
type persistenceValue struct {
	Snapshot      json.RawMessage   `json:"snapshot"`
	SnapshotIndex int               `json:"snapshot_index"`
	NextIndex     int               `json:"next_index"`
	Events        []json.RawMessage `json:"events"`
}

// decodeValue decodes v as format (auto, actors or persistence), through the
// actors and persistence packages' own decoders.
func decodeValue(v []byte, format string) (decodedValue, error) {
	if len(v) == 0 {
		return decodedValue{}, nil
	}
	var errs []error
	if format == formatAuto || format == formatActors {
		rv, err := actors.DecodeRegisterValue(v)
		if err == nil {
			return decodedValue{Format: formatActors, Actors: newActorsValue(rv)}, nil
		}
		errs = append(errs, fmt.Errorf("not an actors envelope: %w", err))
	}
	if format == formatAuto || format == formatPersistence {
		rec, err := persistence.DecodeRecord(v)
		if err == nil {
			return decodedValue{Format: formatPersistence, Persistence: newPersistenceValue(rec)}, nil
		}
		errs = append(errs, fmt.Errorf("not a persistence record: %w", err))
	}
	if len(errs) == 0 {
		return decodedValue{}, fmt.Errorf("%w: unknown format %q (auto, actors or persistence)", errUsage, format)
	}
	return decodedValue{}, errors.Join(errs...)
}

func newActorsValue(rv actors.RegisterValue) *actorsValue {
	out := &actorsValue{EnvelopeVersion: rv.EnvelopeVersion, Codec: rv.Codec, Version: rv.Version, Senders: []actorsSender{}}
	var state any
	if rv.Codec == "msgpack" && len(rv.State) > 0 && msgpack.Unmarshal(rv.State, &state) == nil {
		out.State = jsonable(state)
	} else {
		out.StateBytes = rv.State
	}
	for _, s := range rv.Senders {
		out.Senders = append(out.Senders, actorsSender{ID: s.ID, Sender: s.Sender, Seq: s.Seq, Reply: protoJSON(s.Reply)})
	}
	return out
}

func newPersistenceValue(rec persistence.Record) *persistenceValue {
	out := &persistenceValue{SnapshotIndex: rec.SnapshotIndex, NextIndex: rec.NextIndex, Events: []json.RawMessage{}}
	if rec.Snapshot != nil {
		out.Snapshot = anyJSON(rec.Snapshot)
	} else {
		out.Snapshot = json.RawMessage("null")
	}
	for _, ev := range rec.Events {
		out.Events = append(out.Events, anyJSON(ev))
	}
	return out
}

// protoJSON renders m with protojson, or as a string saying why it cannot.
func protoJSON(m proto.Message) json.RawMessage {
	if m == nil {
		return json.RawMessage("null")
	}
	if b, err := protojson.Marshal(m); err == nil {
		return b
	}
	b, _ := json.Marshal(fmt.Sprintf("(%T, not renderable)", m))
	return b
}

// anyJSON renders an Any with protojson when its type is linked into this
// binary, and otherwise as its type URL and encoded bytes.
func anyJSON(a *anypb.Any) json.RawMessage {
	if b, err := protojson.Marshal(a); err == nil {
		return b
	}
	b, _ := json.Marshal(struct {
		Type  string `json:"@type"`
		Bytes []byte `json:"bytes"`
	}{a.GetTypeUrl(), a.GetValue()})
	return b
}

// jsonable turns what msgpack decodes into something encoding/json takes:
// maps with non-string keys get their keys printed.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	}
	return v
}
