package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/protosynod/protosynod/natstransport"
)

// keyRow is one key of "synod keys": the acceptors that store it.
type keyRow struct {
	Key       string   `json:"key"`
	Acceptors []string `json:"acceptors"`
}

// keysResult is the JSON of "synod keys".
type keysResult struct {
	Prefix string   `json:"prefix"`
	Keys   []keyRow `json:"keys"`
	// Next, when not empty, is the -after of the next page.
	Next   string            `json:"next,omitempty"`
	Errors map[string]string `json:"errors,omitempty"` // by acceptor
}

func keysCommand() *command {
	var after string
	var limit int
	return &command{
		name:     "keys",
		args:     "PREFIX",
		nargs:    1,
		needsSet: true,
		summary:  `list the keys starting with PREFIX ("" for all) that any acceptor stores, one page at a time (read-only)`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&after, "after", "", "list the keys after this one (the next page: the last key printed, or next in -json)")
			fs.IntVar(&limit, "limit", natstransport.DefaultInspectPage, fmt.Sprintf("keys per page, at most %d", natstransport.MaxInspectPage))
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if limit <= 0 || limit > natstransport.MaxInspectPage {
				return fmt.Errorf("%w: -limit %d, want 1..%d", errUsage, limit, natstransport.MaxInspectPage)
			}
			nc, err := e.conn()
			if err != nil {
				return err
			}
			in, err := natstransport.NewInspector(nc, e.cluster, natstransport.WithPrefix(e.prefix))
			if err != nil {
				return fmt.Errorf("%w: %w", errUsage, err)
			}
			cfg, note, err := e.servedConfig(ctx, in)
			if err != nil {
				return err
			}
			if note != "" {
				fmt.Fprintln(e.stderr, "synod: "+note)
			}
			res, err := listKeys(ctx, in, cfg.Acceptors, args[0], after, limit)
			if err != nil {
				return err
			}
			return e.out.emit(res, func(w io.Writer) error {
				t := table{header: []string{"KEY", "ACCEPTORS"}}
				for _, k := range res.Keys {
					t.add(format([]byte(k.Key)), strings.Join(k.Acceptors, ","))
				}
				if err := t.write(w); err != nil {
					return err
				}
				for _, id := range slices.Sorted(maps.Keys(res.Errors)) {
					fmt.Fprintf(w, "%s did not answer: %s\n", id, res.Errors[id])
				}
				if res.Next != "" {
					_, err := fmt.Fprintf(w, "more keys follow: synod keys -after %q %q\n", res.Next, res.Prefix)
					return err
				}
				return nil
			})
		},
	}
}

// listKeys merges one page of keys from every acceptor: the union of their
// pages, cut to limit keys; Next is set when any acceptor has more, or the
// union had to be cut.
func listKeys(ctx context.Context, in *natstransport.Inspector, acceptors []string, prefix, after string, limit int) (keysResult, error) {
	res := keysResult{Prefix: prefix, Keys: []keyRow{}}
	pages := make([]natstransport.KeyPage, len(acceptors))
	errs := make([]error, len(acceptors))
	var wg sync.WaitGroup
	for i, id := range acceptors {
		wg.Go(func() { pages[i], errs[i] = in.Keys(ctx, id, prefix, after, limit) })
	}
	wg.Wait()
	holders := map[string][]string{}
	more := false
	// The union is complete only up to the least last key of the pages
	// that have more: an acceptor may hold keys below another's last key
	// that its own page did not reach.
	bound, bounded := "", false
	for i, p := range pages {
		if errs[i] != nil {
			if res.Errors == nil {
				res.Errors = map[string]string{}
			}
			res.Errors[acceptors[i]] = errs[i].Error()
			continue
		}
		for _, k := range p.Keys {
			holders[k] = append(holders[k], acceptors[i])
		}
		if p.More && len(p.Keys) > 0 {
			more = true
			if last := p.Keys[len(p.Keys)-1]; !bounded || last < bound {
				bound, bounded = last, true
			}
		}
	}
	if len(res.Errors) == len(acceptors) {
		return res, fmt.Errorf("no acceptor answered: %s", errs[0])
	}
	keys := slices.Sorted(maps.Keys(holders))
	if bounded {
		keys = slices.DeleteFunc(keys, func(k string) bool { return k > bound })
	}
	if len(keys) > limit {
		keys, more = keys[:limit], true
	}
	for _, k := range keys {
		res.Keys = append(res.Keys, keyRow{Key: k, Acceptors: holders[k]})
	}
	if more && len(keys) > 0 {
		res.Next = keys[len(keys)-1]
	}
	return res, nil
}
