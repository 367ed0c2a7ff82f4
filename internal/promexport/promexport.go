// Package promexport serves OpenTelemetry metrics in the Prometheus text
// format, for the commands' -metrics flag. It uses a Prometheus registry and
// an OpenTelemetry MeterProvider of its own: nothing global is registered, so
// several servers (or tests) can run in one process.
package promexport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Path is where Server serves the metrics.
const Path = "/metrics"

// Exporter is a MeterProvider whose instruments are exposed in Prometheus
// text format by Handler, together with Go runtime and process metrics.
type Exporter struct {
	// Provider is the MeterProvider to pass to WithMeterProvider options.
	Provider *sdkmetric.MeterProvider
	reg      *prometheus.Registry
}

// New returns an Exporter.
func New() (*Exporter, error) {
	reg := prometheus.NewRegistry()
	if err := errors.Join(
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
	); err != nil {
		return nil, fmt.Errorf("promexport: %w", err)
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("promexport: %w", err)
	}
	return &Exporter{Provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)), reg: reg}, nil
}

// Handler serves the metrics in Prometheus text format.
func (e *Exporter) Handler() http.Handler {
	return promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{})
}

// Server is an HTTP server of an Exporter's metrics at Path.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// Listen starts serving e's metrics at http://addr/metrics (addr as in
// net.Listen, ":0" for any free port) and returns once it listens. Errors of
// the server after that are logged to log.
func Listen(addr string, e *Exporter, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("promexport: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, e.Handler())
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, log: log}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return s, nil
}

// URL returns the address of the metrics: http://host:port/metrics.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + Path }

// Close stops the server, waiting for scrapes in progress until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}

// stopTimeout bounds Serve's stop: the last scrape and the provider's
// shutdown.
const stopTimeout = 2 * time.Second

// Serve is what a command's -metrics ADDR flag needs: a new Exporter served
// at http://addr/metrics (see Listen). stop closes the server and shuts the
// provider down, waiting at most two seconds; call it when the command ends.
func Serve(addr string, log *slog.Logger) (exp *Exporter, srv *Server, stop func(), err error) {
	if exp, err = New(); err != nil {
		return nil, nil, nil, err
	}
	if srv, err = Listen(addr, exp, log); err != nil {
		return nil, nil, nil, err
	}
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		_ = srv.Close(ctx)
		_ = exp.Provider.Shutdown(ctx)
	}
	return exp, srv, stop, nil
}
