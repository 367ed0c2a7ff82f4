// Command synod-viz serves a step-through visualizer of CASPaxos on the real
// synod code: General Lee (proposer 0) and General Ross (proposer 1) sign and
// revoke a missile launch, and a counter counts, while you choose which
// message is delivered, dropped or duplicated, crash and restart acceptors,
// and read the Go source of each rule and step as it runs.
//
// Usage:
//
//	synod-viz [-addr 127.0.0.1:7077] [-open] [NATS connection flags]
//
// It prints the page's URL. Every page gets its own deterministic session
// (seed + choices) held by the server; the page's live tab attaches read-only
// to the NATS server of -nats (micro discovery and statistics of the
// acceptors). Every flag can also be set by its SYNOD_* environment variable
// (SYNOD_ADDR for -addr).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/protosynod/protosynod/internal/cliflags"
	"github.com/protosynod/protosynod/internal/viz"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "synod-viz:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("synod-viz", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:7077", "address to serve the page on (port 0 picks a free one)")
	open := fs.Bool("open", false, "open the page in the default browser")
	var conn cliflags.NATS
	conn.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := cliflags.FillFromEnv(fs, getenv); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := []viz.ServerOption{viz.WithLogger(logger)}
	if conn.URLs != "" {
		nopts, err := conn.Options()
		if err != nil {
			return err
		}
		// Live mode is optional: keep trying in the background, so the page
		// works with no NATS server at all.
		nopts = append(nopts, nats.Name("synod-viz"), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1))
		nc, err := nats.Connect(conn.URLs, nopts...)
		if err != nil {
			return fmt.Errorf("nats %s: %w", conn.URLs, err)
		}
		defer nc.Close()
		opts = append(opts, viz.WithLive(viz.NATSLive{NC: nc, URL: conn.URLs}))
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String() + "/"
	srv := &http.Server{Handler: viz.NewServer(opts...), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "synod-viz: serving on %s\n", url)
	if *open {
		if err := openBrowser(url); err != nil {
			fmt.Fprintf(stderr, "synod-viz: -open: %v; open %s yourself\n", err, url)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // SSE streams end with their connections
		return nil
	}
}

// openBrowser opens url in the system's default browser.
func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
