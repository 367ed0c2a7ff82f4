package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// Status of one acceptor's state of a key in "synod inspect", relative to
// the others that answered.
const (
	statusCurrent     = "current"     // holds the latest chosen value
	statusLags        = "lags"        // holds an older value than another acceptor
	statusUnchosen    = "unchosen"    // holds the newest value, which no quorum of the answers holds
	statusEmpty       = "empty"       // has no value, and nobody else has one
	statusUnreachable = "unreachable" // did not answer
)

// ballotJSON is a ballot in JSON.
type ballotJSON struct {
	Counter  uint64 `json:"counter"`
	Proposer string `json:"proposer"`
}

func newBallotJSON(b synod.Ballot) *ballotJSON {
	if b.IsZero() {
		return nil
	}
	return &ballotJSON{Counter: b.Counter, Proposer: b.Proposer}
}

// acceptorState is one row of "synod inspect".
type acceptorState struct {
	Acceptor string `json:"acceptor"`
	// Epoch is the epoch of the configuration the acceptor serves (0: never
	// reconfigured), null when it could not say (see ConfigError).
	Epoch *uint64 `json:"epoch"`
	// ConfigAcceptors are the acceptors of that configuration, when it has
	// been reconfigured.
	ConfigAcceptors []string    `json:"config_acceptors,omitempty"`
	ConfigError     string      `json:"config_error,omitempty"`
	Promised        *ballotJSON `json:"promised"`
	Accepted        *ballotJSON `json:"accepted"`
	ValueSize       int         `json:"value_size"`
	Status          string      `json:"status"`
	Error           string      `json:"error,omitempty"`

	promised, accepted synod.Ballot
}

// inspectResult is the JSON of "synod inspect".
type inspectResult struct {
	Key          string      `json:"key"`
	AcceptQuorum int         `json:"accept_quorum"`
	Chosen       *ballotJSON `json:"chosen"` // the highest ballot a quorum accepted; null if none
	Agree        bool        `json:"agree"`  // every acceptor answered and holds the chosen value
	Lagging      []string    `json:"lagging"`
	Unchosen     []string    `json:"unchosen"`
	Unreachable  []string    `json:"unreachable"`
	// Epoch is the newest configuration epoch an acceptor reported;
	// StaleConfig the acceptors that reported an older one.
	Epoch       uint64          `json:"epoch"`
	StaleConfig []string        `json:"stale_config"`
	Acceptors   []acceptorState `json:"acceptors"`
}

func inspectCommand() *command {
	return &command{
		name:     "inspect",
		args:     "KEY",
		nargs:    1,
		needsSet: true,
		summary:  "show each acceptor's state of a register and its configuration epoch side by side and flag disagreement (read-only: changes nothing)",
		run: func(ctx context.Context, e *env, args []string) error {
			nc, err := e.conn()
			if err != nil {
				return err
			}
			in, err := natstransport.NewInspector(nc, e.cluster, natstransport.WithPrefix(e.prefix))
			if err != nil {
				return fmt.Errorf("%w: %w", errUsage, err)
			}
			cfg, note, err := e.servedConfig(ctx, in)
			if err != nil {
				return err
			}
			if note != "" {
				fmt.Fprintln(e.stderr, "synod: "+note)
			}
			res := inspectKey(ctx, in, cfg, args[0])
			if len(res.Unreachable) == len(cfg.Acceptors) {
				return fmt.Errorf("no acceptor answered: %s", res.Acceptors[0].Error)
			}
			return e.out.emit(res, func(w io.Writer) error { return res.write(w) })
		},
	}
}

// inspectKey asks every acceptor of cfg for its state of key and its
// configuration, at once, and compares the answers.
func inspectKey(ctx context.Context, in *natstransport.Inspector, cfg synod.Config, key string) inspectResult {
	return compareStates(cfg, key,
		func(id string) (natstransport.KeyInfo, error) { return in.Key(ctx, id, key) },
		func(id string) (synod.Config, error) { return in.Config(ctx, id) })
}

