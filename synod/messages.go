package synod

// PrepareRequest asks an acceptor to promise ballot Ballot for Key (phase 1a).
type PrepareRequest struct {
	Key    string
	Ballot Ballot
	Epoch  uint64 // the configuration epoch the proposer uses (see Config.Epoch)
}

// PrepareReply answers a PrepareRequest (phase 1b). OK means a promise: Accepted
// and Value are the acceptor's accepted ballot and value (zero and nil for an empty
// register). Otherwise the acceptor had already seen the greater ballot Seen.
// Err, when not nil, says why the acceptor could not serve the request (its
// storage failed, the request's epoch is stale, ...): such a reply is neither a
// promise nor a refusal, and nothing else in it is meaningful.
type PrepareReply struct {
	From     string // acceptor ID
	Key      string
	Ballot   Ballot // the request's ballot, to match replies to attempts
	OK       bool
	Seen     Ballot
	Accepted Ballot
	Value    []byte
	Err      error
}

// AcceptRequest asks an acceptor to accept Value at Ballot for Key (phase 2a).
// Next, if not zero, is the ballot the proposer will use for its next change of
// Key: the acceptor promises it at once, which lets that change skip phase 1.
// Next must be zero or greater than Ballot.
type AcceptRequest struct {
	Key    string
	Ballot Ballot
	Value  []byte
	Next   Ballot
	Epoch  uint64 // the configuration epoch the proposer uses (see Config.Epoch)
}

// AcceptReply answers an AcceptRequest (phase 2b). OK means accepted; otherwise
// the acceptor had already seen the greater ballot Seen. Err, when not nil,
// says why the acceptor could not serve the request; such a reply is neither an
// acceptance nor a refusal (a failed store may or may not have reached the disk).
type AcceptReply struct {
	From   string // acceptor ID
	Key    string
	Ballot Ballot // the request's ballot
	OK     bool
	Seen   Ballot
	Err    error
}

// ReadRequest asks an acceptor for its state of Key without changing it: no
// promise, nothing written, so it costs no disk write. It is the request of the
// lean read path (see the package doc, "Reads with no disk write") and of tools
// that inspect registers.
type ReadRequest struct {
	Key   string
	Epoch uint64 // the configuration epoch the proposer uses (see Config.Epoch)
}

// ReadReply answers a ReadRequest with the acceptor's state of Key as it stood
// when the request was served: its promised and accepted ballots and the
// accepted value (zero and nil for an empty register). Err, when not nil, says
// why the acceptor could not serve the request, and nothing else in the reply
// is meaningful.
type ReadReply struct {
	From     string // acceptor ID
	Key      string
	Promised Ballot
	Accepted Ballot
	Value    []byte
	Err      error
}

// Validate reports a malformed request: an empty key.
func (r ReadRequest) Validate() error {
	if r.Key == "" {
		return errorf(ErrInvalidRequest, "empty key")
	}
	return nil
}

// Validate reports a malformed request: an empty key or an invalid ballot.
func (r PrepareRequest) Validate() error {
	if r.Key == "" {
		return errorf(ErrInvalidRequest, "empty key")
	}
	if !r.Ballot.Valid() {
		return errorf(ErrInvalidRequest, "prepare %q: invalid ballot %v", r.Key, r.Ballot)
	}
	return nil
}

// Validate reports a malformed request: an empty key, an invalid ballot, or a
// next ballot that is neither zero nor greater than Ballot.
func (r AcceptRequest) Validate() error {
	if r.Key == "" {
		return errorf(ErrInvalidRequest, "empty key")
	}
	if !r.Ballot.Valid() {
		return errorf(ErrInvalidRequest, "accept %q: invalid ballot %v", r.Key, r.Ballot)
	}
	if !r.Next.IsZero() && (!r.Next.Valid() || !r.Ballot.Less(r.Next)) {
		return errorf(ErrInvalidRequest, "accept %q: next ballot %v not above %v", r.Key, r.Next, r.Ballot)
	}
	return nil
}
