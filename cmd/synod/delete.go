package main

import (
	"context"
	"fmt"
	"io"
)

// deleteResult is the -json output of delete.
type deleteResult struct {
	Key     string `json:"key"`
	Deleted bool   `json:"deleted"`
}

func deleteCommand() *command {
	return &command{
		name:     "delete",
		args:     "KEY",
		nargs:    1,
		needsSet: true,
		summary:  "delete a register: it reads empty afterwards and can be written again",
		run: func(ctx context.Context, e *env, args []string) error {
			cl, done, err := e.client()
			if err != nil {
				return err
			}
			defer done()
			key := args[0]
			if err := cl.Delete(ctx, key); err != nil {
				return err
			}
			return e.out.emit(deleteResult{Key: key, Deleted: true}, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s deleted\n", key)
				return err
			})
		},
	}
}
