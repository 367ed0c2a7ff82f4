package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
)

// servedConfig returns the configuration the read-only commands (inspect,
// keys) ask acceptors under. It is the -acceptors set, unless that set
// predates a reconfiguration: then it is the newest configuration an
// acceptor of the set serves or, when none of them answers (all replaced),
// the newest one discovery finds, as the commands that use registers adopt
// it. note says what was adopted, for stderr; it is empty when the set was
// used as given.
func (e *env) servedConfig(ctx context.Context, in *natstransport.Inspector) (cfg synod.Config, note string, err error) {
	set := synod.Config{Acceptors: e.acceptorSet()}
	if err := set.Validate(); err != nil {
		return set, "", fmt.Errorf("%w: %w", errUsage, err)
	}
	var (
		mu       sync.Mutex
		newest   synod.Config
		answered bool
		wg       sync.WaitGroup
	)
	for _, id := range set.Acceptors {
		wg.Go(func() {
			c, err := in.Config(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				return
			}
			answered = true
			if c.Epoch > newest.Epoch && len(c.Acceptors) > 0 {
				newest = c
			}
		})
	}
	wg.Wait()
	source := "an acceptor of -acceptors serves"
	if !answered {
		// Every acceptor of the set is gone: ask the ones discovery finds.
		nc, err := e.conn()
		if err != nil {
			return set, "", err
		}
		tr, err := natstransport.NewTransport(nc, e.cluster, natstransport.WithPrefix(e.prefix))
		if err != nil {
			return set, "", fmt.Errorf("%w: %w", errUsage, err)
		}
		defer tr.Close()
		if c, err := tr.DiscoverConfig(ctx, set); err == nil && c.Epoch > 0 {
			newest, source = c, "discovery found"
		}
	}
	if newest.Epoch == 0 || sameMembers(newest.Acceptors, set.Acceptors) {
		return set, "", nil
	}
	return newest, fmt.Sprintf("-acceptors %s predates the cluster's configuration: %s epoch %d, acceptors %s; using those",
		strings.Join(set.Acceptors, ","), source, newest.Epoch, strings.Join(newest.Acceptors, ",")), nil
}

// sameMembers reports whether a and b hold the same acceptors, in any order.
func sameMembers(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
