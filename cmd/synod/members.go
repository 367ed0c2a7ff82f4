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
}

func membersCommand() *command {
	return &command{
		name:     "members",
		nargs:    0,
		needsSet: true,
		summary:  "show the cluster's membership record: configuration, epoch, a reconfiguration under way",
		run: func(ctx context.Context, e *env, _ []string) error {
			cl, done, err := e.client()
			if err != nil {
				return err
			}
			defer done()
			base := cl.Config()
			v, err := cl.ReadRound(ctx, synod.MembershipKey)
			if err != nil {
				return err
			}
			m := synod.Membership{Config: base, Done: base.Epoch}
			if len(v) != 0 {
				if err := m.UnmarshalBinary(v); err != nil {
					return err
				}
			}
			res := membersResult{
				Epoch: m.Config.Epoch, Acceptors: m.Config.Acceptors, PrepareQuorum: m.Config.Q1(),
				AcceptQuorum: m.Config.Q2(), Floor: m.Config.Floor, Done: m.Done, Busy: m.Busy(),
				Target: m.Target, Dead: m.Dead, Retired: m.Retired,
			}
			return e.out.emit(res, func(w io.Writer) error {
				fmt.Fprintf(w, "epoch %d: acceptors %s (prepare quorum %d, accept quorum %d, ballot floor %d)\n",
					res.Epoch, strings.Join(res.Acceptors, ","), res.PrepareQuorum, res.AcceptQuorum, res.Floor)
				if len(v) == 0 {
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
