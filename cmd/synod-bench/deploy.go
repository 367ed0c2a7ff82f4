package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/protosynod/protosynod/internal/procs"
	"github.com/protosynod/protosynod/natstransport"
	"github.com/protosynod/protosynod/synod"
	"github.com/protosynod/protosynod/synod/pebblestore"
)

// Layouts.
const (
	layoutEmbedded  = "embedded"  // nats-servers and acceptors in the bench process
	layoutProcesses = "processes" // nats-server and synod-acceptor processes
	layoutExternal  = "external"  // -nats URL: an existing cluster
)

// benchCluster is the synod cluster name of the layouts the bench starts.
const benchCluster = "bench"

// servingLine is what synod-acceptor logs once it serves.
const servingLine = "natstransport: acceptor serving"

// deployment is where the systems under test run: NATS URLs to load them
// through, the synod cluster's acceptors, and what to stop at the end.
type deployment struct {
	layout    string
	urls      []string // one per nats-server; workers spread over them
	cluster   string   // synod cluster name
	acceptors []string // acceptor IDs
	replicas  int      // JetStream KV replicas

	embedded *natsCluster // embedded layout
	inproc   []*inprocAcceptor
	env      *procs.CommandEnv // processes layout
	nats     *procs.NATSCluster
	accProcs []*procs.Proc
	dataDirs []string      // acceptor i's -data, processes layout
	pprof    []pprofTarget // processes whose CPU can be profiled over HTTP
	metrics  []string      // acceptors' metrics URLs, processes layout
}

// pprofTarget is a process serving net/http/pprof.
type pprofTarget struct {
	name string // file name stem: nats-0, acceptor-a0
	url  string // base URL, http://host:port
}

// inprocAcceptor is an acceptor served from the bench process.
type inprocAcceptor struct {
	nc    *nats.Conn
	svc   *natstransport.Service
	store *pebblestore.Store
}

// deploySettings is what a deployment needs from the command line.
type deploySettings struct {
	layout      string
	servers     int
	natsURL     string   // external layout
	cluster     string   // external layout
	acceptorIDs []string // external layout; empty: discover
	replicas    int      // external layout
	natsBin     string   // processes layout; empty: build
	acceptorBin string   // processes layout; empty: build
	pprof       bool     // processes layout: serve pprof from every process
	noJetStream bool     // processes layout: leave JetStream off (memory mode)
}

// deploy starts (or, for -nats, finds) the deployment.
func deploy(ctx context.Context, s deploySettings, dir string, log *slog.Logger) (*deployment, error) {
	switch s.layout {
	case layoutEmbedded:
		return deployEmbedded(ctx, s.servers, dir, log)
	case layoutProcesses:
		return deployProcesses(ctx, s, log)
	case layoutExternal:
		return deployExternal(ctx, s, log)
	}
	return nil, fmt.Errorf("unknown layout %q (want embedded or processes)", s.layout)
}

func deployEmbedded(ctx context.Context, n int, dir string, log *slog.Logger) (*deployment, error) {
	log.Info("starting embedded NATS cluster and acceptors", "servers", n, "dir", dir)
	nc, err := startNATSCluster(n, dir)
	if err != nil {
		return nil, err
	}
	d := &deployment{layout: layoutEmbedded, cluster: benchCluster, replicas: n, embedded: nc}
	for i := range n {
		d.urls = append(d.urls, nc.url(i))
	}
	for i := range n {
		id := fmt.Sprintf("a%d", i)
		d.acceptors = append(d.acceptors, id)
		a := &inprocAcceptor{}
		d.inproc = append(d.inproc, a)
		a.store, err = pebblestore.Open(filepath.Join(dir, "acceptor-"+id), pebblestore.WithIdentity(benchCluster, id))
		if err == nil {
			a.nc, err = nats.Connect(d.urls[i], nats.Name("acceptor-"+id))
		}
		if err == nil {
			a.svc, err = natstransport.Serve(ctx, a.nc, benchCluster, synod.NewAcceptor(id, a.store), natstransport.WithLogger(log))
		}
		if err != nil {
			d.close()
			return nil, err
		}
	}
	return d, nil
}

