package natstransport

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/protosynod/protosynod/synod"
)

// Version-2 frames carry a batch of requests to one acceptor on its .frame
// subject and a batch of replies back (see the package doc, "Wire format,
// version 2"). The items of a frame are typed by their first field, the
// synod.Op of the request, or itemError in a reply.

// MaxFrameItems is the largest number of items in one frame. A Transport
// sends at most this many; a decoder rejects a frame that announces more.
const MaxFrameItems = 1024

// maxDetailSize bounds the detail of an error item (such as the acceptor's
// configuration in a stale-epoch refusal).
const maxDetailSize = 64 << 10

// itemError is the kind of an error item in a reply frame.
const itemError = 0

// Field counts of version-2 messages and items, the kind included, checked
// exactly on decode.
const (
	requestFrameFields = 2 // version, items
	replyFrameFields   = 3 // version, from, items

	prepareItemFields      = 5 // kind, seq, epoch, key, ballot
	acceptItemFields       = 7 // kind, seq, epoch, key, ballot, value, next
	readItemFields         = 4 // kind, seq, epoch, key
	prepareReplyItemFields = 8 // kind, seq, key, ballot, ok, seen, accepted, value
	acceptReplyItemFields  = 6 // kind, seq, key, ballot, ok, seen
	readReplyItemFields    = 6 // kind, seq, key, promised, accepted, value
	errorItemFields        = 5 // kind, seq, code, message, detail
)

// preallocItems is how many items a decoder makes room for at once: frames
// are usually small, and an announced count is never trusted further.
const preallocItems = 8

// The field count of each item kind a decoder accepts, by kind; zero for a
// kind it does not.
var (
	requestItemFields = [...]int{synod.OpPrepare: prepareItemFields, synod.OpAccept: acceptItemFields, synod.OpRead: readItemFields}
	replyItemFields   = [...]int{itemError: errorItemFields, synod.OpPrepare: prepareReplyItemFields,
		synod.OpAccept: acceptReplyItemFields, synod.OpRead: readReplyItemFields}
)

// RequestItem is one request of a request frame: a synod.BatchRequest and the
// sequence number that its reply item carries back. Seq correlates the item
// with its reply inside one frame; the acceptor only echoes it.
type RequestItem struct {
	Seq uint64
	synod.BatchRequest
}

// ItemError is the error item of a reply frame: the acceptor did not serve
// the request. Code is one of the Code constants (see the package doc, "Error
// replies"); Detail is code-specific (for CodeStaleEpoch, the acceptor's
// current configuration) and usually nil.
type ItemError struct {
	Code    string
	Message string
	Detail  []byte
}

// ReplyItem is one reply of a reply frame. Op names the request kind it
// answers and the field that holds the reply, or is zero for an error item,
// whose Error is then set. Decoding fills the replies' From with the frame's.
type ReplyItem struct {
	Seq     uint64
	Op      synod.Op // 0 for an error item
	Prepare synod.PrepareReply
	Accept  synod.AcceptReply
	Read    synod.ReadReply
	Error   ItemError
}

// ReplyFrame is a decoded reply frame: the acceptor that sent it and its items.
type ReplyFrame struct {
	From  string
	Items []ReplyItem
}

// AppendRequestFrame appends the request frame [2, [item, ...]] of items to
// dst. It checks the item count and kinds only; the caller keeps the frame
// under the receiver's Limits.
func AppendRequestFrame(dst []byte, items []RequestItem) ([]byte, error) {
	if len(items) > MaxFrameItems {
		return dst, fmt.Errorf("natstransport: encode request frame: %w: %d items, limit %d", ErrTooLarge, len(items), MaxFrameItems)
	}
	dst = appendRequestFrameHeader(dst, len(items))
	for i := range items {
		var err error
		if dst, err = appendRequestItem(dst, items[i].Seq, &items[i].BatchRequest); err != nil {
			return dst, fmt.Errorf("natstransport: encode request frame: item %d: %w", i, err)
		}
	}
	return dst, nil
}

