package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// reconfigureResult is the -json output of reconfigure.
type reconfigureResult struct {
	From  membersResult `json:"from"`
	To    membersResult `json:"to"`
	Steps int           `json:"steps"` // configuration steps completed by this run
}

// longTimeout is the default deadline of reconfigure and gc: a rescan runs a
// round on every key.
const longTimeout = time.Hour

func reconfigureCommand() *command {
	var add, remove, replace, dead string
	var resume bool
	return &command{
		name:     "reconfigure",
		args:     "--add ID | --remove ID | --replace OLD=NEW | --resume",
		nargs:    0,
		needsSet: true,
		timeout:  longTimeout,
		summary: "change the acceptor set one safe step at a time: add a new empty acceptor, remove one, " +
			"replace a dead one (disk lost, never to run again) by a new one, or resume an interrupted change",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&add, "add", "", "add this new acceptor (running, empty data directory, never a member before)")
			fs.StringVar(&remove, "remove", "", "remove this member")
			fs.StringVar(&replace, "replace", "", "OLD=NEW: replace the dead member OLD by the new acceptor NEW")
			fs.StringVar(&dead, "dead", "", "members whose disks are lost, comma-separated: never waited for, never to run again")
			fs.BoolVar(&resume, "resume", false, "finish the reconfiguration under way")
		},
		run: func(ctx context.Context, e *env, _ []string) error {
			n := 0
			for _, set := range []bool{add != "", remove != "", replace != "", resume} {
				if set {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("%w: reconfigure takes exactly one of --add, --remove, --replace, --resume", errUsage)
			}
			if old, nw, ok := strings.Cut(replace, "="); replace != "" && (!ok || old == "" || nw == "") {
				return fmt.Errorf("%w: --replace wants OLD=NEW, got %q", errUsage, replace)
			}
			cl, tr, done, err := e.clientTransport()
			if err != nil {
				return err
			}
			defer done()
			steps := 0
			r, err := synod.NewReconfigurer(cl, tr, synod.WithProgress(progressPrinter(e.stderr, &steps)))
			if err != nil {
				return err
			}
			from, err := r.Members(ctx)
			if err != nil {
				return err
			}
			var declared []string
			if dead != "" {
				declared = strings.Split(dead, ",")
			}
			var to synod.Membership
			if resume {
				to, err = r.Resume(ctx)
			} else {
				target, more, perr := targetSet(from.Config.Acceptors, add, remove, replace)
				if perr != nil {
					return perr
				}
				if len(more) > 0 {
					// OLD must really be gone: a live acceptor declared dead is never
					// fenced and could still serve proposers of an older epoch.
					if _, cerr := tr.AcceptorConfig(ctx, more[0]); !errors.Is(cerr, synod.ErrUnavailable) {
						return fmt.Errorf("%w: --replace: acceptor %s still answers (%v): stop it for good first, or use --add and then --remove", errUsage, more[0], cerr)
					}
				}
				fmt.Fprintf(e.stderr, "reconfigure: epoch %d %s -> %s\n", from.Config.Epoch, strings.Join(from.Config.Acceptors, ","), strings.Join(target, ","))
				to, err = r.Reconfigure(ctx, target, union(declared, more))
			}
			if err != nil {
				if errors.Is(err, synod.ErrBusy) {
					return fmt.Errorf("%w (run 'synod reconfigure --resume', or 'synod members' to see it)", err)
				}
				return err
			}
			res := reconfigureResult{From: newMembersResult(from, true), To: newMembersResult(to, true), Steps: steps}
			return e.out.emit(res, func(w io.Writer) error {
				fmt.Fprintf(w, "epoch %d: acceptors %s (prepare quorum %d, accept quorum %d) after %d step(s)\n",
					res.To.Epoch, strings.Join(res.To.Acceptors, ","), res.To.PrepareQuorum, res.To.AcceptQuorum, steps)
				if len(res.To.Retired) > 0 {
					fmt.Fprintf(w, "retired (never to rejoin): %s\n", strings.Join(res.To.Retired, ","))
				}
				return nil
			})
		},
	}
}

// targetSet returns the acceptor set the flags ask for, and the member
// --replace declares dead.
func targetSet(cur []string, add, remove, replace string) (target, dead []string, err error) {
	target = slices.Clone(cur)
	switch {
	case add != "":
		if err := natstransport.ValidateName("acceptor ID", add); err != nil {
			return nil, nil, fmt.Errorf("%w: --add: %w", errUsage, err)
		}
		if slices.Contains(cur, add) {
			return nil, nil, fmt.Errorf("%w: --add: %s is already a member", errUsage, add)
		}
		target = append(target, add)
	case remove != "":
		if !slices.Contains(cur, remove) {
			return nil, nil, fmt.Errorf("%w: --remove: %s is not a member (members: %s)", errUsage, remove, strings.Join(cur, ","))
		}
		target = slices.DeleteFunc(target, func(id string) bool { return id == remove })
	case replace != "":
		old, nw, ok := strings.Cut(replace, "=")
		if !ok || old == "" || nw == "" {
			return nil, nil, fmt.Errorf("%w: --replace wants OLD=NEW, got %q", errUsage, replace)
		}
		if !slices.Contains(cur, old) {
			return nil, nil, fmt.Errorf("%w: --replace: %s is not a member (members: %s)", errUsage, old, strings.Join(cur, ","))
		}
		if slices.Contains(cur, nw) {
			return nil, nil, fmt.Errorf("%w: --replace: %s is already a member", errUsage, nw)
		}
		if err := natstransport.ValidateName("acceptor ID", nw); err != nil {
			return nil, nil, fmt.Errorf("%w: --replace: %w", errUsage, err)
		}
		target = append(slices.DeleteFunc(target, func(id string) bool { return id == old }), nw)
		dead = []string{old}
	}
	return target, dead, nil
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// progressPrinter returns a synod.Progress callback that prints one line per
// report to w and counts completed steps.
func progressPrinter(w io.Writer, steps *int) func(synod.Progress) {
	start := time.Now()
	return func(p synod.Progress) {
		at := fmt.Sprintf("%6.1fs epoch %d [%s]", time.Since(start).Seconds(), p.Config.Epoch, strings.Join(p.Config.Acceptors, ","))
		switch {
		case p.Err != nil:
			fmt.Fprintf(w, "%s %s: %s not done, retrying: %v\n", at, p.Phase, p.Acceptor, p.Err)
		case p.Phase == "step done":
			*steps++
			fmt.Fprintf(w, "%s step done\n", at)
		case p.Phase == "claim":
			fmt.Fprintf(w, "%s claim: recorded as the next step (floor %d)\n", at, p.Config.Floor)
		case p.Acceptor != "":
			fmt.Fprintf(w, "%s %s: %s (%d/%d)\n", at, p.Phase, p.Acceptor, p.Done, p.Total)
		case p.Total > 0:
			fmt.Fprintf(w, "%s %s: %d/%d\n", at, p.Phase, p.Done, p.Total)
		default:
			fmt.Fprintf(w, "%s %s\n", at, p.Phase)
		}
	}
}
