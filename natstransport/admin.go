package natstransport

import (
	"fmt"

	"github.com/protosynod/protosynod/synod"
)

// The admin endpoint, on its own subject <prefix>.<cluster>.<id>.admin
// (AdminSubject) so that only operators' tools are granted it, serves what a
// synod.Reconfigurer needs of one acceptor (synod.Admin): install a
// configuration, read the configuration served, list keys, read a key's full
// state, and forget a deleted key below a ballot floor.
//
// Its messages are msgpack arrays of wire version AdminVersion; a
// configuration travels in synod.Config's binary encoding:
//
//	request  [2, 1, config bin]                AdminInstall
//	request  [2, 2]                            AdminConfig
//	request  [2, 3, after str, limit uint]     AdminKeys
//	request  [2, 4, key str]                   AdminState
//	request  [2, 5, key str, floor uint]       AdminForget
//	request  [2, 6]                            AdminCompact
//	reply    [2, 1, from, config bin]          the configuration now served
//	reply    [2, 2, from, config bin|nil]      the configuration served (nil: none)
//	reply    [2, 3, from, [key, ...], more bool]
//	reply    [2, 4, from, key, promised ballot, accepted ballot, value bin|nil]
//	reply    [2, 5, from, key, removed bool]
//	reply    [2, 6, from, bytes before uint, bytes after uint]
//	reply    [2, 0, from, code str, message str, detail bin|nil]   an error
//
// An error reply also carries the code and message in the micro error
// headers. Its detail is the acceptor's configuration for CodeStaleEpoch (an
// install older than the configuration served), which the client returns as
// a *synod.StaleEpochError.

// AdminVersion is the wire version of admin messages.
const AdminVersion = 2

// AdminKind is what an admin request asks.
type AdminKind uint8

// Admin request kinds; an admin reply has its request's kind, or
// adminError.
const (
	// AdminInstall installs a configuration (synod.Acceptor.Install).
	AdminInstall AdminKind = 1
	// AdminConfig reads the configuration served (synod.Acceptor.Config).
	AdminConfig AdminKind = 2
	// AdminKeys lists a page of keys (synod.Acceptor.Keys).
	AdminKeys AdminKind = 3
	// AdminState reads a key's state, value included (synod.Acceptor.State).
	AdminState AdminKind = 4
	// AdminForget removes a deleted key below a floor (synod.Acceptor.Forget).
	AdminForget AdminKind = 5
	// AdminCompact reclaims the disk space of forgotten keys
	// (synod.Acceptor.Compact).
	AdminCompact AdminKind = 6

	adminError AdminKind = 0
)