// appendRequestFrameHeader appends the start of a request frame of n items;
// appendRequestItem appends each item.
func appendRequestFrameHeader(dst []byte, n int) []byte {
	dst = appendArrayLen(dst, requestFrameFields)
	dst = appendUint(dst, WireVersion)
	return appendArrayLen(dst, n)
}

// appendRequestItem appends the request item of req with sequence number seq.
func appendRequestItem(dst []byte, seq uint64, req *synod.BatchRequest) ([]byte, error) {
	if int(req.Op) >= len(requestItemFields) || requestItemFields[req.Op] == 0 {
		return dst, fmt.Errorf("%w: unknown kind %d", ErrMalformed, req.Op)
	}
	dst = appendItemHeader(dst, requestItemFields[req.Op], req.Op, seq)
	dst = appendUint(dst, req.Epoch())
	dst = appendStr(dst, req.Key())
	switch req.Op {
	case synod.OpPrepare:
		dst = appendBallot(dst, req.Prepare.Ballot)
	case synod.OpAccept:
		dst = appendBallot(dst, req.Accept.Ballot)
		dst = appendBin(dst, req.Accept.Value)
		dst = appendBallot(dst, req.Accept.Next)
	}
	return dst, nil
}

// EncodeRequestFrame returns the request frame of items.
func EncodeRequestFrame(items []RequestItem) ([]byte, error) {
	return AppendRequestFrame(nil, items)
}

// AppendReplyFrame appends the reply frame [2, from, [ritem, ...]] of items to
// dst. It checks the item count and kinds only.
func AppendReplyFrame(dst []byte, from string, items []ReplyItem) ([]byte, error) {
	if len(items) > MaxFrameItems {
		return dst, fmt.Errorf("natstransport: encode reply frame: %w: %d items, limit %d", ErrTooLarge, len(items), MaxFrameItems)
	}
	dst = appendArrayLen(dst, replyFrameFields)
	dst = appendUint(dst, WireVersion)
	dst = appendStr(dst, from)
	dst = appendArrayLen(dst, len(items))
	for i := range items {
		var err error
		if dst, err = appendReplyItem(dst, &items[i]); err != nil {
			return dst, fmt.Errorf("natstransport: encode reply frame: %w", err)
		}
	}
	return dst, nil
}

// EncodeReplyFrame returns the reply frame of items from acceptor from.
func EncodeReplyFrame(from string, items []ReplyItem) ([]byte, error) {
	return AppendReplyFrame(nil, from, items)
}

// appendReplyItem appends one reply item.
func appendReplyItem(dst []byte, it *ReplyItem) ([]byte, error) {
	if int(it.Op) >= len(replyItemFields) || replyItemFields[it.Op] == 0 {
		return dst, fmt.Errorf("%w: reply item has unknown kind %d", ErrMalformed, it.Op)
	}
	dst = appendItemHeader(dst, replyItemFields[it.Op], it.Op, it.Seq)
	switch it.Op {
	case itemError:
		dst = appendStr(dst, it.Error.Code)
		dst = appendStr(dst, it.Error.Message)
		dst = appendBin(dst, it.Error.Detail)
	case synod.OpPrepare:
		r := &it.Prepare
		dst = appendStr(dst, r.Key)
		dst = appendBallot(dst, r.Ballot)
		dst = appendBool(dst, r.OK)
		dst = appendBallot(dst, r.Seen)
		dst = appendBallot(dst, r.Accepted)
		dst = appendBin(dst, r.Value)
	case synod.OpAccept:
		r := &it.Accept
		dst = appendStr(dst, r.Key)
		dst = appendBallot(dst, r.Ballot)
		dst = appendBool(dst, r.OK)
		dst = appendBallot(dst, r.Seen)
	case synod.OpRead:
		r := &it.Read
		dst = appendStr(dst, r.Key)
		dst = appendBallot(dst, r.Promised)
		dst = appendBallot(dst, r.Accepted)
		dst = appendBin(dst, r.Value)
	}
	return dst, nil
}

// appendItemHeader appends the start of an item of the given field count:
// its array header, kind and seq.
func appendItemHeader(dst []byte, fields int, kind synod.Op, seq uint64) []byte {
	dst = appendArrayLen(dst, fields)
	dst = appendUint(dst, uint64(kind))
	return appendUint(dst, seq)
}

