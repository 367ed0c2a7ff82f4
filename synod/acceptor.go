package synod

// AcceptorState is one register's state at one acceptor. The zero value is an
// empty register: nothing promised, nothing accepted, nil value.
type AcceptorState struct {
	Promised Ballot
	Accepted Ballot
	Value    []byte
}

// seen is the greatest ballot the acceptor has promised or accepted.
func (s AcceptorState) seen() Ballot { return maxBallot(s.Promised, s.Accepted) }

// refuses reports whether the acceptor must refuse b. It refuses only a strictly
// smaller ballot than one it has seen: ballots are unique per proposer attempt, so
// an equal ballot is a duplicate of the same attempt and is answered again.
func (s AcceptorState) refuses(b Ballot) bool {
	return b.Less(s.Promised) || b.Less(s.Accepted)
}

// Prepare applies the prepare rule to s. It returns the new state, the reply and
// whether the state changed; a changed state must be durable before the reply is
// sent.
//
// Paper: §2.1 "An acceptor returns a conflict if it already saw a greater ballot
// number. Otherwise it persists the ballot number as a promise and returns a
// confirmation either with an empty value (if it hasn't accepted any value yet) or
// with a tuple of an accepted value and its ballot number."
func (s AcceptorState) Prepare(from string, req PrepareRequest) (AcceptorState, PrepareReply, bool) {
	rep := PrepareReply{From: from, Key: req.Key, Ballot: req.Ballot}
	if s.refuses(req.Ballot) {
		rep.Seen = s.seen()
		return s, rep, false
	}
	changed := s.Promised != req.Ballot
	s.Promised = req.Ballot
	rep.OK, rep.Accepted, rep.Value = true, s.Accepted, s.Value
	return s, rep, changed
}

// Accept applies the accept rule to s, with the same results as Prepare.
//
// Paper: §2.1 "An acceptor returns a conflict if it already saw a greater ballot
// number. Otherwise it marks the received tuple as the accepted value and returns
// a confirmation." The promise of req.Next is the one-round-trip optimisation of
// §2.2.1: accepting b and promising next in one step is the same as accepting b
// and then receiving prepare(next). An accept whose ballot is the accepted one
// is a duplicate (ballots are unique per attempt, so it carries the same value)
// and is confirmed again without a change, even though the acceptor has since
// promised req.Next or more.
func (s AcceptorState) Accept(from string, req AcceptRequest) (AcceptorState, AcceptReply, bool) {
	rep := AcceptReply{From: from, Key: req.Key, Ballot: req.Ballot}
	if !req.Ballot.IsZero() && req.Ballot == s.Accepted {
		// A duplicate of the accept this acceptor already took. Its own promise
		// of req.Next (or a later promise) must not turn it into a refusal: a
		// refusal tells the proposer its value is not here, and a proposer that
		// hears that from every acceptor may run its change again.
		rep.OK = true
		return s, rep, false
	}
	if s.refuses(req.Ballot) {
		rep.Seen = s.seen()
		return s, rep, false
	}
	next := maxBallot(req.Ballot, req.Next)
	changed := s.Accepted != req.Ballot || s.Promised != next || string(s.Value) != string(req.Value)
	s.Accepted, s.Value, s.Promised = req.Ballot, req.Value, next
	rep.OK = true
	return s, rep, changed
}

// Read applies the read rule to s: it reports the state and never changes it,
// so nothing needs to be persisted before the reply.
func (s AcceptorState) Read(from string, req ReadRequest) ReadReply {
	return ReadReply{From: from, Key: req.Key, Promised: s.Promised, Accepted: s.Accepted, Value: s.Value}
}
