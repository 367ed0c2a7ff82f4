package actors

import (
	"context"
	"fmt"
)

// GrainKey returns the register key of the grain kind/identity under the
// given key prefix (DefaultKeyPrefix unless WithKeyPrefix changed it).
func GrainKey(prefix, kind, identity string) string { return prefix + kind + "/" + identity }

// Delete removes an actor's state for good: it writes the register's
// tombstone (the empty value) through a round, so the next activation of the
// key starts from the zero state, as a fresh actor does. Stop the actor's
// activations first: one still running may write its cached state back.
// The acceptors drop the key itself at the next garbage collection
// (synod.Reconfigurer.CollectGarbage). key is the full register key (see
// GrainKey).
func Delete(ctx context.Context, reg Registers, key string) error {
	if _, err := reg.Change(ctx, key, func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		return fmt.Errorf("actors: delete %q: %w", key, err)
	}
	return nil
}
