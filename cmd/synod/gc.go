package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/protosynod/protosynod/synod"
)

// gcResult is the -json output of gc.
type gcResult struct {
	Keys      int    `json:"keys"`      // keys examined
	Deleted   int    `json:"deleted"`   // deleted registers found
	Collected int    `json:"collected"` // of those, removed from every living acceptor
	Removed   int    `json:"removed"`   // register states removed from acceptors' storage
	Skipped   int    `json:"skipped"`   // left for a later collection
	Floor     uint64 `json:"floor"`     // the ballot floor of the collection's epoch
	Epoch     uint64 `json:"epoch"`     // the collection's epoch (0: none was needed)
	// Disk is each living acceptor's storage bytes before and after the
	// compaction that follows the collection (absent if it could not compact).
	Disk []diskUsage `json:"disk,omitempty"`
}

type diskUsage struct {
	Acceptor string `json:"acceptor"`
	Before   uint64 `json:"bytes_before"`
	After    uint64 `json:"bytes_after"`
	Err      string `json:"error,omitempty"`
}

func gcCommand() *command {
	return &command{
		name:     "gc",
		nargs:    0,
		needsSet: true,
		timeout:  longTimeout,
		summary:  "remove deleted registers from every acceptor's storage (garbage collection)",
		run: func(ctx context.Context, e *env, _ []string) error {
			cl, tr, done, err := e.clientTransport()
			if err != nil {
				return err
			}
			defer done()
			var steps int
			r, err := synod.NewReconfigurer(cl, tr, synod.WithProgress(progressPrinter(e.stderr, &steps)))
			if err != nil {
				return err
			}
			res, err := r.CollectGarbage(ctx)
			if err != nil {
				if errors.Is(err, synod.ErrBusy) {
					return fmt.Errorf("%w (run 'synod reconfigure --resume' first)", err)
				}
				return err
			}
			out := gcResult{Keys: res.Keys, Deleted: res.Deleted, Collected: res.Collected, Removed: res.Removed,
				Skipped: res.Skipped, Floor: res.Floor, Epoch: res.Epoch}
			if res.Removed > 0 {
				// Reclaim the space now rather than at the storage's leisure.
				for _, id := range cl.Config().Acceptors {
					before, after, err := tr.Compact(ctx, id)
					d := diskUsage{Acceptor: id, Before: before, After: after}
					if err != nil {
						d.Err = err.Error()
					}
					out.Disk = append(out.Disk, d)
				}
			}
			return e.out.emit(out, func(w io.Writer) error {
				fmt.Fprintf(w, "%d keys examined, %d deleted, %d collected (%d register states removed), %d skipped; epoch %d, ballot floor %d\n",
					out.Keys, out.Deleted, out.Collected, out.Removed, out.Skipped, out.Epoch, out.Floor)
				for _, d := range out.Disk {
					if d.Err != "" {
						fmt.Fprintf(w, "%s: not compacted: %s\n", d.Acceptor, d.Err)
						continue
					}
					fmt.Fprintf(w, "%s: %d bytes on disk before compaction, %d after\n", d.Acceptor, d.Before, d.After)
				}
				return nil
			})
		},
	}
}
