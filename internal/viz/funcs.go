package viz

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/protosynod/protosynod/examples/cluster/scenario"
	"github.com/protosynod/protosynod/synod"
)

// The registers of a session.
const (
	// MissileKey holds the launch state machine of examples/cluster.
	MissileKey = "missile"
	// CounterKey holds the counter, the second example.
	CounterKey = "counter"
)

// Generals are the generals of the missile example, by proposer: General Lee
// gives his commands through proposer 0, General Ross through proposer 1.
var Generals = []string{"Lee", "Ross"}

// Commands a proposer can be given.
const (
	CmdSign   = "sign"   // the proposer's general signs the launch
	CmdRevoke = "revoke" // the proposer's general revokes his signature
	CmdInc    = "inc"    // increment the counter
)

// missileChange turns the example cluster's Missile handler into the change
// function of the missile register, which holds the LaunchState in protobuf.
// A refusal of the handler (revoke after the launch, say) is the change's
// error: the proposer writes the unchanged value back and reports it.
func missileChange(msg proto.Message) synod.ChangeFunc {
	return func(current []byte) ([]byte, error) {
		s := &scenario.LaunchState{}
		if err := proto.Unmarshal(current, s); err != nil {
			return nil, err
		}
		next, _, err := scenario.Missile(s, msg)
		if err != nil {
			return nil, err
		}
		return proto.MarshalOptions{Deterministic: true}.Marshal(next)
	}
}

// counterInc is the change function of the counter register: a decimal
// number, empty for zero.
func counterInc(current []byte) ([]byte, error) {
	n := 0
	if len(current) > 0 {
		var err error
		if n, err = strconv.Atoi(string(current)); err != nil {
			return nil, fmt.Errorf("counter %q: %w", current, err)
		}
	}
	return []byte(strconv.Itoa(n + 1)), nil
}

// command returns the key and change function of cmd given through proposer
// p, and the name of the state transition function it runs.
func command(p int, cmd string) (key string, f synod.ChangeFunc, fn string, err error) {
	switch cmd {
	case CmdSign:
		return MissileKey, missileChange(&scenario.Sign{General: Generals[p]}), "Missile", nil
	case CmdRevoke:
		return MissileKey, missileChange(&scenario.Revoke{General: Generals[p]}), "Missile", nil
	case CmdInc:
		return CounterKey, counterInc, "counterInc", nil
	}
	return "", nil, "", fmt.Errorf("unknown command %q", cmd)
}

// describeValue renders a register value for people.
func describeValue(key string, v []byte) string {
	switch key {
	case MissileKey:
		s := &scenario.LaunchState{}
		if err := proto.Unmarshal(v, s); err != nil {
			return fmt.Sprintf("%x (undecodable)", v)
		}
		if s.Launched {
			return "LAUNCHED by " + strings.Join(s.LaunchedBy, "+")
		}
		if len(s.Signed) == 0 {
			return "signed: none"
		}
		return "signed: " + strings.Join(s.Signed, "+")
	case CounterKey:
		if len(v) == 0 {
			return "0"
		}
		return string(v)
	}
	return fmt.Sprintf("%q", v)
}
