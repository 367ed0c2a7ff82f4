package natstransport

import (
	"fmt"

	"github.com/protosynod/protosynod/synod"
)

// The inspect endpoint, on its own subject <prefix>.<cluster>.<id>.inspect
// (InspectSubject) so that an operator can be granted it without the right to
// prepare or accept, answers read-only questions about an acceptor's state:
// one key's promised and accepted ballots and value size, a page of its
// keys by prefix, or the configuration it serves (epoch and acceptors). It
// never changes or writes anything.
//
// Its frames are msgpack arrays of wire version InspectVersion:
//
//	request  [2, 1, key]                          InspectKey
//	request  [2, 2, prefix, after, limit]         InspectKeys
//	request  [2, 3]                               InspectConfig
//	reply    [2, 1, from, key, promised ballot, accepted ballot, value size]
//	reply    [2, 2, from, [key, ...], more bool]
//	reply    [2, 3, from, config bin|nil]
//
// A configuration is synod.Config's binary encoding, as on the admin
// subject, nil for an acceptor never given one (epoch 0). Kind 3 came after
// kinds 1 and 2, whose frames did not change: an acceptor from before it
// answers kind 3 with an unknown-kind error (400), and a client from before
// it never sends it.
//
// and error replies as on the other subjects (micro error headers and an
// ErrorReply body).

// InspectVersion is the wire version of inspect frames.
const InspectVersion = 2

// InspectKind is what an inspect request asks.
type InspectKind uint8

// Inspect request kinds.
const (
	// InspectKey asks for one key's state.
	InspectKey InspectKind = 1
	// InspectKeys asks for a page of keys by prefix.
	InspectKeys InspectKind = 2
	// InspectConfig asks for the configuration the acceptor serves.
	InspectConfig InspectKind = 3
)

// Paging limits of InspectKeys.
const (
	// DefaultInspectPage is the page size when a request's Limit is zero.
	DefaultInspectPage = 100
	// MaxInspectPage is the largest page; larger limits are cut to it.
	MaxInspectPage = 1000
	// maxInspectFrame bounds inspect frames: a page stops early when its keys
	// would pass inspectPageBytes, which leaves room for the rest.
	maxInspectFrame  = 512 << 10
	inspectPageBytes = maxInspectFrame - frameOverhead
)

// InspectRequest is a request on an acceptor's inspect subject.
type InspectRequest struct {
	Kind InspectKind
	// Key is the key of an InspectKey request.
	Key string
	// Prefix selects the keys of an InspectKeys request ("" for all); After,
	// if not empty, starts the page after that key (the last key of the
	// previous page); Limit bounds the page (0 for DefaultInspectPage, at most
	// MaxInspectPage).
	Prefix, After string
	Limit         int
}

// KeyInfo is one acceptor's state of one key, without the value.
type KeyInfo struct {
	From     string       // the acceptor's ID
	Key      string       // the key
	Promised synod.Ballot // the highest ballot promised (zero if none)
	Accepted synod.Ballot // the ballot of the accepted value (zero if none)
	// ValueSize is the accepted value's length in bytes (0 for an empty
	// register or an empty value; Accepted tells them apart).
	ValueSize int
}

// ConfigInfo is the configuration one acceptor serves.
type ConfigInfo struct {
	From string // the acceptor's ID
	// Config is the configuration served, with its epoch; the zero Config
	// for an acceptor never given one (epoch 0, the configuration its
	// proposers were started with).
	Config synod.Config
}

// KeyPage is a page of an acceptor's keys, in ascending byte order.
type KeyPage struct {
	From string   // the acceptor's ID
	Keys []string // the keys
	// More reports that more keys with the prefix follow: ask again with
	// After set to the last key of this page.
	More bool
}

type wireInspectKeyRequest struct {
	_msgpack struct{} `msgpack:",as_array"`
	Version  uint8
	Kind     InspectKind
	Key      string
}

type wireInspectKeysRequest struct {
	_msgpack struct{} `msgpack:",as_array"`
	Version  uint8
	Kind     InspectKind
	Prefix   string
	After    string
	Limit    uint64
}

type wireInspectConfigRequest struct {
	_msgpack struct{} `msgpack:",as_array"`
	Version  uint8
	Kind     InspectKind
}

type wireKeyInfo struct {
	_msgpack  struct{} `msgpack:",as_array"`
	Version   uint8
	Kind      InspectKind
	From      string
	Key       string
	Promised  wireBallot
	Accepted  wireBallot
	ValueSize uint64
}

type wireKeyPage struct {
	_msgpack struct{} `msgpack:",as_array"`
	Version  uint8
	Kind     InspectKind
	From     string
	Keys     []string
	More     bool
}

// Field counts, version and kind included.
const (
	inspectKeyRequestFields    = 3
	inspectKeysRequestFields   = 5
	inspectConfigRequestFields = 2
	keyInfoFields              = 7
	keyPageFields              = 5
	configInfoFields           = 4
)

