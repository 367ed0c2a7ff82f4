package natstransport

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/protosynod/protosynod/synod"
)

// WireVersion is the newest version of the wire format, the one proposers
// send (version-2 frames on the .frame subject, see EncodeRequestFrame). It is
// the first field of every message. Acceptors also keep reading and answering
// version-1 messages on the .prepare and .accept subjects, so proposers of
// the previous release keep working during a rolling upgrade.
const WireVersion = 2

// wireVersion1 is the version of the single-request layouts of the .prepare
// and .accept subjects and of the error reply body, which version 2 left
// unchanged.
const wireVersion1 = 1

// Size limits of the wire format. Keys and IDs are fixed; the value limit is
// configurable (see Limits).
const (
	// MaxKeySize is the longest register key, in bytes.
	MaxKeySize = 1 << 10
	// MaxIDSize is the longest acceptor ID and the longest proposer ID inside a
	// ballot, in bytes.
	MaxIDSize = 256
	// DefaultMaxValue is the default value limit: 512 KiB, well under NATS's
	// default max_payload of 1 MiB.
	DefaultMaxValue = 512 << 10

	// frameOverhead bounds everything in a frame but the value: version, from,
	// key, three ballots, flags and msgpack headers.
	frameOverhead = 4 << 10
	// maxCodeSize and maxMessageSize bound the fields of an ErrorReply.
	maxCodeSize    = 16
	maxMessageSize = 4 << 10
)

// Limits bounds what a decoder accepts. Decoders check the frame size before
// decoding and every length header before reading what it announces, so a
// frame never makes them allocate more than its own size.
type Limits struct {
	// MaxValue is the largest register value, in bytes (DefaultMaxValue if
	// zero or negative).
	MaxValue int
	// MaxMessage is the largest frame, in bytes (if zero or negative, MaxValue
	// plus room for the other fields).
	MaxMessage int
}

// DefaultLimits returns the limits for DefaultMaxValue.
func DefaultLimits() Limits { return Limits{MaxValue: DefaultMaxValue} }

func (l Limits) maxValue() int {
	if l.MaxValue <= 0 {
		return DefaultMaxValue
	}
	return l.MaxValue
}

func (l Limits) maxMessage() int {
	if l.MaxMessage <= 0 {
		return l.maxValue() + frameOverhead
	}
	return l.MaxMessage
}

// The wire structs fix the layout of each version-1 message: a msgpack array
// whose first element is the wire version, 1. Encoding goes through them with compact
// integers; decoding reads the same layout field by field (see reader), strictly.

type wireBallot struct {
	_msgpack struct{} `msgpack:",as_array"`
	Counter  uint64
	Proposer string
}

type wirePrepareRequest struct {
	_msgpack struct{} `msgpack:",as_array"`
	Version  uint8
	Key      string
	Ballot   wireBallot
}

type wireAcceptRequest struct {
	_msgpack struct{} `msgpack:",as_array"`
	Version  uint8
	Key      string
	Ballot   wireBallot
	Value    []byte // nil encodes as msgpack nil: an empty register
	Next     wireBallot
}

type wirePrepareReply struct {
	_msgpack struct{} `msgpack:",as_array"`
	Version  uint8
	From     string
	Key      string
	Ballot   wireBallot
	OK       bool
	Seen     wireBallot
	Accepted wireBallot
	Value    []byte
}

type wireAcceptReply struct {
	_msgpack struct{} `msgpack:",as_array"`
	Version  uint8
	From     string
	Key      string
	Ballot   wireBallot
	OK       bool
	Seen     wireBallot
}

type wireErrorReply struct {
	_msgpack struct{} `msgpack:",as_array"`
	Version  uint8
	Code     string
	Message  string
}

// Field counts of each frame, version included, checked exactly on decode.
const (
	ballotFields         = 2
	prepareRequestFields = 3
	acceptRequestFields  = 5
	prepareReplyFields   = 8
	acceptReplyFields    = 6
	errorReplyFields     = 3
)

// ErrorReply is the body of an error reply: the same code and description as
// the reply's micro error headers, for clients that read only the body.
type ErrorReply struct {
	Code    string
	Message string
}

func toWire(b synod.Ballot) wireBallot { return wireBallot{Counter: b.Counter, Proposer: b.Proposer} }

