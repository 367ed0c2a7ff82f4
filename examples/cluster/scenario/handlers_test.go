package scenario

import (
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestMissile(t *testing.T) {
	launched := &LaunchState{Signed: []string{"alice", "bob"}, Launched: true, LaunchedBy: []string{"alice", "bob"}}
	tests := []struct {
		name    string
		state   *LaunchState
		msg     proto.Message
		want    *LaunchState
		wantErr error
	}{
		{"first signature", nil, &Sign{General: "alice"}, &LaunchState{Signed: []string{"alice"}}, nil},
		{"signing twice counts once", &LaunchState{Signed: []string{"alice"}}, &Sign{General: "alice"}, &LaunchState{Signed: []string{"alice"}}, nil},
		{"second signature launches", &LaunchState{Signed: []string{"bob"}}, &Sign{General: "alice"}, launched, nil},
		{"revoke before launch", &LaunchState{Signed: []string{"alice"}}, &Revoke{General: "alice"}, &LaunchState{}, nil},
		{"revoke unsigned", &LaunchState{Signed: []string{"alice"}}, &Revoke{General: "bob"}, nil, ErrNotSigned},
		{"revoke after launch", launched, &Revoke{General: "alice"}, nil, ErrLaunched},
		{"sign after launch", launched, &Sign{General: "carol"}, nil, ErrLaunched},
		{"no general", nil, &Sign{}, nil, ErrUnknownMessage},
		{"wrong message", nil, &Deposit{Amount: 1}, nil, ErrUnknownMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before *LaunchState
			if tt.state != nil {
				before = proto.Clone(tt.state).(*LaunchState)
			}
			got, reply, err := Missile(tt.state, tt.msg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !proto.Equal(got, before) {
					t.Fatalf("refusal changed the state: %v, was %v", got, before)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !proto.Equal(got, tt.want) || !proto.Equal(reply, tt.want) {
				t.Fatalf("state %v, reply %v, want %v", got, reply, tt.want)
			}
			if tt.state != nil && !proto.Equal(tt.state, before) {
				t.Fatalf("handler modified its input: %v, was %v", tt.state, before)
			}
		})
	}
}

func TestAccount(t *testing.T) {
	tests := []struct {
		name    string
		state   *Balance
		msg     proto.Message
		want    *Balance
		wantErr error
	}{
		{"deposit on a new account", nil, &Deposit{Amount: 5}, &Balance{Balance: 5, Operations: 1}, nil},
		{"withdraw", &Balance{Balance: 5, Operations: 1}, &Withdraw{Amount: 5}, &Balance{Balance: 0, Operations: 2}, nil},
		{"overdraft", &Balance{Balance: 5, Operations: 1}, &Withdraw{Amount: 6}, nil, ErrOverdraft},
		{"zero deposit", nil, &Deposit{}, nil, ErrBadAmount},
		{"negative withdrawal", &Balance{Balance: 5}, &Withdraw{Amount: -1}, nil, ErrBadAmount},
		{"wrong message", nil, &Sign{General: "x"}, nil, ErrUnknownMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reply, err := Account(tt.state, tt.msg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || got != tt.state {
					t.Fatalf("got %v, %v, want the state unchanged and %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !proto.Equal(got, tt.want) || !proto.Equal(reply, tt.want) {
				t.Fatalf("got %v, %v, %v, want %v", got, reply, err, tt.want)
			}
		})
	}
}

func TestDescribeLaunch(t *testing.T) {
	if got := describeLaunch(&LaunchState{Launched: true, LaunchedBy: []string{"a", "b"}}); got != "LAUNCHED by a+b" {
		t.Fatalf("got %q", got)
	}
	if got := describeLaunch(nil); got != "0 of 2 signatures" {
		t.Fatalf("got %q", got)
	}
	if !slices.Equal(accountsNames(), holders) {
		t.Fatal("accounts() does not follow holders")
	}
}

func accountsNames() []string {
	var out []string
	for _, g := range accounts() {
		out = append(out, g.name)
	}
	return out
}