// pageLimit returns the number of keys a request's Limit allows.
func (r InspectRequest) pageLimit() int {
	switch {
	case r.Limit <= 0:
		return DefaultInspectPage
	case r.Limit > MaxInspectPage:
		return MaxInspectPage
	}
	return r.Limit
}

// Validate checks a request: a known kind, a non-empty key for InspectKey,
// and keys, prefixes and cursors no longer than MaxKeySize.
func (r InspectRequest) Validate() error {
	switch r.Kind {
	case InspectKey:
		if r.Key == "" {
			return fmt.Errorf("%w: inspect: empty key", synod.ErrInvalidRequest)
		}
		if len(r.Key) > MaxKeySize {
			return fmt.Errorf("%w: inspect: key of %d bytes, limit %d", ErrTooLarge, len(r.Key), MaxKeySize)
		}
	case InspectKeys:
		if len(r.Prefix) > MaxKeySize || len(r.After) > MaxKeySize {
			return fmt.Errorf("%w: inspect: prefix or cursor over %d bytes", ErrTooLarge, MaxKeySize)
		}
		if r.Limit < 0 {
			return fmt.Errorf("%w: inspect: negative limit %d", synod.ErrInvalidRequest, r.Limit)
		}
	case InspectConfig:
	default:
		return fmt.Errorf("%w: inspect: unknown kind %d", ErrMalformed, r.Kind)
	}
	return nil
}

// EncodeInspectRequest returns the frame of req.
func EncodeInspectRequest(req InspectRequest) ([]byte, error) {
	if err := req.Validate(); err != nil {
		return nil, wrapf(err, "encode inspect request")
	}
	switch req.Kind {
	case InspectKey:
		return encode(&wireInspectKeyRequest{Version: InspectVersion, Kind: InspectKey, Key: req.Key})
	case InspectConfig:
		return encode(&wireInspectConfigRequest{Version: InspectVersion, Kind: InspectConfig})
	}
	return encode(&wireInspectKeysRequest{Version: InspectVersion, Kind: InspectKeys, Prefix: req.Prefix, After: req.After, Limit: uint64(req.Limit)})
}

// EncodeKeyInfo returns the reply frame of an InspectKey request.
func EncodeKeyInfo(k KeyInfo) ([]byte, error) {
	return encode(&wireKeyInfo{
		Version: InspectVersion, Kind: InspectKey, From: k.From, Key: k.Key,
		Promised: toWire(k.Promised), Accepted: toWire(k.Accepted), ValueSize: uint64(k.ValueSize),
	})
}

// EncodeConfigInfo returns the reply frame of an InspectConfig request.
func EncodeConfigInfo(c ConfigInfo) ([]byte, error) {
	b := appendArrayLen(nil, configInfoFields)
	b = appendUint(b, InspectVersion)
	b = appendUint(b, uint64(InspectConfig))
	b = appendStr(b, c.From)
	return appendConfig(b, c.Config), nil
}

// EncodeKeyPage returns the reply frame of an InspectKeys request.
func EncodeKeyPage(p KeyPage) ([]byte, error) {
	keys := p.Keys
	if keys == nil {
		keys = []string{} // an empty array, not nil: one layout on the wire
	}
	return encode(&wireKeyPage{Version: InspectVersion, Kind: InspectKeys, From: p.From, Keys: keys, More: p.More})
}

// newInspectReader checks an inspect frame's size, array header, version and
// kind, and returns a reader positioned after the kind.
func newInspectReader(what string, data []byte) (*reader, InspectKind, int, error) {
	if len(data) > maxInspectFrame {
		return nil, 0, 0, wrapf(fmt.Errorf("%w: %d-byte frame, limit %d", ErrTooLarge, len(data), maxInspectFrame), "decode %s", what)
	}
	if len(data) == 0 {
		return nil, 0, 0, wrapf(fmt.Errorf("%w: empty frame", ErrMalformed), "decode %s", what)
	}
	r := newDataReader(what, data, DefaultLimits())
	c := r.peek("frame")
	if r.err == nil && !isArray(c) {
		r.fail(ErrMalformed, "frame is not an array (code %#x)", c)
	}
	var n int
	if r.err == nil {
		var err error
		if n, err = r.arrayHeader(); err != nil {
			r.fail(ErrMalformed, "frame: %v", err)
		}
	}
	if r.err == nil && n < 2 {
		r.fail(ErrMalformed, "frame array of %d elements", n)
	}
	v := r.uint("version")
	if r.err == nil && v != InspectVersion {
		r.fail(ErrVersion, "version %d, want %d", v, InspectVersion)
	}
	k := InspectKind(r.uint("kind"))
	if r.err != nil {
		return nil, 0, 0, r.wrapped()
	}
	return r, k, n, nil
}