// encode marshals a wire struct with compact integers.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	enc.Reset(&buf)
	enc.UseCompactInts(true)
	err := enc.Encode(v)
	msgpack.PutEncoder(enc)
	if err != nil {
		return nil, fmt.Errorf("natstransport: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// EncodePrepareRequest returns the frame of req.
func EncodePrepareRequest(req synod.PrepareRequest) ([]byte, error) {
	return encode(&wirePrepareRequest{Version: wireVersion1, Key: req.Key, Ballot: toWire(req.Ballot)})
}

// EncodeAcceptRequest returns the frame of req.
func EncodeAcceptRequest(req synod.AcceptRequest) ([]byte, error) {
	return encode(&wireAcceptRequest{
		Version: wireVersion1, Key: req.Key, Ballot: toWire(req.Ballot), Value: req.Value, Next: toWire(req.Next),
	})
}

// EncodePrepareReply returns the frame of rep.
func EncodePrepareReply(rep synod.PrepareReply) ([]byte, error) {
	return encode(&wirePrepareReply{
		Version: wireVersion1, From: rep.From, Key: rep.Key, Ballot: toWire(rep.Ballot), OK: rep.OK,
		Seen: toWire(rep.Seen), Accepted: toWire(rep.Accepted), Value: rep.Value,
	})
}

// EncodeAcceptReply returns the frame of rep.
func EncodeAcceptReply(rep synod.AcceptReply) ([]byte, error) {
	return encode(&wireAcceptReply{
		Version: wireVersion1, From: rep.From, Key: rep.Key, Ballot: toWire(rep.Ballot), OK: rep.OK, Seen: toWire(rep.Seen),
	})
}

// EncodeErrorReply returns the frame of rep.
func EncodeErrorReply(rep ErrorReply) ([]byte, error) {
	return encode(&wireErrorReply{Version: wireVersion1, Code: rep.Code, Message: rep.Message})
}

// DecodePrepareRequest decodes and validates a prepare request frame. Errors
// wrap ErrMalformed, ErrVersion, ErrTooLarge or synod.ErrInvalidRequest.
func DecodePrepareRequest(data []byte, lim Limits) (synod.PrepareRequest, error) {
	var req synod.PrepareRequest
	r, err := newReader("prepare request", data, lim, prepareRequestFields)
	if err != nil {
		return req, err
	}
	req.Key = r.key()
	req.Ballot = r.ballot("ballot")
	if err := r.finish(); err != nil {
		return synod.PrepareRequest{}, err
	}
	if err := req.Validate(); err != nil {
		return synod.PrepareRequest{}, wrapf(err, "decode prepare request")
	}
	return req, nil
}

// DecodeAcceptRequest decodes and validates an accept request frame. The
// value aliases data. Errors wrap ErrMalformed, ErrVersion, ErrTooLarge or
// synod.ErrInvalidRequest.
func DecodeAcceptRequest(data []byte, lim Limits) (synod.AcceptRequest, error) {
	var req synod.AcceptRequest
	r, err := newReader("accept request", data, lim, acceptRequestFields)
	if err != nil {
		return req, err
	}
	req.Key = r.key()
	req.Ballot = r.ballot("ballot")
	req.Value = r.value()
	req.Next = r.ballot("next")
	if err := r.finish(); err != nil {
		return synod.AcceptRequest{}, err
	}
	if err := req.Validate(); err != nil {
		return synod.AcceptRequest{}, wrapf(err, "decode accept request")
	}
	return req, nil
}

// DecodePrepareReply decodes and validates a prepare reply frame: a non-empty
// sender and key, a valid request ballot, and other ballots zero or valid. The
// value aliases data.
func DecodePrepareReply(data []byte, lim Limits) (synod.PrepareReply, error) {
	var rep synod.PrepareReply
	r, err := newReader("prepare reply", data, lim, prepareReplyFields)
	if err != nil {
		return rep, err
	}
	rep.From = r.from()
	rep.Key = r.key()
	rep.Ballot = r.ballot("ballot")
	rep.OK = r.boolean("ok")
	rep.Seen = r.ballot("seen")
	rep.Accepted = r.ballot("accepted")
	rep.Value = r.value()
	if err := r.finish(); err != nil {
		return synod.PrepareReply{}, err
	}
	if err := validateReply("prepare reply", rep.Key, rep.Ballot, rep.Seen, rep.Accepted); err != nil {
		return synod.PrepareReply{}, err
	}
	return rep, nil
}

// DecodeAcceptReply decodes and validates an accept reply frame, as
// DecodePrepareReply does.
func DecodeAcceptReply(data []byte, lim Limits) (synod.AcceptReply, error) {
	var rep synod.AcceptReply
	r, err := newReader("accept reply", data, lim, acceptReplyFields)
	if err != nil {
		return rep, err
	}
	rep.From = r.from()
	rep.Key = r.key()
	rep.Ballot = r.ballot("ballot")
	rep.OK = r.boolean("ok")
	rep.Seen = r.ballot("seen")
	if err := r.finish(); err != nil {
		return synod.AcceptReply{}, err
	}
	if err := validateReply("accept reply", rep.Key, rep.Ballot, rep.Seen); err != nil {
		return synod.AcceptReply{}, err
	}
	return rep, nil
}

// DecodeErrorReply decodes an error reply frame; the code must be non-empty.
func DecodeErrorReply(data []byte, lim Limits) (ErrorReply, error) {
	var rep ErrorReply
	r, err := newReader("error reply", data, lim, errorReplyFields)
	if err != nil {
		return rep, err
	}
	rep.Code = r.str("code", maxCodeSize)
	rep.Message = r.str("message", maxMessageSize)
	if err := r.finish(); err != nil {
		return ErrorReply{}, err
	}
	if rep.Code == "" {
		return ErrorReply{}, fmt.Errorf("natstransport: decode error reply: %w: empty code", ErrMalformed)
	}
	return rep, nil
}

// validateReply checks a reply's key and ballots: the request's ballot must be
// valid, the others zero or valid.
func validateReply(what, key string, b synod.Ballot, others ...synod.Ballot) error {
	if key == "" {
		return fmt.Errorf("natstransport: decode %s: %w: empty key", what, synod.ErrInvalidRequest)
	}
	if !b.Valid() {
		return fmt.Errorf("natstransport: decode %s %q: %w: invalid ballot %v", what, key, synod.ErrInvalidRequest, b)
	}
	for _, o := range others {
		if !o.IsZero() && !o.Valid() {
			return fmt.Errorf("natstransport: decode %s %q: %w: invalid ballot %v", what, key, synod.ErrInvalidRequest, o)
		}
	}
	return nil
}

// reader decodes one frame strictly, field by field. The first error sticks:
// later reads return zero values, and finish reports it. It peeks at each
// field's type code before decoding it, accepts only the expected types, and
// checks every string and binary length against its limit and the bytes left
// before reading, so a crafted length never causes an allocation.
//
// It reads data directly (a cursor over the slice) rather than through a
// msgpack.Decoder: a decoder per frame cost allocations and an interface call
// per byte, and the few codes read here are simple.
type reader struct {
	what string
	data []byte
	pos  int // next byte of data to read
	lim  Limits
	err  error
	id   string // the last proposer ID read, reused when the next one is equal
}

// newDataReader returns a reader of data that has checked nothing yet.
func newDataReader(what string, data []byte, lim Limits) *reader {
	return &reader{what: what, data: data, lim: lim}
}

// newReader checks the frame size, the array header (exactly fields
// elements) and the version.
func newReader(what string, data []byte, lim Limits, fields int) (*reader, error) {
	return newVersionReader(what, data, lim, fields, wireVersion1)
}

// newVersionReader is newReader for a layout of another wire version.
func newVersionReader(what string, data []byte, lim Limits, fields int, version uint64) (*reader, error) {
	r := newDataReader(what, data, lim)
	if err := r.start(fields, version); err != nil {
		return nil, err
	}
	return r, nil
}

// start is newVersionReader on an existing reader of data.
func (r *reader) start(fields int, version uint64) error {
	data, lim, what := r.data, r.lim, r.what
	if len(data) > lim.maxMessage() {
		return wrapf(fmt.Errorf("%w: %d-byte frame, limit %d", ErrTooLarge, len(data), lim.maxMessage()), "decode %s", what)
	}
	if len(data) == 0 {
		return wrapf(fmt.Errorf("%w: empty frame", ErrMalformed), "decode %s", what)
	}
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
	if r.err == nil && n < 1 {
		r.fail(ErrMalformed, "empty frame array")
	}
	v := r.uint("version")
	switch {
	case r.err != nil:
	case v != version:
		r.fail(ErrVersion, "version %d, want %d", v, version)
	case n != fields:
		r.fail(ErrMalformed, "%d fields, want %d", n, fields)
	}
	return r.wrapped()
}

func isArray(c byte) bool {
	return msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
}

func isStr(c byte) bool {
	return msgpcode.IsFixedString(c) || c == msgpcode.Str8 || c == msgpcode.Str16 || c == msgpcode.Str32
}

func isBin(c byte) bool { return c == msgpcode.Bin8 || c == msgpcode.Bin16 || c == msgpcode.Bin32 }

func isUint(c byte) bool {
	return c <= msgpcode.PosFixedNumHigh || c == msgpcode.Uint8 || c == msgpcode.Uint16 ||
		c == msgpcode.Uint32 || c == msgpcode.Uint64
}

// fail records the first error, wrapping sentinel.
func (r *reader) fail(sentinel error, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
	}
}

// wrapped returns the recorded error with the frame kind as context.
func (r *reader) wrapped() error {
	if r.err == nil {
		return nil
	}
	return wrapf(r.err, "decode %s", r.what)
}

// left returns how many bytes are left to read.
func (r *reader) left() int { return len(r.data) - r.pos }

// errTruncated is what the raw reads below return when data ends too early.
var errTruncated = errors.New("unexpected end of data")

// be reads an n-byte big-endian unsigned integer (n ≤ 8).
func (r *reader) be(n int) (uint64, error) {
	if r.left() < n {
		r.pos = len(r.data)
		return 0, errTruncated
	}
	var v uint64
	for _, b := range r.data[r.pos : r.pos+n] {
		v = v<<8 | uint64(b)
	}
	r.pos += n
	return v, nil
}

// arrayHeader reads an array header; the caller checked its code.
func (r *reader) arrayHeader() (int, error) {
	c := r.data[r.pos]
	r.pos++
	switch {
	case msgpcode.IsFixedArray(c):
		return int(c & msgpcode.FixedArrayMask), nil
	case c == msgpcode.Array16:
		n, err := r.be(2)
		return int(n), err
	case c == msgpcode.Array32:
		n, err := r.be(4)
		return int(n), err
	}
	return 0, fmt.Errorf("invalid code %#x decoding array length", c)
}

// bytesHeader reads a str or bin header; the caller checked its code.
func (r *reader) bytesHeader() (int, error) {
	c := r.data[r.pos]
	r.pos++
	var size int
	switch {
	case msgpcode.IsFixedString(c):
		return int(c & msgpcode.FixedStrMask), nil
	case c == msgpcode.Str8 || c == msgpcode.Bin8:
		size = 1
	case c == msgpcode.Str16 || c == msgpcode.Bin16:
		size = 2
	case c == msgpcode.Str32 || c == msgpcode.Bin32:
		size = 4
	default:
		return 0, fmt.Errorf("invalid code %#x decoding bytes length", c)
	}
	n, err := r.be(size)
	return int(n), err
}

func (r *reader) peek(field string) byte { return r.peekOf(field, "") }

// peekOf returns the code of the next field, named field+sub in errors.
func (r *reader) peekOf(field, sub string) byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.data) {
		r.fail(ErrMalformed, "%s%s: truncated", field, sub)
		return 0
	}
	return r.data[r.pos]
}

