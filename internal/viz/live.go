package viz

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/protosynod/protosynod/natstransport"
)

// liveInterval is how often live mode refreshes.
const liveInterval = 2 * time.Second

// LiveSource reads a running cluster for live mode. It must have no side
// effect on the acceptors: live mode only looks.
type LiveSource interface {
	// Snapshot reports the acceptors of cluster (all clusters when empty) and,
	// where the source can read them without side effects, their state of keys.
	Snapshot(ctx context.Context, cluster string, keys []string) LiveSnapshot
}

// LiveSnapshot is one refresh of live mode.
type LiveSnapshot struct {
	Time      string         `json:"time"`
	Source    string         `json:"source"` // what the snapshot was read from
	Acceptors []LiveAcceptor `json:"acceptors"`
	Keys      string         `json:"keys,omitempty"` // why key state is or is not shown
	Error     string         `json:"error,omitempty"`
}

// LiveAcceptor is one acceptor service as discovery and stats show it.
type LiveAcceptor struct {
	Cluster   string         `json:"cluster"`
	Acceptor  string         `json:"acceptor"`
	Version   string         `json:"version"`
	ServiceID string         `json:"serviceId"`
	Started   string         `json:"started,omitempty"`
	Endpoints []LiveEndpoint `json:"endpoints"`
	Keys      []KeyView      `json:"keys,omitempty"`
}

// LiveEndpoint is one endpoint's statistics.
type LiveEndpoint struct {
	Name      string `json:"name"`
	Subject   string `json:"subject"`
	Requests  int    `json:"requests"`
	Errors    int    `json:"errors"`
	LastError string `json:"lastError,omitempty"`
	Average   string `json:"average"`
}

// NATSLive is a LiveSource over NATS: it finds acceptors with the micro
// discovery requests ($SRV.INFO and $SRV.STATS of the synod-acceptor
// service) and reads their state of the chosen keys from their inspect
// endpoints (natstransport.Inspector). None of these changes anything; it
// never sends a prepare or an accept, which would change what it looks at.
type NATSLive struct {
	NC  *nats.Conn
	URL string // as configured, for messages while not connected
}

// Snapshot implements LiveSource.
func (l NATSLive) Snapshot(ctx context.Context, cluster string, keys []string) LiveSnapshot {
	snap := LiveSnapshot{Source: "NATS " + l.NC.ConnectedUrlRedacted() + " (micro discovery and stats, inspect endpoints)", Acceptors: []LiveAcceptor{}}
	if !l.NC.IsConnected() {
		snap.Source = "NATS " + l.URL
		snap.Error = "not connected to NATS at " + l.URL + " (still trying)"
		return snap
	}
	infos, err := natstransport.Discover[micro.Info](ctx, l.NC, micro.InfoVerb)
	if err != nil {
		snap.Error = err.Error()
		return snap
	}
	stats, err := natstransport.Discover[micro.Stats](ctx, l.NC, micro.StatsVerb)
	if err != nil {
		snap.Error = err.Error()
		return snap
	}
	byID := map[string]micro.Stats{}
	prefixes := map[string]string{}
	for _, s := range stats {
		byID[s.ID] = s
	}
	for _, in := range infos {
		a := LiveAcceptor{
			Cluster:   in.Metadata[natstransport.MetadataCluster],
			Acceptor:  in.Metadata[natstransport.MetadataAcceptor],
			Version:   in.Version,
			ServiceID: in.ID,
			Endpoints: []LiveEndpoint{},
		}
		if cluster != "" && a.Cluster != cluster {
			continue
		}
		prefixes[in.ID] = in.Metadata[natstransport.MetadataPrefix]
		if st, ok := byID[in.ID]; ok {
			a.Started = st.Started.UTC().Format(time.RFC3339)
			for _, e := range st.Endpoints {
				a.Endpoints = append(a.Endpoints, LiveEndpoint{
					Name: e.Name, Subject: e.Subject, Requests: e.NumRequests, Errors: e.NumErrors,
					LastError: e.LastError, Average: e.AverageProcessingTime.String(),
				})
			}
		}
		snap.Acceptors = append(snap.Acceptors, a)
	}
	slices.SortFunc(snap.Acceptors, func(a, b LiveAcceptor) int {
		return strings.Compare(a.Cluster+"/"+a.Acceptor, b.Cluster+"/"+b.Acceptor)
	})
	if len(snap.Acceptors) == 0 {
		snap.Error = fmt.Sprintf("no %s services answered", natstransport.ServiceName)
		if cluster != "" {
			snap.Error += " for cluster " + cluster
		}
		return snap
	}
	l.inspectKeys(ctx, &snap, prefixes, keys)
	return snap
}