// DecodeInspectRequest decodes and validates an inspect request frame.
// Errors wrap ErrMalformed, ErrVersion, ErrTooLarge or synod.ErrInvalidRequest.
func DecodeInspectRequest(data []byte) (InspectRequest, error) {
	r, kind, n, err := newInspectReader("inspect request", data)
	if err != nil {
		return InspectRequest{}, err
	}
	req := InspectRequest{Kind: kind}
	switch kind {
	case InspectKey:
		if n != inspectKeyRequestFields {
			r.fail(ErrMalformed, "%d fields, want %d", n, inspectKeyRequestFields)
		}
		req.Key = r.key()
	case InspectKeys:
		if n != inspectKeysRequestFields {
			r.fail(ErrMalformed, "%d fields, want %d", n, inspectKeysRequestFields)
		}
		req.Prefix = r.str("prefix", MaxKeySize)
		req.After = r.str("after", MaxKeySize)
		limit := r.uint("limit")
		req.Limit = int(min(limit, MaxInspectPage))
	case InspectConfig:
		if n != inspectConfigRequestFields {
			r.fail(ErrMalformed, "%d fields, want %d", n, inspectConfigRequestFields)
		}
	default:
		r.fail(ErrMalformed, "unknown kind %d", kind)
	}
	if err := r.finish(); err != nil {
		return InspectRequest{}, err
	}
	if err := req.Validate(); err != nil {
		return InspectRequest{}, wrapf(err, "decode inspect request")
	}
	return req, nil
}

// DecodeKeyInfo decodes the reply to an InspectKey request.
func DecodeKeyInfo(data []byte) (KeyInfo, error) {
	r, kind, n, err := newInspectReader("key info", data)
	if err != nil {
		return KeyInfo{}, err
	}
	if kind != InspectKey || n != keyInfoFields {
		r.fail(ErrMalformed, "kind %d with %d fields, want kind %d with %d", kind, n, InspectKey, keyInfoFields)
	}
	var k KeyInfo
	k.From = r.from()
	k.Key = r.key()
	k.Promised = r.ballot("promised")
	k.Accepted = r.ballot("accepted")
	size := r.uint("value size")
	if r.err == nil && size > 1<<40 {
		r.fail(ErrMalformed, "value size %d", size)
	}
	k.ValueSize = int(size)
	if err := r.finish(); err != nil {
		return KeyInfo{}, err
	}
	if k.Key == "" {
		return KeyInfo{}, wrapf(fmt.Errorf("%w: empty key", ErrMalformed), "decode key info")
	}
	return k, nil
}

// DecodeConfigInfo decodes the reply to an InspectConfig request.
func DecodeConfigInfo(data []byte) (ConfigInfo, error) {
	r, kind, n, err := newInspectReader("config info", data)
	if err != nil {
		return ConfigInfo{}, err
	}
	if kind != InspectConfig || n != configInfoFields {
		r.fail(ErrMalformed, "kind %d with %d fields, want kind %d with %d", kind, n, InspectConfig, configInfoFields)
	}
	var c ConfigInfo
	c.From = r.from()
	c.Config = r.config("config")
	if err := r.finish(); err != nil {
		return ConfigInfo{}, err
	}
	return c, nil
}

// DecodeKeyPage decodes the reply to an InspectKeys request.
func DecodeKeyPage(data []byte) (KeyPage, error) {
	r, kind, n, err := newInspectReader("key page", data)
	if err != nil {
		return KeyPage{}, err
	}
	if kind != InspectKeys || n != keyPageFields {
		r.fail(ErrMalformed, "kind %d with %d fields, want kind %d with %d", kind, n, InspectKeys, keyPageFields)
	}
	var p KeyPage
	p.From = r.from()
	c := r.peek("keys")
	if r.err == nil && !isArray(c) {
		r.fail(ErrMalformed, "keys: not an array (code %#x)", c)
	}
	var count int
	if r.err == nil {
		var err error
		count, err = r.arrayHeader()
		switch {
		case err != nil:
			r.fail(ErrMalformed, "keys: %v", err)
		case count < 0 || count > MaxInspectPage:
			r.fail(ErrTooLarge, "keys: %d, limit %d", count, MaxInspectPage)
		case count > r.left():
			r.fail(ErrMalformed, "keys: %d announced, %d bytes left", count, r.left())
		}
	}
	if r.err == nil {
		p.Keys = make([]string, 0, count)
	}
	for i := 0; i < count && r.err == nil; i++ {
		k := r.key()
		if r.err == nil && k == "" {
			r.fail(ErrMalformed, "keys: empty key")
		}
		p.Keys = append(p.Keys, k)
	}
	p.More = r.boolean("more")
	if err := r.finish(); err != nil {
		return KeyPage{}, err
	}
	return p, nil
}