func (r *reader) uint(field string) uint64 { return r.uintOf(field, "") }

// uintOf reads an unsigned integer; field+sub names it in errors only, so
// that a well-formed frame builds no names.
func (r *reader) uintOf(field, sub string) uint64 {
	c := r.peekOf(field, sub)
	if r.err != nil {
		return 0
	}
	if !isUint(c) {
		r.fail(ErrMalformed, "%s%s: not an unsigned integer (code %#x)", field, sub, c)
		return 0
	}
	r.pos++
	var (
		v   uint64
		err error
	)
	switch c {
	case msgpcode.Uint8:
		v, err = r.be(1)
	case msgpcode.Uint16:
		v, err = r.be(2)
	case msgpcode.Uint32:
		v, err = r.be(4)
	case msgpcode.Uint64:
		v, err = r.be(8)
	default:
		v = uint64(c)
	}
	if err != nil {
		r.fail(ErrMalformed, "%s%s: %v", field, sub, err)
	}
	return v
}

func (r *reader) boolean(field string) bool {
	c := r.peek(field)
	if r.err != nil {
		return false
	}
	switch c {
	case msgpcode.True, msgpcode.False:
		r.pos++
		return c == msgpcode.True
	}
	r.fail(ErrMalformed, "%s: not a boolean (code %#x)", field, c)
	return false
}

