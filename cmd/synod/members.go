package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/protosynod/protosynod/synod"
)

// membersResult is the -json output of members.
type membersResult struct {
	Epoch         uint64   `json:"epoch"`
	Acceptors     []string `json:"acceptors"`
	PrepareQuorum int      `json:"prepare_quorum"`
	AcceptQuorum  int      `json:"accept_quorum"`
	Floor         uint64   `json:"floor"`
	Done          uint64   `json:"done"`
	Busy          bool     `json:"busy"`
	Target        []string `json:"target,omitempty"`
	Dead          []string `json:"dead,omitempty"`
	Retired       []string `json:"retired,omitempty"`
	Recorded      bool     `json:"recorded"` // the cluster has a membership record (it was reconfigured)
}

func newMembersResult(m synod.Membership, recorded bool) membersResult {
	return membersResult{
		Epoch: m.Config.Epoch, Acceptors: m.Config.Acceptors, PrepareQuorum: m.Config.Q1(),
		AcceptQuorum: m.Config.Q2(), Floor: m.Config.Floor, Done: m.Done, Busy: m.Busy(),
		Target: m.Target, Dead: m.Dead, Retired: m.Retired, Recorded: recorded,
	}
}

func membersCommand() *command {
	return &command{
		name:     "members",
		nargs:    0,
		needsSet: true,
		summary:  "show the cluster's membership record: configuration, epoch, a reconfiguration under way",
		run: func(ctx context.Context, e *env, _ []string) error {
			cl, tr, done, err := e.clientTransport()
			if err != nil {
				return err
			}
			defer done()
			r, err := synod.NewReconfigurer(cl, tr)
			if err != nil {
				return err
			}
			// Members adopts the newest configuration the acceptors report
			// (through their admin endpoints, where permitted) before it
			// reads the record.
			m, err := r.Members(ctx)
			if err != nil {
				return err
			}
			recorded := m.Config.Epoch > 0 || m.Target != nil
			res := newMembersResult(m, recorded)
			return e.out.emit(res, func(w io.Writer) error {
				fmt.Fprintf(w, "epoch %d: acceptors %s (prepare quorum %d, accept quorum %d, ballot floor %d)\n",
					res.Epoch, strings.Join(res.Acceptors, ","), res.PrepareQuorum, res.AcceptQuorum, res.Floor)
				if !res.Recorded {
					fmt.Fprintln(w, "never reconfigured")
				}
				if res.Busy {
					fmt.Fprintf(w, "reconfiguration under way: step %d done of epoch %d, target %s\n", res.Done, res.Epoch, strings.Join(res.Target, ","))
				}
				if len(res.Dead) > 0 {
					fmt.Fprintf(w, "dead: %s\n", strings.Join(res.Dead, ","))
				}
				if len(res.Retired) > 0 {
					fmt.Fprintf(w, "retired: %s\n", strings.Join(res.Retired, ","))
				}
				return nil
			})
		},
	}
}
