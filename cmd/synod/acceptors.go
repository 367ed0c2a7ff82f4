package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/protosynod/protosynod/natstransport"
)

// acceptorInfo is one row of "synod acceptors".
type acceptorInfo struct {
	Cluster   string `json:"cluster"`
	Acceptor  string `json:"acceptor"`
	Prefix    string `json:"prefix"`
	Version   string `json:"version"`
	Requests  int    `json:"requests"`
	ServiceID string `json:"service_id"`
}

func acceptorsCommand() *command {
	return &command{
		name:    "acceptors",
		summary: "list the acceptors that answer discovery (of -cluster if set)",
		run: func(ctx context.Context, e *env, _ []string) error {
			nc, err := e.conn()
			if err != nil {
				return err
			}
			list, err := listAcceptors(ctx, nc, e.cluster)
			if err != nil {
				return err
			}
			return e.out.emit(list, func(w io.Writer) error {
				t := table{header: []string{"CLUSTER", "ACCEPTOR", "PREFIX", "VERSION", "REQUESTS", "SERVICE ID"}}
				for _, a := range list {
					t.add(a.Cluster, a.Acceptor, a.Prefix, a.Version, a.Requests, a.ServiceID)
				}
				return t.write(w)
			})
		},
	}
}

// listAcceptors asks every synod-acceptor micro service for its info and
// stats, gathering answers for a short while, and returns those of cluster
// (all when cluster is empty) sorted by cluster and acceptor ID.
func listAcceptors(ctx context.Context, nc *nats.Conn, cluster string) ([]acceptorInfo, error) {
	infos, err := natstransport.Discover[micro.Info](ctx, nc, micro.InfoVerb)
	if err != nil {
		return nil, err
	}
	stats, err := natstransport.Discover[micro.Stats](ctx, nc, micro.StatsVerb)
	if err != nil {
		return nil, err
	}
	handled := map[string]int{}
	for _, s := range stats {
		for _, e := range s.Endpoints {
			handled[s.ID] += e.NumRequests
		}
	}
	var out []acceptorInfo
	for _, in := range infos {
		a := acceptorInfo{
			Cluster:   in.Metadata[natstransport.MetadataCluster],
			Acceptor:  in.Metadata[natstransport.MetadataAcceptor],
			Prefix:    in.Metadata[natstransport.MetadataPrefix],
			Version:   in.Version,
			Requests:  handled[in.ID],
			ServiceID: in.ID,
		}
		if cluster == "" || a.Cluster == cluster {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b acceptorInfo) int {
		return strings.Compare(a.Cluster+"/"+a.Acceptor, b.Cluster+"/"+b.Acceptor)
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s services answered on %s", natstransport.ServiceName, nc.ConnectedUrlRedacted())
	}
	return out, nil
}