// skipNil skips a nil the caller peeked at.
func (r *reader) skipNil() { r.pos++ }

// span reads a string or binary header and returns the bounds of its payload
// in r.data, after checking n against max and the bytes left.
func (r *reader) span(field string, max int) (lo, hi int, ok bool) { return r.spanOf(field, "", max) }

func (r *reader) spanOf(field, sub string, max int) (lo, hi int, ok bool) {
	n, err := r.bytesHeader()
	if err != nil {
		r.fail(ErrMalformed, "%s%s: %v", field, sub, err)
		return 0, 0, false
	}
	if n > max {
		r.fail(ErrTooLarge, "%s%s: %d bytes, limit %d", field, sub, n, max)
		return 0, 0, false
	}
	if n < 0 || n > r.left() {
		r.fail(ErrMalformed, "%s%s: %d bytes announced, %d left", field, sub, n, r.left())
		return 0, 0, false
	}
	lo = r.pos
	hi = lo + n
	r.pos = hi
	return lo, hi, true
}

func (r *reader) str(field string, max int) string {
	lo, hi, ok := r.strSpan(field, "", max)
	if !ok {
		return ""
	}
	return string(r.data[lo:hi])
}

// strSpan reads a string's header and returns its bounds in r.data.
func (r *reader) strSpan(field, sub string, max int) (lo, hi int, ok bool) {
	c := r.peekOf(field, sub)
	if r.err != nil {
		return 0, 0, false
	}
	if !isStr(c) {
		r.fail(ErrMalformed, "%s%s: not a string (code %#x)", field, sub, c)
		return 0, 0, false
	}
	return r.spanOf(field, sub, max)
}

