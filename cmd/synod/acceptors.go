package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

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
	infos, err := gather[micro.Info](ctx, nc, micro.InfoVerb)
	if err != nil {
		return nil, err
	}
	stats, err := gather[micro.Stats](ctx, nc, micro.StatsVerb)
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

// gather sends a micro discovery request for verb and collects the answers
// that arrive within half a second (or until ctx ends).
func gather[T any](ctx context.Context, nc *nats.Conn, verb micro.Verb) ([]T, error) {
	subject, err := micro.ControlSubject(verb, natstransport.ServiceName, "")
	if err != nil {
		return nil, err
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	var out []T
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return out, nil // the gathering window closed
		}
		var v T
		if err := json.Unmarshal(msg.Data, &v); err != nil {
			return nil, fmt.Errorf("%s reply from a %s service: %w", verb, natstransport.ServiceName, err)
		}
		out = append(out, v)
	}
}