// String implements fmt.Stringer.
func (k AdminKind) String() string {
	switch k {
	case AdminInstall:
		return "install"
	case AdminConfig:
		return "config"
	case AdminKeys:
		return "keys"
	case AdminState:
		return "state"
	case AdminForget:
		return "forget"
	case AdminCompact:
		return "compact"
	case adminError:
		return "error"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// Admin paging and size limits.
const (
	// MaxAdminPage is the largest page of keys one AdminKeys reply holds; a
	// page may stop earlier at adminPageBytes and says so with More.
	MaxAdminPage = 1000
	// maxConfigSize bounds an encoded configuration on the wire.
	maxConfigSize = maxDetailSize
	// adminPageBytes bounds the keys of one page (with their headers).
	adminPageBytes = maxInspectFrame - frameOverhead
)

// AdminRequest is a request on an acceptor's admin subject.
type AdminRequest struct {
	Kind   AdminKind
	Config synod.Config // AdminInstall
	After  string       // AdminKeys: list the keys after this one ("" from the first)
	Limit  int          // AdminKeys: at most this many (1..MaxAdminPage)
	Key    string       // AdminState, AdminForget
	Floor  uint64       // AdminForget
}

// AdminReply is an admin reply. Error is set (and nothing else but From)
// for an error reply.
type AdminReply struct {
	Kind    AdminKind
	From    string              // the acceptor's ID
	Config  synod.Config        // AdminInstall, AdminConfig
	Keys    []string            // AdminKeys
	More    bool                // AdminKeys: more keys follow the last one
	Key     string              // AdminState, AdminForget
	State   synod.AcceptorState // AdminState
	Removed bool                // AdminForget
	Before  uint64              // AdminCompact: bytes on disk before
	After   uint64              // AdminCompact: bytes on disk after
	Error   *ItemError          // an error reply
}

// Field counts of admin messages, version and kind included.
var adminRequestFields = map[AdminKind]int{
	AdminInstall: 3, AdminConfig: 2, AdminKeys: 4, AdminState: 3, AdminForget: 4, AdminCompact: 2,
}

var adminReplyFields = map[AdminKind]int{
	AdminInstall: 4, AdminConfig: 4, AdminKeys: 5, AdminState: 7, AdminForget: 5, AdminCompact: 5, adminError: 6,
}

// Validate checks a request: a known kind, a valid configuration with an
// epoch for AdminInstall, a limit in 1..MaxAdminPage for AdminKeys, and a
// non-empty key no longer than MaxKeySize for AdminState and AdminForget.
func (r AdminRequest) Validate() error {
	switch r.Kind {
	case AdminInstall:
		if err := r.Config.Validate(); err != nil {
			return fmt.Errorf("admin install: %w", err)
		}
		if r.Config.Epoch == 0 {
			return fmt.Errorf("%w: admin install: epoch 0", synod.ErrInvalidConfig)
		}
	case AdminConfig, AdminCompact:
	case AdminKeys:
		if len(r.After) > MaxKeySize {
			return fmt.Errorf("%w: admin keys: cursor of %d bytes, limit %d", ErrTooLarge, len(r.After), MaxKeySize)
		}
		if r.Limit < 1 || r.Limit > MaxAdminPage {
			return fmt.Errorf("%w: admin keys: limit %d, want 1..%d", synod.ErrInvalidRequest, r.Limit, MaxAdminPage)
		}
	case AdminState, AdminForget:
		if r.Key == "" {
			return fmt.Errorf("%w: admin %v: empty key", synod.ErrInvalidRequest, r.Kind)
		}
		if len(r.Key) > MaxKeySize {
			return fmt.Errorf("%w: admin %v: key of %d bytes, limit %d", ErrTooLarge, r.Kind, len(r.Key), MaxKeySize)
		}
	default:
		return fmt.Errorf("%w: admin: unknown kind %d", ErrMalformed, r.Kind)
	}
	return nil
}

// EncodeAdminRequest returns the message of req.
func EncodeAdminRequest(req AdminRequest) ([]byte, error) {
	if err := req.Validate(); err != nil {
		return nil, wrapf(err, "encode admin request")
	}
	b := appendArrayLen(nil, adminRequestFields[req.Kind])
	b = appendUint(b, AdminVersion)
	b = appendUint(b, uint64(req.Kind))
	switch req.Kind {
	case AdminInstall:
		b = appendConfig(b, req.Config)
	case AdminKeys:
		b = appendStr(b, req.After)
		b = appendUint(b, uint64(req.Limit))
	case AdminState:
		b = appendStr(b, req.Key)
	case AdminForget:
		b = appendStr(b, req.Key)
		b = appendUint(b, req.Floor)
	}
	return b, nil
}

// EncodeAdminReply returns the message of rep.
func EncodeAdminReply(rep AdminReply) ([]byte, error) {
	kind := rep.Kind
	if rep.Error != nil {
		kind = adminError
	}
	n, ok := adminReplyFields[kind]
	if !ok {
		return nil, wrapf(fmt.Errorf("%w: unknown kind %d", ErrMalformed, kind), "encode admin reply")
	}
	b := appendArrayLen(nil, n)
	b = appendUint(b, AdminVersion)
	b = appendUint(b, uint64(kind))
	b = appendStr(b, rep.From)
	switch kind {
	case adminError:
		b = appendStr(b, rep.Error.Code)
		b = appendStr(b, rep.Error.Message)
		b = appendBin(b, rep.Error.Detail)
	case AdminInstall, AdminConfig:
		b = appendConfig(b, rep.Config)
	case AdminKeys:
		b = appendArrayLen(b, len(rep.Keys))
		for _, k := range rep.Keys {
			b = appendStr(b, k)
		}
		b = appendBool(b, rep.More)
	case AdminState:
		b = appendStr(b, rep.Key)
		b = appendBallot(b, rep.State.Promised)
		b = appendBallot(b, rep.State.Accepted)
		b = appendBin(b, rep.State.Value)
	case AdminForget:
		b = appendStr(b, rep.Key)
		b = appendBool(b, rep.Removed)
	case AdminCompact:
		b = appendUint(b, rep.Before)
		b = appendUint(b, rep.After)
	}
	return b, nil
}

// appendConfig appends cfg in its binary encoding, or nil for the zero
// Config.
func appendConfig(dst []byte, cfg synod.Config) []byte {
	if cfg.Epoch == 0 && len(cfg.Acceptors) == 0 {
		return appendBin(dst, nil)
	}
	data, err := cfg.MarshalBinary()
	if err != nil {
		return appendBin(dst, nil)
	}
	return appendBin(dst, data)
}

// maxAdminMessage is the largest admin message lim allows: a state reply
// carries a value, a page of keys up to maxInspectFrame.
func maxAdminMessage(lim Limits) int { return max(lim.maxMessage(), maxInspectFrame) }

// newAdminReader checks an admin message's size, array header, version and
// kind, and returns a reader positioned after the kind.
func newAdminReader(what string, data []byte, lim Limits, fields map[AdminKind]int) (*reader, AdminKind, error) {
	if len(data) > maxAdminMessage(lim) {
		return nil, 0, wrapf(fmt.Errorf("%w: %d-byte message, limit %d", ErrTooLarge, len(data), maxAdminMessage(lim)), "decode %s", what)
	}
	if len(data) == 0 {
		return nil, 0, wrapf(fmt.Errorf("%w: empty message", ErrMalformed), "decode %s", what)
	}
	r := newDataReader(what, data, lim)
	n := r.arrayLen("message")
	if r.err == nil && n < 2 {
		r.fail(ErrMalformed, "message array of %d elements", n)
	}
	v := r.uint("version")
	if r.err == nil && v != AdminVersion {
		r.fail(ErrVersion, "version %d, want %d", v, AdminVersion)
	}
	k := r.uint("kind")
	want, known := fields[AdminKind(k)]
	switch {
	case r.err != nil:
	case k > 0xff || !known:
		r.fail(ErrMalformed, "unknown kind %d", k)
	case n != want:
		r.fail(ErrMalformed, "%v with %d fields, want %d", AdminKind(k), n, want)
	}
	if r.err != nil {
		return nil, 0, r.wrapped()
	}
	return r, AdminKind(k), nil
}

// config reads a configuration in its binary encoding, or nil for the zero
// Config (an acceptor never given one).
func (r *reader) config(field string) synod.Config {
	b := r.bin(field, maxConfigSize)
	if r.err != nil || b == nil {
		return synod.Config{}
	}
	var cfg synod.Config
	if err := cfg.UnmarshalBinary(b); err != nil {
		r.fail(ErrMalformed, "%s: %v", field, err)
	}
	return cfg
}

// DecodeAdminRequest decodes and validates an admin request. Errors wrap
// ErrMalformed, ErrVersion, ErrTooLarge, synod.ErrInvalidRequest or
// synod.ErrInvalidConfig.
func DecodeAdminRequest(data []byte) (AdminRequest, error) {
	r, kind, err := newAdminReader("admin request", data, DefaultLimits(), adminRequestFields)
	if err != nil {
		return AdminRequest{}, err
	}
	req := AdminRequest{Kind: kind}
	switch kind {
	case AdminInstall:
		req.Config = r.config("config")
	case AdminKeys:
		req.After = r.str("after", MaxKeySize)
		limit := r.uint("limit")
		if r.err == nil && (limit < 1 || limit > MaxAdminPage) {
			r.fail(synod.ErrInvalidRequest, "limit %d, want 1..%d", limit, MaxAdminPage)
		}
		req.Limit = int(limit)
	case AdminState:
		req.Key = r.key()
	case AdminForget:
		req.Key = r.key()
		req.Floor = r.uint("floor")
	}
	if err := r.finish(); err != nil {
		return AdminRequest{}, err
	}
	if err := req.Validate(); err != nil {
		return AdminRequest{}, wrapf(err, "decode admin request")
	}
	return req, nil
}

// DecodeAdminReply decodes an admin reply; values are bounded by lim.
func DecodeAdminReply(data []byte, lim Limits) (AdminReply, error) {
	r, kind, err := newAdminReader("admin reply", data, lim, adminReplyFields)
	if err != nil {
		return AdminReply{}, err
	}
	rep := AdminReply{Kind: kind, From: r.from()}
	switch kind {
	case adminError:
		rep.Error = &ItemError{Code: r.str("code", maxCodeSize), Message: r.str("message", maxMessageSize), Detail: r.bin("detail", maxDetailSize)}
		if r.err == nil && rep.Error.Code == "" {
			r.fail(ErrMalformed, "empty error code")
		}
	case AdminInstall, AdminConfig:
		rep.Config = r.config("config")
	case AdminKeys:
		n := r.arrayLen("keys")
		switch {
		case r.err != nil:
		case n > MaxAdminPage:
			r.fail(ErrTooLarge, "keys: %d, limit %d", n, MaxAdminPage)
		case n > r.left():
			r.fail(ErrMalformed, "keys: %d announced, %d bytes left", n, r.left())
		default:
			rep.Keys = make([]string, 0, n)
		}
		for i := 0; i < n && r.err == nil; i++ {
			k := r.key()
			if r.err == nil && k == "" {
				r.fail(ErrMalformed, "keys: empty key")
			}
			rep.Keys = append(rep.Keys, k)
		}
		rep.More = r.boolean("more")
	case AdminState:
		rep.Key = r.key()
		rep.State.Promised = r.ballot("promised")
		rep.State.Accepted = r.ballot("accepted")
		rep.State.Value = r.value()
		if r.err == nil {
			r.check(validateBallots("admin state", rep.Key, rep.State.Promised, rep.State.Accepted))
		}
	case AdminForget:
		rep.Key = r.key()
		rep.Removed = r.boolean("removed")
	case AdminCompact:
		rep.Before = r.uint("bytes before")
		rep.After = r.uint("bytes after")
	}
	if err := r.finish(); err != nil {
		return AdminReply{}, err
	}
	if (kind == AdminState || kind == AdminForget) && rep.Key == "" {
		return AdminReply{}, wrapf(fmt.Errorf("%w: empty key", ErrMalformed), "decode admin reply")
	}
	return rep, nil
}