// DecodeRequestFrame decodes a request frame strictly: the frame size against
// lim first, then field by field with exact field counts and types, every
// length against its limit and the bytes left, at most MaxFrameItems items,
// no trailing bytes. Errors wrap ErrMalformed, ErrVersion or ErrTooLarge, and
// fail the whole frame. It does not validate the requests themselves (empty
// keys, zero ballots): the acceptor answers each invalid item with its own
// error item. Values alias data.
func DecodeRequestFrame(data []byte, lim Limits) ([]RequestItem, error) {
	seqs, reqs, err := decodeRequests(data, lim, nil, nil)
	if err != nil {
		return nil, err
	}
	items := make([]RequestItem, len(reqs))
	for i := range reqs {
		items[i] = RequestItem{Seq: seqs[i], BatchRequest: reqs[i]}
	}
	return items, nil
}

// decodeRequests is DecodeRequestFrame appending each item's seq to seqs
// and its request to reqs, as the acceptor applies them: no copy between
// the two forms, and the caller may pass slices to reuse. On error both
// come back empty (still with their room).
func decodeRequests(data []byte, lim Limits, seqs []uint64, reqs []synod.BatchRequest) ([]uint64, []synod.BatchRequest, error) {
	r := reader{what: "request frame", data: data, lim: lim}
	if err := r.start(requestFrameFields, WireVersion); err != nil {
		return seqs[:0], reqs[:0], err
	}
	n := r.itemCount()
	// n is the sender's word: room for a few items, append finds more.
	if seqs == nil {
		seqs = make([]uint64, 0, min(n, preallocItems))
	}
	if reqs == nil {
		reqs = make([]synod.BatchRequest, 0, min(n, preallocItems))
	}
	seqs, reqs = seqs[:0], reqs[:0]
	for i := 0; i < n && r.err == nil; i++ {
		var it synod.BatchRequest
		op, seq := r.itemHeader(i, requestItemFields[:])
		it.Op = op
		epoch := r.uint("epoch")
		key := r.key()
		switch it.Op {
		case synod.OpPrepare:
			it.Prepare = synod.PrepareRequest{Key: key, Epoch: epoch, Ballot: r.ballot("ballot")}
		case synod.OpAccept:
			it.Accept = synod.AcceptRequest{Key: key, Epoch: epoch, Ballot: r.ballot("ballot")}
			it.Accept.Value = r.value()
			it.Accept.Next = r.ballot("next")
		case synod.OpRead:
			it.Read = synod.ReadRequest{Key: key, Epoch: epoch}
		}
		seqs = append(seqs, seq)
		reqs = append(reqs, it)
	}
	if err := r.finish(); err != nil {
		clear(reqs)
		return seqs[:0], reqs[:0], err
	}
	return seqs, reqs, nil
}

// DecodeReplyFrame decodes a reply frame as strictly as DecodeRequestFrame,
// and validates its replies: a non-empty sender, non-empty keys, a valid
// request ballot in prepare and accept replies, every other ballot zero or
// valid, and a non-empty code in error items. Values and details alias data.
func DecodeReplyFrame(data []byte, lim Limits) (ReplyFrame, error) {
	f, err := decodeReplyFrame(data, lim, nil, nil)
	if err != nil {
		return ReplyFrame{}, err
	}
	return f, nil
}

// replyHints are strings a reply frame's decoder may return instead of
// copies when the frame holds equal ones: the sender the caller expects,
// and the key and ballot proposer of the request that item i with sequence
// number seq is expected to answer (ok false: no guess).
type replyHints struct {
	from string
	item func(i int, seq uint64) (key, proposer string, ok bool)
}

