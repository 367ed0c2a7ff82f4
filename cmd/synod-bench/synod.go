package main

import (
	"context"
	"errors"
	"log/slog"
)

// synodEngine is protosynod: acceptors on Pebble behind NATS, proposers in
// this process.
type synodEngine struct{}

func newSynodEngine(ctx context.Context, c *natsCluster, dir string, log *slog.Logger) (engine, error) {
	return nil, errors.New("not wired yet: waits for natstransport and pebblestore")
}
