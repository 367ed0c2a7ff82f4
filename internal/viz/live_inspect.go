package viz

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/natstransport"
)

// inspectKeys fills each acceptor's Keys with its state of keys, read from
// the acceptors' inspect endpoints (no side effect: no promise, nothing
// written), and says in snap.Keys what it read. With no keys chosen it lists
// a few keys of the first acceptor to choose from.
func (l NATSLive) inspectKeys(ctx context.Context, snap *LiveSnapshot, prefixes map[string]string, keys []string) {
	if len(snap.Acceptors) == 0 {
		return
	}
	inspectors := map[string]*natstransport.Inspector{}
	inspector := func(a LiveAcceptor) (*natstransport.Inspector, error) {
		id := a.Cluster + "\x00" + prefixes[a.ServiceID]
		if in, ok := inspectors[id]; ok {
			return in, nil
		}
		var opts []natstransport.Option
		if p := prefixes[a.ServiceID]; p != "" {
			opts = append(opts, natstransport.WithPrefix(p))
		}
		in, err := natstransport.NewInspector(l.NC, a.Cluster, opts...)
		if err == nil {
			inspectors[id] = in
		}
		return in, err
	}
	if len(keys) == 0 {
		a := snap.Acceptors[0]
		in, err := inspector(a)
		if err != nil {
			snap.Keys = "choose keys to see their ballots (" + err.Error() + ")"
			return
		}
		page, err := in.Keys(ctx, a.Acceptor, "", "", 10)
		switch {
		case err != nil:
			snap.Keys = "choose keys to see their ballots (listing keys: " + err.Error() + ")"
		case len(page.Keys) == 0:
			snap.Keys = "choose keys to see their ballots; " + a.Acceptor + " holds no keys yet"
		default:
			more := ""
			if page.More {
				more = ", …"
			}
			snap.Keys = fmt.Sprintf("choose keys to see their ballots; some keys of %s: %s%s", a.Acceptor, strings.Join(page.Keys, ", "), more)
		}
		return
	}
	snap.Keys = "per-key state from each acceptor's inspect endpoint (read-only: no promise, nothing written; values by size)"
	for i := range snap.Acceptors {
		a := &snap.Acceptors[i]
		in, err := inspector(*a)
		for _, k := range keys {
			kv := KeyView{Key: k, Promised: "?", Accepted: "?"}
			if err == nil {
				var ki natstransport.KeyInfo
				if ki, err = in.Key(ctx, a.Acceptor, k); err == nil {
					kv.Promised, kv.Accepted = ki.Promised.String(), ki.Accepted.String()
					kv.Value = "—"
					if !ki.Accepted.IsZero() {
						kv.Value = fmt.Sprintf("%d bytes", ki.ValueSize)
					}
				}
			}
			if err != nil {
				kv.Value = "error: " + err.Error()
				if errors.Is(err, nats.ErrNoResponders) {
					kv.Value = "no inspect endpoint (an older acceptor?)"
				}
			}
			a.Keys = append(a.Keys, kv)
		}
	}
}
