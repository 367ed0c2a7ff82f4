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
}

func readCommand() *command {
	var round bool
	return &command{
		name:     "read",
		args:     "KEY",
		nargs:    1,
		needsSet: true,
		summary:  "read a register linearizably: one round trip and no disk write when the acceptors agree, else a full round",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&round, "round", false, "read through a full round (a promise or write-back each acceptor persists) even when the acceptors agree")
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
			return e.out.emit(readResult{Key: args[0], Value: newJSONValue(v)}, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, format(v))
				return err
			})
		},
	}
}
