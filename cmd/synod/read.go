package main

import (
	"context"
	"flag"
	"fmt"
	"io"
)

// readResult is the JSON of "synod read".
type readResult struct {
	Key   string    `json:"key"`
	Value jsonValue `json:"value"`
	// Decoded is the value decoded by -decode.
	Decoded *decodedValue `json:"decoded,omitempty"`
}

func readCommand() *command {
	var round, decode bool
	var as string
	return &command{
		name:     "read",
		args:     "KEY",
		nargs:    1,
		needsSet: true,
		summary:  "read a register linearizably: one round trip and no disk write when the acceptors agree, else a full round",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&round, "round", false, "read through a full round (a promise or write-back each acceptor persists) even when the acceptors agree")
			fs.BoolVar(&decode, "decode", false, "render an actors envelope or a persistence record as JSON")
			fs.StringVar(&as, "as", formatAuto, "with -decode: the value's format (auto, actors, persistence)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			cl, done, err := e.client()
			if err != nil {
				return err
			}
			defer done()
			read := cl.Read
			if round {
				read = cl.ReadRound
			}
			v, err := read(ctx, args[0])
			if err != nil {
				return err
			}
			if decode {
				d, err := decodeValue(v, as)
				if err != nil {
					return fmt.Errorf("decode %q: %w", args[0], err)
				}
				e.out.json = true // the decoded value is JSON either way
				return e.out.emit(readResult{Key: args[0], Value: newJSONValue(v), Decoded: &d}, nil)
			}
			return e.out.emit(readResult{Key: args[0], Value: newJSONValue(v)}, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, format(v))
				return err
			})
		},
	}
}
