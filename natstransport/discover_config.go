package natstransport

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go/micro"

	"github.com/protosynod/protosynod/synod"
)

// DiscoverConfig finds the newest configuration the cluster's running
// acceptors serve, for a proposer whose own acceptors no longer answer (see
// synod.WithConfigSource): it lists the acceptors of the Transport's
// cluster and prefix through micro discovery (about half a second), sends
// each a read of synod.MembershipKey under cur's epoch, and returns the
// newest configuration their stale-epoch refusals carry, or cur if none is
// newer. A read changes nothing at the acceptor. It needs the NATS
// permissions of a proposer (publish on the .frame subjects) and to publish
// on $SRV.INFO.synod-acceptor.
//
// Discovery only names candidates: the configuration comes from an
// acceptor, which installed it during a reconfiguration step, exactly as a
// stale-epoch refusal during a change would deliver it.
func (t *Transport) DiscoverConfig(ctx context.Context, cur synod.Config) (synod.Config, error) {
	infos, err := Discover[micro.Info](ctx, t.nc, micro.InfoVerb)
	if err != nil {
		return cur, wrapf(err, "discover configuration")
	}
	var (
		mu     sync.Mutex
		newest = cur
		wg     sync.WaitGroup
	)
	seen := map[string]bool{}
	for _, in := range infos {
		id := in.Metadata[MetadataAcceptor]
		if in.Metadata[MetadataCluster] != t.cluster || in.Metadata[MetadataPrefix] != t.opts.prefix || id == "" || seen[id] {
			continue
		}
		seen[id] = true
		wg.Go(func() {
			_, err := t.ReadAt(ctx, id, synod.ReadRequest{Key: synod.MembershipKey, Epoch: cur.Epoch})
			var se *synod.StaleEpochError
			if !errors.As(err, &se) || se.Config.Validate() != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if se.Config.Epoch > newest.Epoch {
				newest = se.Config.Clone()
			}
		})
	}
	wg.Wait()
	return newest, nil
}