// strLike reads a string and returns known instead of a copy when they are
// equal: a reply's key is usually the request's, held by the caller.
func (r *reader) strLike(field string, max int, known string) string {
	lo, hi, ok := r.strSpan(field, "", max)
	switch {
	case !ok:
		return ""
	case string(r.data[lo:hi]) == known:
		return known
	}
	return string(r.data[lo:hi])
}

func (r *reader) key() string { return r.str("key", MaxKeySize) }

func (r *reader) from() string {
	s := r.str("from", MaxIDSize)
	if r.err == nil && s == "" {
		r.fail(ErrMalformed, "from: empty acceptor ID")
	}
	return s
}

// value reads nil (an empty register) or a binary no longer than MaxValue; the
// result aliases r.data, with its capacity capped so appends copy.
func (r *reader) value() []byte {
	c := r.peek("value")
	if r.err != nil {
		return nil
	}
	switch {
	case c == msgpcode.Nil:
		r.skipNil()
		return nil
	case !isBin(c):
		r.fail(ErrMalformed, "value: not binary (code %#x)", c)
		return nil
	}
	lo, hi, ok := r.span("value", r.lim.maxValue())
	if !ok {
		return nil
	}
	return r.data[lo:hi:hi]
}

// ballot reads a ballot. Its proposer ID is usually the one before (every
// ballot of a request frame, and most of a reply frame, are one proposer's):
// then the string read before is reused instead of copied again.
func (r *reader) ballot(field string) synod.Ballot {
	c := r.peek(field)
	if r.err != nil {
		return synod.Ballot{}
	}
	if !isArray(c) {
		r.fail(ErrMalformed, "%s: not an array (code %#x)", field, c)
		return synod.Ballot{}
	}
	n, err := r.arrayHeader()
	if err != nil || n != ballotFields {
		r.fail(ErrMalformed, "%s: %d fields, want %d", field, n, ballotFields)
		return synod.Ballot{}
	}
	var b synod.Ballot
	b.Counter = r.uintOf(field, ".counter")
	lo, hi, ok := r.strSpan(field, ".proposer", MaxIDSize)
	switch {
	case !ok || lo == hi:
	case string(r.data[lo:hi]) == r.id:
		b.Proposer = r.id
	default:
		b.Proposer = string(r.data[lo:hi])
		r.id = b.Proposer
	}
	return b
}

// finish reports the first error, or trailing bytes after the frame.
func (r *reader) finish() error {
	if r.err == nil && r.left() != 0 {
		r.fail(ErrMalformed, "%d trailing bytes", r.left())
	}
	return r.wrapped()
}