func deployProcesses(ctx context.Context, s deploySettings, log *slog.Logger) (*deployment, error) {
	env, err := procs.NewCommandEnv(nil)
	if err != nil {
		return nil, err
	}
	d := &deployment{layout: layoutProcesses, cluster: benchCluster, replicas: s.servers, env: env}
	fail := func(err error) (*deployment, error) {
		env.Fail()
		d.close()
		return nil, err
	}
	natsBin, accBin := s.natsBin, s.acceptorBin
	bins := procs.NewBinaries()
	defer bins.Close()
	if natsBin == "" || accBin == "" {
		log.Info("building nats-server (pinned in go.mod) and synod-acceptor")
		n, a, err := buildBinaries(ctx, bins)
		if err != nil {
			return fail(err)
		}
		natsBin, accBin = cmp.Or(natsBin, n), cmp.Or(accBin, a)
	}
	// The cache directory is removed at return; keep the binaries in the env.
	natsBin, err = keepBinary(natsBin, env.TempDir())
	if err == nil {
		accBin, err = keepBinary(accBin, env.TempDir())
	}
	if err != nil {
		return fail(err)
	}
	opts := []procs.NATSOption{procs.WithNATSServerBinary(natsBin), procs.WithClusterName("bench")}
	if !s.noJetStream {
		opts = append(opts, procs.WithJetStream(true))
	}
	if s.pprof {
		opts = append(opts, procs.WithServerConfig("prof_port: -1"))
	}
	log.Info("starting nats-server processes", "servers", s.servers)
	d.nats, err = procs.StartNATSCluster(ctx, env, s.servers, opts...)
	if err != nil {
		return fail(err)
	}
	d.urls = d.nats.ClientURLs()
	if s.pprof {
		for i := range s.servers {
			port, err := profPort(d.nats.Server(i).Tail())
			if err != nil {
				return fail(fmt.Errorf("%s: %w", d.nats.ServerName(i), err))
			}
			d.pprof = append(d.pprof, pprofTarget{name: d.nats.ServerName(i), url: fmt.Sprintf("http://127.0.0.1:%d", port)})
		}
	}
	log.Info("starting synod-acceptor processes", "acceptors", s.servers)
	logDir := env.TempDir()
	ports, err := procs.FreePorts(2 * s.servers)
	if err != nil {
		return fail(err)
	}
	for i := range s.servers {
		id := fmt.Sprintf("a%d", i)
		d.acceptors = append(d.acceptors, id)
		dataDir := filepath.Join(env.TempDir(), id)
		d.dataDirs = append(d.dataDirs, dataDir)
		args := []string{"-id", id, "-cluster", benchCluster, "-data", dataDir,
			"-nats", d.urls[i], "-drain-timeout", "5s"}
		metrics := fmt.Sprintf("127.0.0.1:%d", ports[s.servers+i])
		args = append(args, "-metrics", metrics)
		d.metrics = append(d.metrics, "http://"+metrics+"/metrics")
		if s.pprof {
			addr := fmt.Sprintf("127.0.0.1:%d", ports[i])
			args = append(args, "-pprof", addr)
			d.pprof = append(d.pprof, pprofTarget{name: "acceptor-" + id, url: "http://" + addr})
		}
		p, err := procs.StartProc(env, procs.ProcSpec{Name: "acceptor-" + id, Path: accBin, Args: args, LogDir: logDir})
		if err != nil {
			return fail(err)
		}
		d.accProcs = append(d.accProcs, p)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, p := range d.accProcs {
		if err := p.WaitOutput(wctx, servingLine); err != nil {
			return fail(err)
		}
	}
	return d, nil
}

// buildBinaries builds nats-server (the version pinned in go.mod) and
// synod-acceptor at the same time.
func buildBinaries(ctx context.Context, bins *procs.Binaries) (natsBin, accBin string, err error) {
	var natsErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		natsBin, natsErr = bins.NATSServer(ctx)
	}()
	accBin, err = bins.Go(ctx, "./cmd/synod-acceptor")
	<-done
	return natsBin, accBin, errors.Join(natsErr, err)
}