// compareStates asks every acceptor of cfg through get and getConfig, at
// once, and compares the answers.
func compareStates(cfg synod.Config, key string, get func(acceptor string) (natstransport.KeyInfo, error),
	getConfig func(acceptor string) (synod.Config, error)) inspectResult {
	res := inspectResult{Key: key, AcceptQuorum: cfg.Q2(), Acceptors: make([]acceptorState, len(cfg.Acceptors)),
		Lagging: []string{}, Unchosen: []string{}, Unreachable: []string{}, StaleConfig: []string{}}
	var wg sync.WaitGroup
	for i, id := range cfg.Acceptors {
		wg.Go(func() {
			st := acceptorState{Acceptor: id}
			var (
				k      natstransport.KeyInfo
				c      synod.Config
				cfgErr error
				kwg    sync.WaitGroup
			)
			kwg.Go(func() { c, cfgErr = getConfig(id) })
			k, err := get(id)
			kwg.Wait()
			if err != nil {
				st.Status, st.Error = statusUnreachable, err.Error()
			} else {
				st.promised, st.accepted, st.ValueSize = k.Promised, k.Accepted, k.ValueSize
				st.Promised, st.Accepted = newBallotJSON(k.Promised), newBallotJSON(k.Accepted)
			}
			switch {
			case cfgErr == nil:
				st.Epoch, st.ConfigAcceptors = &c.Epoch, c.Acceptors
			case err == nil:
				st.ConfigError = configError(cfgErr)
			}
			res.Acceptors[i] = st
		})
	}
	wg.Wait()
	for _, st := range res.Acceptors {
		if st.Epoch != nil {
			res.Epoch = max(res.Epoch, *st.Epoch)
		}
	}
	for _, st := range res.Acceptors {
		if st.Epoch != nil && *st.Epoch < res.Epoch {
			res.StaleConfig = append(res.StaleConfig, st.Acceptor)
		}
	}

	// The chosen ballot: the highest one that a quorum of the answers accepted.
	count := map[synod.Ballot]int{}
	anyValue := false
	for _, st := range res.Acceptors {
		if st.Status != statusUnreachable && !st.accepted.IsZero() {
			count[st.accepted]++
			anyValue = true
		}
	}
	var chosen, latest synod.Ballot
	for b, n := range count {
		if n >= cfg.Q2() && chosen.Less(b) {
			chosen = b
		}
		if latest.Less(b) {
			latest = b
		}
	}
	res.Chosen = newBallotJSON(chosen)
	res.Agree = true
	for i := range res.Acceptors {
		st := &res.Acceptors[i]
		switch {
		case st.Status == statusUnreachable:
			res.Unreachable = append(res.Unreachable, st.Acceptor)
		case !anyValue:
			st.Status = statusEmpty
		case st.accepted == latest && chosen.Less(latest):
			st.Status = statusUnchosen
			res.Unchosen = append(res.Unchosen, st.Acceptor)
		case st.accepted == chosen:
			st.Status = statusCurrent
		default:
			st.Status = statusLags
			res.Lagging = append(res.Lagging, st.Acceptor)
		}
		if st.Status != statusCurrent && st.Status != statusEmpty {
			res.Agree = false
		}
	}
	return res
}

// configError says why an acceptor that answered for the key could not say
// which configuration it serves.
func configError(err error) string {
	var re *natstransport.RemoteError
	if errors.As(err, &re) && re.Code == natstransport.CodeMalformed {
		return "unknown: its inspect endpoint predates configuration reads (upgrade it)"
	}
	return "unknown: " + err.Error()
}

func (r inspectResult) write(w io.Writer) error {
	t := table{header: []string{"ACCEPTOR", "EPOCH", "PROMISED", "ACCEPTED", "VALUE BYTES", "STATUS"}}
	for _, st := range r.Acceptors {
		epoch := "-"
		switch {
		case st.Epoch != nil:
			epoch = fmt.Sprint(*st.Epoch)
		case st.ConfigError != "":
			epoch = "?"
		}
		if st.Status == statusUnreachable {
			t.add(st.Acceptor, epoch, "-", "-", "-", st.Status+": "+st.Error)
			continue
		}
		t.add(st.Acceptor, epoch, st.promised, st.accepted, st.ValueSize, st.Status)
	}
	if err := t.write(w); err != nil {
		return err
	}
	var notes []string
	if r.Agree {
		notes = append(notes, "all acceptors agree")
	}
	if len(r.Lagging) > 0 {
		notes = append(notes, fmt.Sprintf("lagging behind a newer value: %s (the next change of the key brings them up to date)", strings.Join(r.Lagging, ", ")))
	}
	if len(r.Unchosen) > 0 {
		notes = append(notes, fmt.Sprintf("holding the newest value, which no quorum of %d of the answers holds: %s (an unfinished change, or one the unreachable acceptors complete: the next round completes or replaces it)", r.AcceptQuorum, strings.Join(r.Unchosen, ", ")))
	}
	if len(r.Unreachable) > 0 {
		notes = append(notes, "unreachable: "+strings.Join(r.Unreachable, ", "))
	}
	if len(r.StaleConfig) > 0 {
		notes = append(notes, fmt.Sprintf("serving a configuration older than epoch %d: %s (a reconfiguration is under way or did not reach them: synod members, synod reconfigure --resume)", r.Epoch, strings.Join(r.StaleConfig, ", ")))
	}
	for _, st := range r.Acceptors {
		if st.ConfigError != "" {
			notes = append(notes, fmt.Sprintf("%s's configuration is %s", st.Acceptor, st.ConfigError))
		}
	}
	if r.Chosen != nil {
		notes = append(notes, fmt.Sprintf("chosen: ballot %d/%s (accepted by a quorum of %d)", r.Chosen.Counter, r.Chosen.Proposer, r.AcceptQuorum))
	} else if len(r.Unchosen) > 0 {
		notes = append(notes, "no value is accepted by a quorum of the acceptors that answered")
	}
	for _, n := range notes {
		if _, err := fmt.Fprintln(w, n); err != nil {
			return err
		}
	}
	return nil
}
