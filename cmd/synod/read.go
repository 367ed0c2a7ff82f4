package main

import (
	"context"
	"fmt"
	"io"
)

// readResult is the JSON of "synod read".
type readResult struct {
	Key   string    `json:"key"`
	Value jsonValue `json:"value"`
}

func readCommand() *command {
	return &command{
		name:     "read",
		args:     "KEY",
		nargs:    1,
		needsSet: true,
		summary:  "read a register linearizably",
		run: func(ctx context.Context, e *env, args []string) error {
			cl, done, err := e.client()
			if err != nil {
				return err
			}
			defer done()
			v, err := cl.Read(ctx, args[0])
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