// decodeReplyFrame is DecodeReplyFrame appending the items to items (which
// the caller may pass to reuse) and taking strings from hints where they
// match (nil: none).
func decodeReplyFrame(data []byte, lim Limits, items []ReplyItem, hints *replyHints) (ReplyFrame, error) {
	var f ReplyFrame
	r := reader{what: "reply frame", data: data, lim: lim}
	if err := r.start(replyFrameFields, WireVersion); err != nil {
		return f, err
	}
	if hints != nil && hints.from != "" {
		f.From = r.strLike("from", MaxIDSize, hints.from)
		if r.err == nil && f.From == "" {
			r.fail(ErrMalformed, "from: empty acceptor ID")
		}
	} else {
		f.From = r.from()
	}
	n := r.itemCount()
	if items == nil {
		items = make([]ReplyItem, 0, min(n, preallocItems)) // n is the sender's word
	}
	f.Items = items[:0]
	for i := 0; i < n && r.err == nil; i++ {
		f.Items = append(f.Items, ReplyItem{})
		it := &f.Items[len(f.Items)-1]
		it.Op, it.Seq = r.itemHeader(i, replyItemFields[:])
		var known string
		if hints != nil && hints.item != nil && r.err == nil {
			var id string
			if k, p, ok := hints.item(i, it.Seq); ok {
				known, id = k, p
				if r.id == "" {
					r.id = id
				}
			}
		}
		switch it.Op {
		case itemError:
			it.Error.Code = r.str("code", maxCodeSize)
			it.Error.Message = r.str("message", maxMessageSize)
			it.Error.Detail = r.bin("detail", maxDetailSize)
			if r.err == nil && it.Error.Code == "" {
				r.fail(ErrMalformed, "item %d: empty error code", i)
			}
		case synod.OpPrepare:
			p := &it.Prepare
			p.From, p.Key, p.Ballot = f.From, r.strLike("key", MaxKeySize, known), r.ballot("ballot")
			p.OK = r.boolean("ok")
			p.Seen, p.Accepted, p.Value = r.ballot("seen"), r.ballot("accepted"), r.value()
			r.check(validateReply("prepare reply", p.Key, p.Ballot, p.Seen, p.Accepted))
		case synod.OpAccept:
			a := &it.Accept
			a.From, a.Key, a.Ballot = f.From, r.strLike("key", MaxKeySize, known), r.ballot("ballot")
			a.OK, a.Seen = r.boolean("ok"), r.ballot("seen")
			r.check(validateReply("accept reply", a.Key, a.Ballot, a.Seen))
		case synod.OpRead:
			rd := &it.Read
			rd.From, rd.Key = f.From, r.strLike("key", MaxKeySize, known)
			rd.Promised, rd.Accepted, rd.Value = r.ballot("promised"), r.ballot("accepted"), r.value()
			if r.err == nil && rd.Key == "" {
				r.fail(synod.ErrInvalidRequest, "read reply: empty key")
			}
			r.check(validateBallots("read reply", rd.Key, rd.Promised, rd.Accepted))
		}
	}
	if err := r.finish(); err != nil {
		clear(f.Items)
		return ReplyFrame{Items: f.Items[:0]}, err
	}
	return f, nil
}

// itemHeader reads the start of item i of a frame: its array header, kind
// and seq. The kind must be one that fields (the field count of each kind, by
// kind) gives a count for, and the array must have that many fields.
func (r *reader) itemHeader(i int, fields []int) (synod.Op, uint64) {
	n := r.arrayLen("item")
	kind := r.uint("item kind")
	switch {
	case r.err != nil:
	case kind >= uint64(len(fields)) || fields[kind] == 0:
		r.fail(ErrMalformed, "item %d: unknown kind %d", i, kind)
	case n != fields[kind]:
		r.fail(ErrMalformed, "item %d (%v): %d fields, want %d", i, synod.Op(kind), n, fields[kind])
	}
	return synod.Op(kind), r.uint("seq")
}

// itemCount reads the header of a frame's item array: at most MaxFrameItems,
// and no more than the bytes left (every item takes at least one). Nothing is
// allocated from it.
func (r *reader) itemCount() int {
	n := r.arrayLen("items")
	switch {
	case r.err != nil:
		return 0
	case n > MaxFrameItems:
		r.fail(ErrTooLarge, "%d items, limit %d", n, MaxFrameItems)
		return 0
	case n > r.left():
		r.fail(ErrMalformed, "%d items announced, %d bytes left", n, r.left())
		return 0
	}
	return n
}

