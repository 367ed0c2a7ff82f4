// Package dedup makes changes of synod registers exactly-once, at a cost per
// change that does not grow with how many changes came before.
//
// A change that ends with synod.ErrIndeterminate may or may not have been
// applied. To retry it safely the caller gives it an ID, and the register
// remembers what it applied in a Table: for each sender, the sequence
// number of its last change and that change's reply. A retry with the same ID
// finds it there and gets the recorded reply instead of applying the change
// again. The Table holds one entry per sender, not one per change, so a
// steady sender costs one small entry however many changes it makes; the
// number of entries is bounded, and when it is full the entry updated least
// recently is evicted (ties: the smaller sender name), a rule that depends
// only on the register's value, so every proposer evicts alike.
//
// # IDs
//
// An ID is a sender and a sequence number (Sender.Next makes them). A
// sequenced sender keeps at most one change in flight per register and
// resolves it (a reply, or retries until one) before its next: then a change
// whose number is below the sender's last recorded one was already answered,
// and is refused as Stale rather than applied. An ID with sequence number
// zero is a one-shot ID: the sender name alone identifies the change, which
// suits IDs that come from elsewhere (an order number, a message ID); each
// one-shot ID takes an entry of its own until it is evicted. In text (ParseID,
// ID.String) a sequenced ID is "~" + sender + "." + number; any other text is
// a one-shot ID.
//
// # Guarantees and limits
//
// A change with an ID is applied at most once as long as its sender's entry
// is in the Table when the retry arrives: a retry after more than the
// Table's bound of other senders changed the register may apply again. An
// ID's reply is recorded in the register, so keep replies small.
//
// Two users of the Table share it: package actors keeps it inside its
// envelope (with protobuf replies), and Client offers it to users of a raw
// synod.Client, whose register values it wraps (see Wrap).
package dedup
