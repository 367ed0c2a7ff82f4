package main

import (
	"context"
	"fmt"
	"io"
)

func writeCommand() *command {
	return &command{
		name:     "write",
		args:     "KEY VALUE",
		nargs:    2,
		needsSet: true,
		summary:  "replace a register's value, whatever it was",
		run: func(ctx context.Context, e *env, args []string) error {
			cl, done, err := e.client()
			if err != nil {
				return err
			}
			defer done()
			key, value := args[0], []byte(args[1])
			if _, err := cl.Change(ctx, key, func([]byte) ([]byte, error) { return value, nil }); err != nil {
				return err
			}
			return e.out.emit(readResult{Key: key, Value: newJSONValue(value)}, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s = %s\n", key, format(value))
				return err
			})
		},
	}
}