// arrayLen reads an array header.
func (r *reader) arrayLen(field string) int {
	c := r.peek(field)
	if r.err != nil {
		return 0
	}
	if !isArray(c) {
		r.fail(ErrMalformed, "%s: not an array (code %#x)", field, c)
		return 0
	}
	n, err := r.arrayHeader()
	if err != nil || n < 0 {
		r.fail(ErrMalformed, "%s: bad array header", field)
		return 0
	}
	return n
}

// bin reads nil or a binary no longer than max; the result aliases r.data.
func (r *reader) bin(field string, max int) []byte {
	c := r.peek(field)
	if r.err != nil {
		return nil
	}
	switch {
	case c == msgpcode.Nil:
		r.skipNil()
		return nil
	case !isBin(c):
		r.fail(ErrMalformed, "%s: not binary (code %#x)", field, c)
		return nil
	}
	lo, hi, ok := r.span(field, max)
	if !ok {
		return nil
	}
	return r.data[lo:hi:hi]
}

// check records err, a validation error that already names its sentinel.
func (r *reader) check(err error) {
	if r.err == nil && err != nil {
		r.err = err
	}
}

// validateBallots checks that every ballot is zero or valid.
func validateBallots(what, key string, bs ...synod.Ballot) error {
	for _, b := range bs {
		if !b.IsZero() && !b.Valid() {
			return fmt.Errorf("%w: %s %q: invalid ballot %v", synod.ErrInvalidRequest, what, key, b)
		}
	}
	return nil
}

// The append helpers write the msgpack encodings the decoders read: compact
// unsigned integers, str and bin with the shortest header, nil for a nil
// []byte (an empty register) and bin8 of length 0 for an empty one.

func appendArrayLen(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, msgpcode.FixedArrayLow|byte(n))
	case n <= 0xffff:
		return append(dst, msgpcode.Array16, byte(n>>8), byte(n))
	}
	return append(dst, msgpcode.Array32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendUint(dst []byte, v uint64) []byte {
	switch {
	case v <= uint64(msgpcode.PosFixedNumHigh):
		return append(dst, byte(v))
	case v <= 0xff:
		return append(dst, msgpcode.Uint8, byte(v))
	case v <= 0xffff:
		return append(dst, msgpcode.Uint16, byte(v>>8), byte(v))
	case v <= 0xffffffff:
		return append(dst, msgpcode.Uint32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(dst, msgpcode.Uint64, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendStr(dst []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		dst = append(dst, msgpcode.FixedStrLow|byte(n))
	case n <= 0xff:
		dst = append(dst, msgpcode.Str8, byte(n))
	case n <= 0xffff:
		dst = append(dst, msgpcode.Str16, byte(n>>8), byte(n))
	default:
		dst = append(dst, msgpcode.Str32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, s...)
}

func appendBin(dst []byte, b []byte) []byte {
	if b == nil {
		return append(dst, msgpcode.Nil)
	}
	n := len(b)
	switch {
	case n <= 0xff:
		dst = append(dst, msgpcode.Bin8, byte(n))
	case n <= 0xffff:
		dst = append(dst, msgpcode.Bin16, byte(n>>8), byte(n))
	default:
		dst = append(dst, msgpcode.Bin32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, b...)
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, msgpcode.True)
	}
	return append(dst, msgpcode.False)
}

func appendBallot(dst []byte, b synod.Ballot) []byte {
	dst = appendArrayLen(dst, ballotFields)
	dst = appendUint(dst, b.Counter)
	return appendStr(dst, b.Proposer)
}

// requestItemSize bounds the encoded size of it, for packing frames.
func requestItemSize(it *RequestItem) int {
	const ballot = 1 + 9 + 5               // header, counter, str header
	n := 1 + 2 + 9 + 9 + 5 + len(it.Key()) // array, kind, seq, epoch, key header
	switch it.Op {
	case synod.OpPrepare:
		n += ballot + len(it.Prepare.Ballot.Proposer)
	case synod.OpAccept:
		n += 2*ballot + len(it.Accept.Ballot.Proposer) + len(it.Accept.Next.Proposer) + 5 + len(it.Accept.Value)
	}
	return n
}