// keepBinary copies the binary at path into dir and returns the copy's path.
func keepBinary(path, dir string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(path))
	return out, os.WriteFile(out, b, 0o755)
}

// profPort finds the profiling port in a nats-server's log ("profiling port: N").
func profPort(log string) (int, error) {
	const marker = "profiling port: "
	i := strings.LastIndex(log, marker)
	if i < 0 {
		return 0, errors.New("no profiling port in the log")
	}
	var port int
	_, err := fmt.Sscanf(log[i+len(marker):], "%d", &port)
	return port, err
}

// discoverAcceptors returns the sorted IDs of the acceptors of cluster that
// answer micro discovery.
func discoverAcceptors(ctx context.Context, nc *nats.Conn, cluster string) ([]string, error) {
	infos, err := natstransport.Discover[micro.Info](ctx, nc, micro.InfoVerb)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, in := range infos {
		if in.Metadata[natstransport.MetadataCluster] == cluster {
			ids = append(ids, in.Metadata[natstransport.MetadataAcceptor])
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

func deployExternal(ctx context.Context, s deploySettings, log *slog.Logger) (*deployment, error) {
	d := &deployment{layout: layoutExternal, cluster: s.cluster, replicas: s.replicas, acceptors: s.acceptorIDs}
	for _, u := range strings.Split(s.natsURL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			d.urls = append(d.urls, u)
		}
	}
	if len(d.acceptors) == 0 {
		nc, err := nats.Connect(strings.Join(d.urls, ","))
		if err != nil {
			return nil, err
		}
		defer nc.Close()
		if d.acceptors, err = discoverAcceptors(ctx, nc, d.cluster); err != nil {
			return nil, err
		}
		if len(d.acceptors) == 0 {
			return nil, fmt.Errorf("no acceptors of cluster %q answer on %s; give them with -acceptors", d.cluster, s.natsURL)
		}
	}
	log.Info("using an existing NATS cluster", "urls", d.urls, "cluster", d.cluster, "acceptors", d.acceptors)
	return d, nil
}

// profile records a CPU profile of every process of d that serves pprof
// for as long as run takes, into dir/<stem>-<process>.pprof.
func (d *deployment) profile(ctx context.Context, dir, stem string, seconds int, run func()) {
	if len(d.pprof) == 0 || dir == "" {
		run()
		return
	}
	done := make(chan struct{}, len(d.pprof))
	for _, p := range d.pprof {
		go func() {
			defer func() { done <- struct{}{} }()
			url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.url, seconds)
			if err := fetchURL(ctx, url, filepath.Join(dir, stem+"-"+p.name+".pprof")); err != nil {
				fmt.Fprintf(os.Stderr, "synod-bench: profile %s: %v\n", p.name, err)
			}
		}()
	}
	run()
	for range d.pprof {
		<-done
	}
}

// fetchURL writes the body of a GET of url to file.
func fetchURL(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// close stops what d started.
func (d *deployment) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range d.inproc {
		if a.svc != nil {
			a.svc.Stop(ctx)
		}
		if a.nc != nil {
			a.nc.Close()
		}
		if a.store != nil {
			a.store.Close()
		}
	}
	if d.embedded != nil {
		d.embedded.shutdown()
	}
	for _, p := range d.accProcs {
		_ = p.Terminate(ctx)
	}
	if d.env != nil {
		_ = d.env.Close()
	}
}
