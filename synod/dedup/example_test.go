package dedup_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/dedup"
	"github.com/protosynod/protosynod/synod/synodtest"
)

// A raw synod.Client made exactly-once: each change carries an ID from a
// Sender, and a retry with the same ID after an indeterminate outcome does
// not apply the change twice.
func ExampleClient() {
	tr, cfg, _ := synodtest.NewLocalCluster(3)
	sc, err := synod.NewClient(synod.RandomProposerID("example"), cfg, tr)
	if err != nil {
		panic(err)
	}
	c, err := dedup.NewClient(sc)
	if err != nil {
		panic(err)
	}
	incr := func(cur []byte) ([]byte, error) {
		n, _ := strconv.Atoi(string(cur))
		return []byte(strconv.Itoa(n + 1)), nil
	}
	ctx := context.Background()
	s := dedup.NewSender()
	id := s.Next()
	res, err := c.Change(ctx, "counter", id, incr)
	if errors.Is(err, synod.ErrIndeterminate) {
		// The context ended before the outcome was known: the same ID again
		// learns it, and applies the change only if it was not applied.
		res, err = c.Change(ctx, "counter", id, incr)
	}
	fmt.Println(string(res.Value), res.Replayed, err)
	// A retry of a change that was applied does not apply it again.
	res, err = c.Change(ctx, "counter", id, incr)
	fmt.Println(string(res.Value), res.Replayed, err)
	res, err = c.Change(ctx, "counter", s.Next(), incr)
	fmt.Println(string(res.Value), res.Replayed, err)
	// Output:
	// 1 false <nil>
	// 1 true <nil>
	// 2 false <nil>
}
