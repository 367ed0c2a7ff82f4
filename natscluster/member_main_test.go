package natscluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The cluster tests run every protoactor-go member in its own process: this
// test binary, re-executed with the environment below. protoactor-go has
// data races of its own (grpclog's global logger set by every Remote.Start,
// MemberList read without its lock by the gossip actor, ...), and with
// several members in one process `go test -race` would fail on them. In a
// child the race detector still runs; cluster_test.go fails the test on any
// report whose racing access is in this module.
const (
	envRole     = "NATSCLUSTER_TEST_ROLE" // "member" or "client"
	envURL      = "NATSCLUSTER_TEST_NATS_URL"
	envCluster  = "NATSCLUSTER_TEST_CLUSTER"
	envInterval = "NATSCLUSTER_TEST_INTERVAL"
	envTTL      = "NATSCLUSTER_TEST_TTL"
)

// Commands a child reads from stdin, one per line. EOF shuts it down.
const (
	cmdRequest = "request" // request <identity> [timeout]: ask an echo grain (10s)
	cmdLeave   = "leave"   // cluster.Shutdown(true)
	cmdAbrupt  = "abrupt"  // cluster.Shutdown(false), which skips the provider
	cmdCount   = "count"   // reply with the number of echo grains activated here
)

const echoKind = "echo"

// event is one line a child writes to stdout.
type event struct {
	Event    string   `json:"event"` // started, topology, reply, stopped
	ID       string   `json:"id,omitempty"`
	Addr     string   `json:"addr,omitempty"`
	Members  []string `json:"members,omitempty"`
	Addrs    []string `json:"addrs,omitempty"` // of Members, in the same order
	Identity string   `json:"identity,omitempty"`
	From     string   `json:"from,omitempty"`
	Err      string   `json:"err,omitempty"`
	Count    int64    `json:"count,omitempty"` // of activations, for cmdCount
}

func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		if err := memberMain(role); err != nil {
			fmt.Fprintln(os.Stderr, "member:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func echoProps() *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*wrapperspb.StringValue); ok {
			ctx.Respond(wrapperspb.String(ctx.ActorSystem().Address()))
		}
	})
}

// memberMain runs one cluster member or client until stdin closes.
func memberMain(role string) error {
	interval, err := time.ParseDuration(os.Getenv(envInterval))
	if err != nil {
		return err
	}
	ttl, err := time.ParseDuration(os.Getenv(envTTL))
	if err != nil {
		return err
	}
	// Reconnect quickly and for ever: TestRejoinAfterNATSCut cuts the
	// connection; IgnoreDiscoveredServers keeps it behind the test's proxy.
	nc, err := nats.Connect(os.Getenv(envURL), nats.Name(role), nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond), nats.IgnoreDiscoveredServers())
	if err != nil {
		return err
	}
	defer nc.Close()

	var outMu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	emit := func(e event) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = out.Encode(e)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With(slog.String("role", role))
	p := New(nc, WithHeartbeatInterval(interval), WithTTL(ttl), WithLogger(logger))
	quiet := func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }
	system := actor.NewActorSystem(actor.WithLoggerFactory(quiet))
	system.EventStream.Subscribe(func(evt any) {
		if topo, ok := evt.(*cluster.ClusterTopology); ok {
			ids := make([]string, 0, len(topo.Members))
			addrs := make([]string, 0, len(topo.Members))
			for _, m := range topo.Members {
				ids = append(ids, m.Id)
				addrs = append(addrs, m.Address())
			}
			emit(event{Event: "topology", Members: ids, Addrs: addrs})
		}
	})
	cfg := cluster.Configure(os.Getenv(envCluster), p, disthash.New(), remote.Configure("127.0.0.1", 0),
		cluster.WithKinds(cluster.NewKind(echoKind, echoProps())))
	c := cluster.New(system, cfg)
	if role == "client" {
		c.StartClient()
	} else {
		c.StartMember()
	}
	id := system.ID
	if role != "client" {
		id = p.MemberID()
	}
	emit(event{Event: "started", ID: id, Addr: system.Address()})

	var once sync.Once
	shutdown := func(graceful bool) {
		once.Do(func() {
			if role == "client" {
				// cluster.Shutdown panics on a client: it never started
				// gossip.
				_ = p.Shutdown(graceful)
				system.Shutdown()
				c.Remote.Shutdown(false)
				return
			}
			c.Shutdown(graceful)
		})
		emit(event{Event: "stopped"})
	}
	defer func() {
		_ = p.Shutdown(false)
		shutdown(false)
	}()

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case cmdRequest:
			identity, wait, _ := strings.Cut(arg, " ")
			timeout, err := time.ParseDuration(wait)
			if err != nil {
				timeout = 10 * time.Second
			}
			go func() {
				res, err := c.Request(identity, echoKind, wrapperspb.String("hi"), cluster.WithTimeout(timeout))
				e := event{Event: "reply", Identity: identity}
				if err != nil {
					e.Err = err.Error()
				} else if s, ok := res.(*wrapperspb.StringValue); ok {
					e.From = s.GetValue()
				} else {
					e.Err = fmt.Sprintf("unexpected reply %T", res)
				}
				emit(e)
			}()
		case cmdCount:
			emit(event{Event: "reply", Count: int64(c.GetClusterKind(echoKind).Count())})
		case cmdLeave:
			shutdown(true)
		case cmdAbrupt:
			shutdown(false)
		default:
			return fmt.Errorf("unknown command %q", in.Text())
		}
	}
	return in.Err()
}
