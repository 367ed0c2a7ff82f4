package synod_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/protosynod/protosynod/synod"
)

// FuzzAcceptor feeds an Acceptor arbitrary sequences of prepare and accept
// requests, malformed ones included, and checks after each that it never
// panics, rejects exactly the malformed ones without a change, and that its
// state only moves forward: promised and accepted ballots never decrease, the
// accepted ballot never passes the promise, and an OK reply means the state
// holds the request's ballot.
func FuzzAcceptor(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 1, 1, 0, 2, 0, 2, 1, 0})
	f.Add([]byte{1, 3, 1, 4, 0, 2, 0, 0, 1, 3, 1, 5, 1, 3, 1, 4})
	f.Add([]byte{0, 0, 2, 0, 1, 2, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		a := synod.NewAcceptor("a", synod.NewMemoryStorage())
		proposers := []string{"p", "q", ""}
		var prev synod.AcceptorState
		for i := 0; i+4 <= len(data) && i < 400; i += 4 {
			op, c, who, next := data[i]%2, uint64(data[i+1]%8), proposers[int(data[i+2])%3], uint64(data[i+3]%8)
			b := synod.Ballot{Counter: c, Proposer: who}
			if c == 0 && who == "" {
				b = synod.Ballot{}
			}
			var ok bool
			var err error
			if op == 0 {
				var rep synod.PrepareReply
				rep, err = a.Prepare(ctx, synod.PrepareRequest{Key: "k", Ballot: b})
				ok = rep.OK
			} else {
				nb := synod.Ballot{}
				if next > 0 {
					nb = synod.Ballot{Counter: next, Proposer: "p"}
				}
				req := synod.AcceptRequest{Key: "k", Ballot: b, Value: fmt.Appendf(nil, "%v", b), Next: nb}
				var rep synod.AcceptReply
				rep, err = a.Accept(ctx, req)
				ok = rep.OK
			}
			st, serr := a.State(ctx, "k")
			if serr != nil {
				t.Fatal(serr)
			}
			if !b.Valid() || (op == 1 && next > 0 && !b.Less(synod.Ballot{Counter: next, Proposer: "p"})) {
				if !errors.Is(err, synod.ErrInvalidRequest) || ok {
					t.Fatalf("step %d: malformed request with ballot %v: ok=%v, err=%v", i/4, b, ok, err)
				}
			} else if err != nil {
				t.Fatalf("step %d: %v", i/4, err)
			}
			if st.Promised.Less(prev.Promised) || st.Accepted.Less(prev.Accepted) || st.Promised.Less(st.Accepted) {
				t.Fatalf("step %d: state went from %+v to %+v", i/4, prev, st)
			}
			if ok && op == 0 && st.Promised != b {
				t.Fatalf("step %d: promised %v but holds %v", i/4, b, st.Promised)
			}
			if ok && op == 1 && (st.Accepted != b || string(st.Value) != fmt.Sprint(b)) {
				t.Fatalf("step %d: accepted %v but holds %v %q", i/4, b, st.Accepted, st.Value)
			}
			prev = st
		}
	})
}
